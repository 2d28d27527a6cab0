package whatsapp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// summary renders an event compactly for table comparisons.
func summary(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pnid=%s waba=%s", e.Kind, e.PhoneNumberID, e.WABAID)
	switch e.Kind {
	case EventMessage:
		fmt.Fprintf(&b, " %s type=%s wa=%s user=%s name=%s", e.Message.ID, e.Message.Type, e.WaID, e.UserID, e.ProfileName)
	case EventStatus:
		fmt.Fprintf(&b, " %s status=%s wa=%s type=%s", e.Status.ID, e.Status.Status, e.WaID, e.Status.Type)
	case EventError:
		fmt.Fprintf(&b, " code=%d", e.Error.Code)
	}
	return b.String()
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFixture(t *testing.T, name string) (*Notification, []Event) {
	t.Helper()
	n, err := Decode(readFixture(t, name))
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return n, n.Events()
}

func TestDecodeFixtures(t *testing.T) {
	const pnid, waba = "100000000000001", "100000000000000"
	tests := []struct {
		file   string
		events []string
		check  func(t *testing.T, evs []Event)
	}{
		{
			file:   "text.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.HBgMOTE5ODExMTEyMjIyFQIAEhggQTFCMkMzRDRFNUY2QTdCOEM5RDBFMUYyQTNCNEM1RDYA type=text wa=919811112222 user= name=Asha Rao"},
			check: func(t *testing.T, evs []Event) {
				m := evs[0].Message
				if m.Text == nil || m.Text.Body != "Hi 👋 need atta & milk" {
					t.Errorf("text body = %+v", m.Text)
				}
				if got := evs[0].Time(); !got.Equal(time.Unix(1767225600, 0)) {
					t.Errorf("time = %v", got)
				}
				if evs[0].DisplayPhoneNumber != "919000000001" {
					t.Errorf("display number = %q", evs[0].DisplayPhoneNumber)
				}
				if evs[0].DedupKey() != m.ID || evs[0].SubjectID() != "919811112222" {
					t.Errorf("dedup key %q subject %q", evs[0].DedupKey(), evs[0].SubjectID())
				}
			},
		},
		{
			file: "batch.json",
			events: []string{
				"message pnid=100000000000001 waba=100000000000000 wamid.BATCH-E0-C0-M0 type=text wa=919811112222 user= name=Asha",
				"message pnid=100000000000001 waba=100000000000000 wamid.BATCH-E0-C0-M1 type=text wa=919822223333 user= name=Vikram",
				"message pnid=100000000000001 waba=100000000000000 wamid.BATCH-E0-C0-M2 type=text wa=919811112222 user= name=Asha",
				"message pnid=100000000000003 waba=100000000000000 wamid.BATCH-E0-C1-M0 type=text wa=919833334444 user= name=Meera",
				"message pnid=100000000000003 waba=100000000000000 wamid.BATCH-E0-C1-M1 type=text wa=919833334444 user= name=Meera",
				"status pnid=100000000000003 waba=100000000000000 wamid.OUT-1 status=delivered wa=919833334444 type=",
				"message pnid=100000000000004 waba=100000000000009 wamid.BATCH-E1-C0-M0 type=text wa=919844445555 user= name=Ravi",
				"message pnid=100000000000004 waba=100000000000009 wamid.BATCH-E1-C0-M1 type=text wa=919844445555 user= name=Ravi",
				"message pnid=100000000000004 waba=100000000000009 wamid.BATCH-E1-C1-M0 type=text wa=919855556666 user= name=Sana",
				"message pnid=100000000000004 waba=100000000000009 wamid.BATCH-E1-C1-M1 type=text wa=919855556666 user= name=Sana",
				"message pnid=100000000000004 waba=100000000000009 wamid.BATCH-E1-C1-M2 type=text wa=919855556666 user= name=Sana",
			},
			check: func(t *testing.T, evs []Event) {
				if got := evs[10].Message.Text.Body; got != "delete my data" {
					t.Errorf("last body = %q", got)
				}
				if got := evs[5].DedupKey(); got != "wamid.OUT-1:delivered" {
					t.Errorf("status dedup key = %q", got)
				}
			},
		},
		{
			file:   "button_reply.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.BUTTONREPLY-1 type=interactive wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				m := evs[0].Message
				if m.Interactive.Type != ReplyTypeButton || m.Interactive.ReplyID() != "consent:accept" || m.Interactive.ButtonReply.Title != "I agree" {
					t.Errorf("interactive = %+v", m.Interactive)
				}
				if m.Context == nil || m.Context.ID != "wamid.NOTICE-1" || m.Context.From != "919000000001" {
					t.Errorf("context = %+v", m.Context)
				}
			},
		},
		{
			file:   "list_reply.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.LISTREPLY-1 type=interactive wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				r := evs[0].Message.Interactive
				if r.Type != ReplyTypeList || r.ReplyID() != "slot:2026-01-01T18" || r.ListReply.Description != "Free delivery" {
					t.Errorf("interactive = %+v", r)
				}
			},
		},
		{
			file:   "nfm_reply.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.NFMREPLY-1 type=interactive wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				r := evs[0].Message.Interactive
				if r.Type != ReplyTypeNFM || r.NFMReply == nil || r.NFMReply.ResponseJSON != `{"flow_token":"tok-1","slot":"evening"}` || r.ReplyID() != "" {
					t.Errorf("interactive = %+v", r)
				}
			},
		},
		{
			file:   "template_button.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.QUICKREPLY-1 type=button wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				b := evs[0].Message.Button
				if b == nil || b.Payload != "marketing:no" || b.Text != "No thanks" {
					t.Errorf("button = %+v", b)
				}
			},
		},
		{
			file:   "order.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.ORDER-1 type=order wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				o := evs[0].Message.Order
				if o.CatalogID != "100000000000002" || o.Text != "deliver after 6pm" {
					t.Errorf("order = %+v", o)
				}
				lines, err := o.Lines()
				if err != nil {
					t.Fatal(err)
				}
				want := []OrderLine{
					{ProductRetailerID: "SKU-ATTA-5KG", Quantity: 2, UnitPrice: Paise(28950), Currency: "INR"},
					{ProductRetailerID: "SKU-MILK-1L", Quantity: 3, UnitPrice: Paise(6400), Currency: "INR"},
				}
				if fmt.Sprint(lines) != fmt.Sprint(want) {
					t.Errorf("lines = %+v, want %+v", lines, want)
				}
			},
		},
		{
			file:   "location.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.LOCATION-1 type=location wa=919811112222 user= name=Asha"},
			check: func(t *testing.T, evs []Event) {
				l := evs[0].Message.Location
				if l.Latitude != 12.971599 || l.Longitude != 77.594566 || l.Name != "Home" || l.Address != "12 MG Road, Bengaluru 560001" || l.URL == "" {
					t.Errorf("location = %+v", l)
				}
			},
		},
		{
			file: "statuses_out_of_order.json",
			events: []string{
				"status pnid=" + pnid + " waba=" + waba + " wamid.OUT-77 status=read wa=919811112222 type=",
				"status pnid=" + pnid + " waba=" + waba + " wamid.OUT-77 status=sent wa=919811112222 type=",
				"status pnid=" + pnid + " waba=" + waba + " wamid.OUT-77 status=delivered wa=919811112222 type=",
			},
			check: func(t *testing.T, evs []Event) {
				state := ""
				for _, e := range evs {
					state = Advance(state, e.Status.Status)
				}
				if state != StatusRead {
					t.Errorf("final state = %q, want read", state)
				}
				if evs[1].Status.BizOpaqueCallbackData != "ob_7f3a" || evs[1].Status.Pricing == nil || evs[1].Status.Pricing.Category != "service" {
					t.Errorf("sent status = %+v", evs[1].Status)
				}
				if evs[2].Status.Timestamp != 1767225902 {
					t.Errorf("numeric timestamp = %d", evs[2].Status.Timestamp)
				}
			},
		},
		{
			file:   "status_failed.json",
			events: []string{"status pnid=" + pnid + " waba=" + waba + " wamid.OUT-88 status=failed wa=919811112222 type="},
			check: func(t *testing.T, evs []Event) {
				s := evs[0].Status
				if len(s.Errors) != 1 || s.Errors[0].Code != 131047 || s.Errors[0].ErrorData == nil || !strings.Contains(s.Errors[0].ErrorData.Details, "24 hours") {
					t.Errorf("errors = %+v", s.Errors)
				}
			},
		},
		{
			file:   "payment_captured.json",
			events: []string{"status pnid=" + pnid + " waba=" + waba + " pay.4e7a1c2b9d status=captured wa=919811112222 type=payment"},
			check: func(t *testing.T, evs []Event) {
				s := evs[0].Status
				if !s.IsPayment() || s.Payment == nil {
					t.Fatalf("status = %+v", s)
				}
				p := s.Payment
				if p.ReferenceID != "pay_7Hq2xK9mN3" || p.Amount != Paise(77100) || p.Currency != "INR" {
					t.Errorf("payment = %+v", p)
				}
				tx := p.Transaction
				if tx == nil || tx.ID != "order_NbX2kP7qLm" || tx.Type != "razorpay" || tx.Status != TxnStatusSuccess || tx.Method == nil || tx.Method.Type != "upi" {
					t.Errorf("transaction = %+v", tx)
				}
				if tx.CreatedTimestamp != 1767226480 || tx.UpdatedTimestamp != 1767226499 {
					t.Errorf("transaction timestamps = %d, %d", tx.CreatedTimestamp, tx.UpdatedTimestamp)
				}
			},
		},
		{
			file:   "payment_pending_failed.json",
			events: []string{"status pnid=" + pnid + " waba=" + waba + " pay.9c1d3e5f7a status=pending wa=919811112222 type=payment"},
			check: func(t *testing.T, evs []Event) {
				tx := evs[0].Status.Payment.Transaction
				if tx.Status != TxnStatusFailed || tx.Error == nil || tx.Error.Code != "U30" || tx.Error.Reason == "" {
					t.Errorf("transaction = %+v", tx)
				}
				if got := AdvancePayment(PaymentCaptured, evs[0].Status.Status); got != PaymentCaptured {
					t.Errorf("pending after captured = %q", got)
				}
			},
		},
		{
			file:   "no_from_bsuid.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.BSUID-1 type=text wa= user=IN.1410823456789012 name=Kiran"},
			check: func(t *testing.T, evs []Event) {
				e := evs[0]
				if e.Message.SenderID() != "IN.1410823456789012" || e.SubjectID() != "IN.1410823456789012" || e.Username != "@kiran.shops" {
					t.Errorf("sender %q subject %q username %q", e.Message.SenderID(), e.SubjectID(), e.Username)
				}
				if !IsBSUID(e.SubjectID()) {
					t.Error("BSUID not recognised")
				}
			},
		},
		{
			file: "unsupported.json",
			events: []string{
				"message pnid=" + pnid + " waba=" + waba + " wamid.UNSUPPORTED-1 type=unsupported wa=919811112222 user= name=Asha",
				"message pnid=" + pnid + " waba=" + waba + " wamid.IMAGE-1 type=image wa=919811112222 user= name=Asha",
			},
			check: func(t *testing.T, evs []Event) {
				if errs := evs[0].Message.Errors; len(errs) != 1 || errs[0].Code != 131051 {
					t.Errorf("errors = %+v", errs)
				}
				m := evs[1].Message
				if m.Text != nil || m.Interactive != nil || m.Order != nil || m.Location != nil {
					t.Errorf("media message decoded a payload: %+v", m)
				}
			},
		},
		{
			file:   "system_user_changed_number.json",
			events: []string{"message pnid=" + pnid + " waba=" + waba + " wamid.SYSTEM-1 type=system wa=919811112222 user= name="},
			check: func(t *testing.T, evs []Event) {
				s := evs[0].Message.System
				if s == nil || s.Type != "user_changed_number" || s.WaID != "919877778888" {
					t.Errorf("system = %+v", s)
				}
			},
		},
		{
			file:   "mixed_fields.json",
			events: []string{"error pnid=" + pnid + " waba=" + waba + " code=131000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, evs := decodeFixture(t, tt.file)
			got := make([]string, len(evs))
			for i, e := range evs {
				got[i] = summary(e)
			}
			if strings.Join(got, "\n") != strings.Join(tt.events, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.events, "\n"))
			}
			if tt.check != nil {
				tt.check(t, evs)
			}
		})
	}
}

func TestDecodeKeepsOtherFieldsRaw(t *testing.T) {
	n, _ := decodeFixture(t, "mixed_fields.json")
	c := n.Entry[0].Changes[0]
	if c.Field != "account_update" || c.Value != nil || !bytes.Contains(c.RawValue, []byte("VERIFIED_ACCOUNT")) {
		t.Fatalf("change = %+v", c)
	}
	// Re-encoding keeps the raw value and Meta's key order.
	b, err := n.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`{"value":{"phone_number":"919000000001","event":"VERIFIED_ACCOUNT"},"field":"account_update"}`)) {
		t.Errorf("re-encoded: %s", b)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 10 {
		t.Fatalf("fixtures: %v %d", err, len(files))
	}
	for _, f := range files {
		n, err := Decode(readFixture(t, filepath.Base(f)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, err := n.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n2, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: re-decode: %v", f, err)
		}
		e1, e2 := n.Events(), n2.Events()
		if len(e1) != len(e2) {
			t.Fatalf("%s: %d events, %d after round trip", f, len(e1), len(e2))
		}
		for i := range e1 {
			if summary(e1[i]) != summary(e2[i]) {
				t.Errorf("%s: event %d: %s != %s", f, i, summary(e1[i]), summary(e2[i]))
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	big := append([]byte(`{"object":"whatsapp_business_account","entry":[],"pad":"`), bytes.Repeat([]byte("x"), MaxNotificationSize)...)
	big = append(big, `"}`...)
	msg := func(m string) string {
		return `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1"},` + m + `}}]}]}`
	}
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "hello"},
		{"truncated", `{"object":"whatsapp_business_account","entry":[`},
		{"trailing garbage", `{"object":"whatsapp_business_account","entry":[]} x`},
		{"array", `[]`},
		{"wrong object", `{"object":"page","entry":[]}`},
		{"missing object", `{"entry":[]}`},
		{"entry not array", `{"object":"whatsapp_business_account","entry":{}}`},
		{"too deep", deep},
		{"too big", string(big)},
		{"message without id", msg(`"messages":[{"from":"1","timestamp":"1","type":"text","text":{"body":"x"}}]`)},
		{"message without type", msg(`"messages":[{"from":"1","id":"wamid.1","timestamp":"1"}]`)},
		{"status without status", msg(`"statuses":[{"id":"wamid.1","timestamp":"1"}]`)},
		{"bad timestamp", msg(`"messages":[{"from":"1","id":"wamid.1","timestamp":"yesterday","type":"text"}]`)},
		{"negative timestamp", msg(`"messages":[{"from":"1","id":"wamid.1","timestamp":"-5","type":"text"}]`)},
		{"float timestamp", msg(`"messages":[{"from":"1","id":"wamid.1","timestamp":1.5,"type":"text"}]`)},
		{"messages change without value", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages"}]}]}`},
		{"item_price not a number", msg(`"messages":[{"from":"1","id":"wamid.1","timestamp":"1","type":"order","order":{"product_items":[{"product_retailer_id":"A","quantity":1,"item_price":"cheap","currency":"INR"}]}}]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode accepted: %+v", n)
			}
			if !errors.Is(err, ErrInvalidNotification) {
				t.Errorf("error %v does not wrap ErrInvalidNotification", err)
			}
		})
	}
}

func TestDecodeErrorsDoNotEchoContent(t *testing.T) {
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"919811112222","id":"wamid.1","timestamp":"919811112222x","type":"text"}]}}]}]}`
	_, err := Decode([]byte(body))
	if err == nil {
		t.Fatal("accepted a bad timestamp")
	}
	if strings.Contains(err.Error(), "919811112222") {
		t.Errorf("error leaks content: %v", err)
	}
}

func TestDecodeTolerates(t *testing.T) {
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","metadata":{"phone_number_id":"7"},"new_field":{"x":[1,2]},
		"messages":[{"from":"919811112222","id":"wamid.1","timestamp":1767225600,"type":"order","brand_new":true,
		  "order":{"catalog_id":"c","product_items":[{"product_retailer_id":"A","quantity":1,"item_price":"12.5","currency":"INR"}]}}]}}]}]}`
	n, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	evs := n.Events()
	if len(evs) != 1 || evs[0].Message.Timestamp != 1767225600 {
		t.Fatalf("events = %+v", evs)
	}
	lines, err := evs[0].Message.Order.Lines()
	if err != nil || lines[0].UnitPrice != Paise(1250) {
		t.Fatalf("lines = %+v, %v", lines, err)
	}
}

// TestOrderQuantityFromWire: a quantity outside 1..100000, or not an
// integer at all, refuses that order (ErrOrderQuantity), not the whole
// notification; a total that overflows is refused too.
func TestOrderQuantityFromWire(t *testing.T) {
	for _, tc := range []struct {
		name, items string
		want        error
	}{
		{"one", `{"product_retailer_id":"A","quantity":1,"item_price":10,"currency":"INR"}`, nil},
		{"the maximum", `{"product_retailer_id":"A","quantity":100000,"item_price":10,"currency":"INR"}`, nil},
		{"over the maximum", `{"product_retailer_id":"A","quantity":100001,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"zero", `{"product_retailer_id":"A","quantity":0,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"negative", `{"product_retailer_id":"A","quantity":-3,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"fractional", `{"product_retailer_id":"A","quantity":1.5,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"exponent", `{"product_retailer_id":"A","quantity":1e30,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"int64 max", `{"product_retailer_id":"A","quantity":9223372036854775807,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"wraps int32", `{"product_retailer_id":"A","quantity":4294967297,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"string", `{"product_retailer_id":"A","quantity":"2","item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"null", `{"product_retailer_id":"A","quantity":null,"item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"missing", `{"product_retailer_id":"A","item_price":10,"currency":"INR"}`, ErrOrderQuantity},
		{"second line bad", `{"product_retailer_id":"A","quantity":2,"item_price":10,"currency":"INR"},{"product_retailer_id":"B","quantity":100001,"item_price":1,"currency":"INR"}`, ErrOrderQuantity},
		{"total overflows", `{"product_retailer_id":"A","quantity":100000,"item_price":92233720368547758,"currency":"INR"}`, ErrOrderTotal},
		{"sum overflows", `{"product_retailer_id":"A","quantity":1,"item_price":92233720368547758,"currency":"INR"},{"product_retailer_id":"B","quantity":1,"item_price":92233720368547758,"currency":"INR"}`, ErrOrderTotal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1"},` +
				`"messages":[{"from":"1","id":"wamid.1","timestamp":"1","type":"order","order":{"product_items":[` + tc.items + `]}},` +
				`{"from":"1","id":"wamid.2","timestamp":"1","type":"text","text":{"body":"hi"}}]}}]}]}`
			n, err := Decode([]byte(body))
			if err != nil {
				t.Fatalf("the whole notification was refused: %v", err)
			}
			evs := n.Events()
			if len(evs) != 2 || evs[1].Message.Text.Body != "hi" {
				t.Fatalf("the batch's other event was lost: %+v", evs)
			}
			lines, err := evs[0].Message.Order.Lines()
			if tc.want == nil {
				if err != nil || len(lines) == 0 {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Lines = %+v, %v; want %v", lines, err, tc.want)
			}
		})
	}
}

func TestOrderLinesRejects(t *testing.T) {
	item := func(mod func(*ProductItem)) *Order {
		p := ProductItem{ProductRetailerID: "SKU-A", Quantity: 1, ItemPrice: "10", Currency: "INR"}
		mod(&p)
		return &Order{ProductItems: []ProductItem{p}}
	}
	tests := map[string]*Order{
		"nil":                nil,
		"empty":              {},
		"no sku":             item(func(p *ProductItem) { p.ProductRetailerID = "" }),
		"zero quantity":      item(func(p *ProductItem) { p.Quantity = 0 }),
		"huge quantity":      item(func(p *ProductItem) { p.Quantity = 1 << 30 }),
		"negative price":     item(func(p *ProductItem) { p.ItemPrice = "-1" }),
		"three decimals":     item(func(p *ProductItem) { p.ItemPrice = "1.005" }),
		"missing price":      item(func(p *ProductItem) { p.ItemPrice = "" }),
		"lowercase currency": item(func(p *ProductItem) { p.Currency = "inr" }),
		"mixed currencies": {ProductItems: []ProductItem{
			{ProductRetailerID: "A", Quantity: 1, ItemPrice: "1", Currency: "INR"},
			{ProductRetailerID: "B", Quantity: 1, ItemPrice: "1", Currency: "USD"},
		}},
	}
	for name, o := range tests {
		if lines, err := o.Lines(); err == nil {
			t.Errorf("%s: accepted %+v", name, lines)
		}
	}
}

func TestEventsContactMatching(t *testing.T) {
	v := &Value{
		Metadata: Metadata{PhoneNumberID: "1"},
		Contacts: []Contact{
			{Profile: Profile{Name: "A"}, WaID: "911111111111"},
			{Profile: Profile{Name: "B"}, UserID: "IN.22"},
		},
		Messages: []Message{
			{From: "911111111111", ID: "m1", Type: "text"},
			{FromUserID: "IN.22", ID: "m2", Type: "text"},
			{From: "913333333333", ID: "m3", Type: "text"},
		},
	}
	n := &Notification{Object: ObjectWhatsAppBusinessAccount, Entry: []Entry{{ID: "w", Changes: []Change{{Field: FieldMessages, Value: v}}}}}
	evs := n.Events()
	got := []string{evs[0].ProfileName, evs[1].ProfileName, evs[2].ProfileName}
	if strings.Join(got, ",") != "A,B," {
		t.Errorf("profile names = %q", got)
	}
	if evs[2].WaID != "913333333333" {
		t.Errorf("unmatched sender wa_id = %q", evs[2].WaID)
	}
}
