package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares the indented encoding of m with testdata/golden/name.json.
func golden(t *testing.T, name string, m *OutboundMessage) {
	t.Helper()
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from golden:\n%s\nwant:\n%s", name, buf.Bytes(), want)
	}
}

// must returns a function that fails t unless a builder succeeded.
func must(t *testing.T) func(*OutboundMessage, error) *OutboundMessage {
	return func(m *OutboundMessage, err error) *OutboundMessage {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func sampleOrderDetails() OrderDetails {
	return OrderDetails{
		Header:            "Your Sieve order",
		Body:              "Review and pay for your groceries",
		Footer:            "Paid securely with UPI",
		ReferenceID:       "pay_7Hq2xK9mN3",
		ConfigurationName: DevPaymentConfiguration,
		CatalogID:         DevCatalogID,
		Items: []PaymentItem{
			{RetailerID: "SKU-ATTA-5KG", Name: "Atta 5 kg", Amount: Paise(28950), Quantity: 2},
			{RetailerID: "SKU-MILK-1L", Name: "Toned milk 1 L", Amount: Paise(6400), Quantity: 3},
		},
		Tax:      Charge{Value: 0, Offset: 100, Description: "GST included"},
		Shipping: &Charge{Value: 2500, Offset: 100},
		Discount: &Charge{Value: 1000, Offset: 100, DiscountProgramName: "WELCOME10"},
	}
}

func TestBuildersGolden(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		golden(t, "text", must(t)(NewText("919811112222", "Hi Asha! Your order ord_01JH is confirmed & on its way <3")))
	})
	t.Run("text_reply_bsuid", func(t *testing.T) {
		m := must(t)(NewText("IN.1410823456789012", "Thanks!"))
		golden(t, "text_reply_bsuid", m.InReplyTo("wamid.IN-1").WithCallbackData("ob_1"))
	})
	t.Run("buttons", func(t *testing.T) {
		golden(t, "buttons", must(t)(NewReplyButtons("+91 98111-12222", ButtonMessage{
			Header: "Privacy notice",
			Body:   "Sieve shares only what your order needs. Read more: https://example.invalid/privacy",
			Footer: "Reply stop at any time",
			Buttons: []Button{
				{ID: "consent:accept", Title: "I agree"},
				{ID: "consent:decline", Title: "No, thanks — delete my data"},
			},
		})))
	})
	t.Run("list", func(t *testing.T) {
		golden(t, "list", must(t)(NewList("919811112222", ListMessage{
			Body:   "When should we deliver?",
			Button: "Choose a delivery slot now",
			Sections: []Section{
				{Title: "Today", Rows: []Row{
					{ID: "slot:2026-01-01T18", Title: "6 pm – 8 pm", Description: "Free delivery"},
					{ID: "slot:2026-01-01T20", Title: "8 pm – 10 pm, evening express slot", Description: strings.Repeat("late ", 20)},
				}},
				{Title: "Tomorrow", Rows: []Row{{ID: "slot:2026-01-02T08", Title: "8 am – 10 am"}}},
			},
		})))
	})
	t.Run("product_list", func(t *testing.T) {
		golden(t, "product_list", must(t)(NewProductList("919811112222", ProductListMessage{
			Header:    "Sieve groceries",
			Body:      "Tap a product to add it to your cart",
			CatalogID: DevCatalogID,
			Sections: []ProductSection{
				{Title: "Staples", ProductRetailerIDs: []string{"SKU-ATTA-5KG", "SKU-RICE-5KG"}},
				{Title: "Dairy", ProductRetailerIDs: []string{"SKU-MILK-1L"}},
			},
		})))
	})
	t.Run("catalog_message", func(t *testing.T) {
		golden(t, "catalog_message", must(t)(NewCatalogMessage("919811112222", "Browse our catalog", "Prices include GST", "SKU-ATTA-5KG")))
	})
	t.Run("location_request", func(t *testing.T) {
		golden(t, "location_request", must(t)(NewLocationRequest("919811112222", "Where should we deliver? Share your location or type your address.")))
	})
	t.Run("order_details", func(t *testing.T) {
		golden(t, "order_details", must(t)(NewOrderDetails("919811112222", sampleOrderDetails())))
	})
	t.Run("order_status", func(t *testing.T) {
		golden(t, "order_status", must(t)(NewOrderStatus("919811112222", OrderStatusUpdate{
			Body: "Your order is on its way", ReferenceID: "pay_7Hq2xK9mN3", Status: OrderShipped, Description: "Out for delivery",
		})))
	})
	t.Run("template", func(t *testing.T) {
		golden(t, "template", must(t)(NewTemplate("919811112222", "order_update", "en", TemplateComponent{
			Type:       "body",
			Parameters: []TemplateParameter{{Type: "text", Text: "ord_01JH"}},
		})))
	})
	t.Run("mark_read", func(t *testing.T) {
		golden(t, "mark_read", NewMarkRead("wamid.IN-1"))
	})
}

func TestOrderDetailsAmounts(t *testing.T) {
	m := must(t)(NewOrderDetails("919811112222", sampleOrderDetails()))
	p := m.Interactive.Action.Parameters
	// 2 × 289.50 + 3 × 64.00 = 771.00; + 0 tax + 25.00 shipping − 10.00 discount.
	if *p.Order.Subtotal != Paise(77100) || *p.TotalAmount != Paise(78600) {
		t.Fatalf("subtotal %+v total %+v", p.Order.Subtotal, p.TotalAmount)
	}
	if err := ValidateOrderDetails(p); err != nil {
		t.Fatal(err)
	}
}

func TestValidateOrderDetailsRejects(t *testing.T) {
	tests := map[string]func(p *ActionParameters){
		"total mismatch":       func(p *ActionParameters) { p.TotalAmount.Value++ },
		"subtotal mismatch":    func(p *ActionParameters) { p.Order.Subtotal.Value-- },
		"quantity changed":     func(p *ActionParameters) { p.Order.Items[0].Quantity = 3 },
		"zero quantity":        func(p *ActionParameters) { p.Order.Items[0].Quantity = 0 },
		"negative amount":      func(p *ActionParameters) { p.Order.Items[0].Amount.Value = -1 },
		"offset 1000":          func(p *ActionParameters) { p.TotalAmount.Offset = 1000 },
		"tax offset":           func(p *ActionParameters) { p.Order.Tax.Offset = 1 },
		"no tax":               func(p *ActionParameters) { p.Order.Tax = nil },
		"no subtotal":          func(p *ActionParameters) { p.Order.Subtotal = nil },
		"no total":             func(p *ActionParameters) { p.TotalAmount = nil },
		"no items":             func(p *ActionParameters) { p.Order.Items = nil },
		"status":               func(p *ActionParameters) { p.Order.Status = "processing" },
		"currency":             func(p *ActionParameters) { p.Currency = "USD" },
		"goods type":           func(p *ActionParameters) { p.Type = "services" },
		"reference too long":   func(p *ActionParameters) { p.ReferenceID = strings.Repeat("a", 36) },
		"reference charset":    func(p *ActionParameters) { p.ReferenceID = "pay 1" },
		"reference empty":      func(p *ActionParameters) { p.ReferenceID = "" },
		"no payment settings":  func(p *ActionParameters) { p.PaymentSettings = nil },
		"gateway type":         func(p *ActionParameters) { p.PaymentSettings[0].PaymentGateway.Type = "paypal" },
		"no configuration":     func(p *ActionParameters) { p.PaymentSettings[0].PaymentGateway.ConfigurationName = "" },
		"item name too long":   func(p *ActionParameters) { p.Order.Items[0].Name = strings.Repeat("n", 61) },
		"sale amount mismatch": func(p *ActionParameters) { p.Order.Items[0].SaleAmount = &Amount{Value: 100, Offset: 100} },
		"over UPI cap": func(p *ActionParameters) {
			p.Order.Items = []PaymentItem{{Name: "Gold", Amount: Paise(MaxUPIAmountPaise + 1), Quantity: 1}}
			p.Order.Subtotal = ptr(Paise(MaxUPIAmountPaise + 1))
			p.Order.Shipping, p.Order.Discount = nil, nil
			p.TotalAmount = ptr(Paise(MaxUPIAmountPaise + 1))
		},
		"zero total": func(p *ActionParameters) {
			p.Order.Items = []PaymentItem{{Name: "Free", Amount: Paise(0), Quantity: 1}}
			p.Order.Subtotal = ptr(Paise(0))
			p.Order.Shipping, p.Order.Discount = nil, nil
			p.TotalAmount = ptr(Paise(0))
		},
		"overflow": func(p *ActionParameters) { p.Order.Items[0].Amount.Value = 1 << 62; p.Order.Items[0].Quantity = 4 },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			m := must(t)(NewOrderDetails("919811112222", sampleOrderDetails()))
			p := m.Interactive.Action.Parameters
			mod(p)
			err := ValidateOrderDetails(p)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("ValidateOrderDetails = %v, want a ValidationError", err)
			}
		})
	}
}

func TestNewOrderDetailsRejects(t *testing.T) {
	d := sampleOrderDetails()
	d.ReferenceID = "ref with spaces"
	if _, err := NewOrderDetails("919811112222", d); err == nil {
		t.Error("accepted a bad reference_id")
	}
	d = sampleOrderDetails()
	d.ConfigurationName = ""
	if _, err := NewOrderDetails("919811112222", d); err == nil {
		t.Error("accepted a missing configuration name")
	}
}

func TestRecipients(t *testing.T) {
	tests := []struct {
		in, to, recipient string
		ok                bool
	}{
		{"919811112222", "+919811112222", "", true},
		{"+919811112222", "+919811112222", "", true},
		{"+91 98111-12222", "+919811112222", "", true},
		{"(+91) 98111 12222", "+919811112222", "", true},
		{"IN.1410823456789012", "", "IN.1410823456789012", true},
		{"", "", "", false},
		{"12345", "", "", false},
		{"1234567890123456", "", "", false},
		{"91981111222a", "", "", false},
		{"+91+9811112222", "", "", false},
		{"IN.", "", "", false},
		{"IN.14 10", "", "", false},
	}
	for _, tt := range tests {
		m, err := NewText(tt.in, "x")
		if !tt.ok {
			if err == nil {
				t.Errorf("NewText(%q) accepted: to=%q recipient=%q", tt.in, m.To, m.Recipient)
			} else if !errors.Is(err, ErrInvalidRecipient) {
				t.Errorf("NewText(%q) error %v does not wrap ErrInvalidRecipient", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewText(%q): %v", tt.in, err)
			continue
		}
		if m.To != tt.to || m.Recipient != tt.recipient {
			t.Errorf("NewText(%q): to=%q recipient=%q", tt.in, m.To, m.Recipient)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 20, "short"},
		{"exactly twenty chars", 20, "exactly twenty chars"},
		{"No, thanks — delete my data", 20, "No, thanks — delete…"},
		{"नमस्ते दुनिया नमस्ते दुनिया", 10, "नमस्ते दु…"},
		{"🛒🛒🛒🛒🛒", 3, "🛒🛒…"},
		{"abc", 0, ""},
		{"ab\xffcd", 10, "ab\uFFFDcd"},
		{"word    spaces", 6, "word…"},
	}
	for _, tt := range tests {
		got := Truncate(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tt.max, 0) {
			t.Errorf("Truncate(%q, %d) = %q breaks the limit", tt.in, tt.max, got)
		}
	}
}

func TestBuilderLimits(t *testing.T) {
	btns := func(n int) []Button {
		var b []Button
		for i := range n {
			b = append(b, Button{ID: fmt.Sprintf("b%d", i), Title: fmt.Sprintf("Button %d", i)})
		}
		return b
	}
	rows := func(n int) []Row {
		var r []Row
		for i := range n {
			r = append(r, Row{ID: fmt.Sprintf("slot:%d", i), Title: fmt.Sprintf("Slot %d", i)})
		}
		return r
	}
	skus := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("SKU-%d", i))
		}
		return s
	}
	bad := map[string]func() (*OutboundMessage, error){
		"4 buttons": func() (*OutboundMessage, error) {
			return NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: btns(4)})
		},
		"0 buttons": func() (*OutboundMessage, error) { return NewReplyButtons("919811112222", ButtonMessage{Body: "b"}) },
		"button no body": func() (*OutboundMessage, error) {
			return NewReplyButtons("919811112222", ButtonMessage{Buttons: btns(1)})
		},
		"duplicate title": func() (*OutboundMessage, error) {
			return NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: []Button{{"a", strings.Repeat("x", 30)}, {"b", strings.Repeat("x", 31)}}})
		},
		"duplicate id": func() (*OutboundMessage, error) {
			return NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: []Button{{"a", "A"}, {"a", "B"}}})
		},
		"id too long": func() (*OutboundMessage, error) {
			return NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: []Button{{strings.Repeat("i", 257), "A"}}})
		},
		"11 rows": func() (*OutboundMessage, error) {
			return NewList("919811112222", ListMessage{Body: "b", Button: "Pick", Sections: []Section{{Title: "A", Rows: rows(6)}, {Title: "B", Rows: rows(5)[:5]}}})
		},
		"untitled sections": func() (*OutboundMessage, error) {
			return NewList("919811112222", ListMessage{Body: "b", Button: "Pick", Sections: []Section{{Rows: rows(1)}, {Title: "B", Rows: []Row{{ID: "x", Title: "X"}}}}})
		},
		"no list button": func() (*OutboundMessage, error) {
			return NewList("919811112222", ListMessage{Body: "b", Sections: []Section{{Rows: rows(1)}}})
		},
		"row id too long": func() (*OutboundMessage, error) {
			return NewList("919811112222", ListMessage{Body: "b", Button: "Pick", Sections: []Section{{Rows: []Row{{ID: strings.Repeat("r", 201), Title: "X"}}}}})
		},
		"product list without header": func() (*OutboundMessage, error) {
			return NewProductList("919811112222", ProductListMessage{Body: "b", CatalogID: "c", Sections: []ProductSection{{Title: "A", ProductRetailerIDs: skus(1)}}})
		},
		"31 products": func() (*OutboundMessage, error) {
			return NewProductList("919811112222", ProductListMessage{Header: "h", Body: "b", CatalogID: "c", Sections: []ProductSection{{Title: "A", ProductRetailerIDs: skus(16)}, {Title: "B", ProductRetailerIDs: skus(15)}}})
		},
		"11 product sections": func() (*OutboundMessage, error) {
			var s []ProductSection
			for i := range 11 {
				s = append(s, ProductSection{Title: fmt.Sprint(i), ProductRetailerIDs: skus(1)})
			}
			return NewProductList("919811112222", ProductListMessage{Header: "h", Body: "b", CatalogID: "c", Sections: s})
		},
		"product list without catalog": func() (*OutboundMessage, error) {
			return NewProductList("919811112222", ProductListMessage{Header: "h", Body: "b", Sections: []ProductSection{{Title: "A", ProductRetailerIDs: skus(1)}}})
		},
		"order status unknown": func() (*OutboundMessage, error) {
			return NewOrderStatus("919811112222", OrderStatusUpdate{Body: "b", ReferenceID: "r1", Status: "partially-shipped"})
		},
		"order status pending": func() (*OutboundMessage, error) {
			return NewOrderStatus("919811112222", OrderStatusUpdate{Body: "b", ReferenceID: "r1", Status: "pending"})
		},
		"empty text":    func() (*OutboundMessage, error) { return NewText("919811112222", "") },
		"template name": func() (*OutboundMessage, error) { return NewTemplate("919811112222", "", "en") },
	}
	for name, build := range bad {
		if m, err := build(); err == nil {
			raw, _ := m.Marshal()
			t.Errorf("%s: accepted %s", name, raw)
		}
	}
	// At the limits everything is accepted and long texts are truncated.
	m := must(t)(NewList("919811112222", ListMessage{Body: "b", Button: strings.Repeat("B", 40), Sections: []Section{{Title: "A", Rows: rows(10)}}}))
	if got := m.Interactive.Action.Button; utf8.RuneCountInString(got) != MaxListButton {
		t.Errorf("button label %q", got)
	}
	must(t)(NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: btns(3)}))
	must(t)(NewProductList("919811112222", ProductListMessage{Header: "h", Body: "b", CatalogID: "c", Sections: []ProductSection{{Title: "A", ProductRetailerIDs: skus(15)}, {Title: "B", ProductRetailerIDs: skus(15)}}}))
	long := must(t)(NewText("919811112222", strings.Repeat("ä", MaxTextBody+10)))
	if utf8.RuneCountInString(long.Text.Body) != MaxTextBody {
		t.Errorf("text body has %d runes", utf8.RuneCountInString(long.Text.Body))
	}
}

func TestValidateRejectsHandBuilt(t *testing.T) {
	tests := map[string]*OutboundMessage{
		"no product":      {To: "+919811112222", Type: "text", Text: &TextBody{Body: "x"}},
		"no plus":         {MessagingProduct: "whatsapp", To: "919811112222", Type: "text", Text: &TextBody{Body: "x"}},
		"no recipient":    {MessagingProduct: "whatsapp", Type: "text", Text: &TextBody{Body: "x"}},
		"unknown type":    {MessagingProduct: "whatsapp", To: "+919811112222", Type: "telegram"},
		"two payloads":    {MessagingProduct: "whatsapp", To: "+919811112222", Type: "text", Text: &TextBody{Body: "x"}, Template: &Template{Name: "t"}},
		"group":           {MessagingProduct: "whatsapp", RecipientType: "group", To: "+919811112222", Type: "text", Text: &TextBody{Body: "x"}},
		"read without id": {MessagingProduct: "whatsapp", Status: "read"},
		"interactive type": {MessagingProduct: "whatsapp", To: "+919811112222", Type: "interactive",
			Interactive: &Interactive{Type: "carousel", Body: &InteractiveText{Text: "x"}, Action: &Action{}}},
		"location action name": {MessagingProduct: "whatsapp", To: "+919811112222", Type: "interactive",
			Interactive: &Interactive{Type: InteractiveLocationRequest, Body: &InteractiveText{Text: "x"}, Action: &Action{Name: "send"}}},
		"callback too long": {MessagingProduct: "whatsapp", To: "+919811112222", Type: "text", Text: &TextBody{Body: "x"}, BizOpaqueCallbackData: strings.Repeat("c", 513)},
	}
	for name, m := range tests {
		if err := m.Validate(); err == nil {
			t.Errorf("%s: Validate accepted", name)
		}
	}
	if err := NewMarkRead("wamid.1").Validate(); err != nil {
		t.Errorf("mark read: %v", err)
	}
}

func TestValidationErrorsDoNotEchoContent(t *testing.T) {
	_, err := NewReplyButtons("919811112222", ButtonMessage{Body: "b", Buttons: []Button{{"secret-919811112222", "A"}, {"secret-919811112222", "B"}}})
	if err == nil || strings.Contains(err.Error(), "919811112222") {
		t.Fatalf("error = %v", err)
	}
	_, err = NewText("+91 98111 1222x", "hi")
	if err == nil || strings.Contains(err.Error(), "98111") {
		t.Fatalf("error = %v", err)
	}
}
