package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// fakeBroker plays the broker's side of the conversation: it verifies and
// decodes webhooks and answers through the fake Send API with the Cloud API
// client, as brokerd does.
type fakeBroker struct {
	t      *testing.T
	secret []byte
	client *whatsapp.Client
	stopAt string // a state at which the broker goes silent
	// ignorePayments drops payment statuses (the order is never confirmed).
	ignorePayments bool
	catalog        map[string]whatsapp.PaymentItem

	mu       sync.Mutex
	seen     map[string]bool
	state    map[string]string
	cart     map[string][]whatsapp.PaymentItem
	refs     map[string]string
	statuses map[string]string // wamid -> status (monotonic)
	orders   []whatsapp.OrderLine
	unsigned int
}

func newFakeBroker(t *testing.T, secret []byte, apiBase string) *fakeBroker {
	return &fakeBroker{
		t: t, secret: secret, client: whatsapp.NewClient(apiBase, testToken),
		catalog: map[string]whatsapp.PaymentItem{
			"SKU-ATTA-5KG": {RetailerID: "SKU-ATTA-5KG", Name: "Atta 5 kg", Amount: whatsapp.Paise(28950)},
			"SKU-MILK-1L":  {RetailerID: "SKU-MILK-1L", Name: "Toned milk 1 L", Amount: whatsapp.Paise(6400)},
			"SKU-RICE-5KG": {RetailerID: "SKU-RICE-5KG", Name: "Rice 5 kg", Amount: whatsapp.Paise(42000)},
		},
		seen: map[string]bool{}, state: map[string]string{}, cart: map[string][]whatsapp.PaymentItem{},
		refs: map[string]string{}, statuses: map[string]string{},
	}
}

func (b *fakeBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !whatsapp.VerifySignature(b.secret, body, r.Header.Get(whatsapp.SignatureHeader)) {
		b.mu.Lock()
		b.unsigned++
		b.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	n, err := whatsapp.Decode(body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range n.Events() {
		if err := b.handle(r.Context(), e); err != nil {
			b.t.Errorf("fake broker: %v", err)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// send returns a function that sends a built message.
func (b *fakeBroker) send(ctx context.Context) func(*whatsapp.OutboundMessage, error) error {
	return func(m *whatsapp.OutboundMessage, err error) error {
		if err != nil {
			return err
		}
		_, err = b.client.Send(ctx, whatsapp.DevPhoneNumberID, m)
		return err
	}
}

func (b *fakeBroker) handle(ctx context.Context, e whatsapp.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[e.DedupKey()] {
		return nil
	}
	b.seen[e.DedupKey()] = true
	to := e.SubjectID()
	if e.Kind == whatsapp.EventStatus {
		s := e.Status
		if !s.IsPayment() {
			b.statuses[s.ID] = whatsapp.Advance(b.statuses[s.ID], s.Status)
			return nil
		}
		if s.Status != whatsapp.PaymentCaptured || b.ignorePayments {
			return nil
		}
		// Confirm with the lookup API, as the broker must.
		r, err := b.client.PaymentLookup(ctx, whatsapp.DevPhoneNumberID, whatsapp.DevPaymentConfiguration, s.Payment.ReferenceID)
		if err != nil {
			return err
		}
		if len(r.Payments) != 1 || !r.Payments[0].Captured() || r.Payments[0].Amount != s.Payment.Amount {
			return fmt.Errorf("lookup disagrees with the webhook: %+v", r)
		}
		b.state[to] = "done"
		return b.send(ctx)(whatsapp.NewText(to, "Thank you! Your order ord_TEST"+s.Payment.ReferenceID[4:]+" is confirmed."))
	}
	if e.Kind != whatsapp.EventMessage {
		return nil
	}
	m := e.Message
	if b.stopAt != "" && b.state[to] == b.stopAt {
		return nil
	}
	switch {
	case m.Type == whatsapp.TypeText && strings.EqualFold(m.Text.Body, "hi") && b.state[to] == "":
		b.state[to] = "consent"
		return b.send(ctx)(whatsapp.NewReplyButtons(to, whatsapp.ButtonMessage{Header: "Privacy notice", Body: "We share only what your order needs.",
			Buttons: []whatsapp.Button{{ID: "consent:accept", Title: "Accept & continue"}, {ID: "consent:decline", Title: "Decline"}}}))
	case m.Type == whatsapp.TypeText && strings.EqualFold(m.Text.Body, "hi"):
		return b.sendCatalog(ctx, to)
	case m.Interactive.ReplyID() == "consent:accept":
		b.state[to] = "marketing"
		return b.send(ctx)(whatsapp.NewReplyButtons(to, whatsapp.ButtonMessage{Body: "Offers on WhatsApp?",
			Buttons: []whatsapp.Button{{ID: "marketing:yes", Title: "Yes"}, {ID: "marketing:no", Title: "No thanks"}}}))
	case strings.HasPrefix(m.Interactive.ReplyID(), "marketing:"):
		return b.sendCatalog(ctx, to)
	case m.Type == whatsapp.TypeOrder:
		lines, err := m.Order.Lines()
		if err != nil {
			return err
		}
		b.orders = append(b.orders, lines...)
		var cart []whatsapp.PaymentItem
		for _, l := range lines {
			it := b.catalog[l.ProductRetailerID]
			it.Quantity = l.Quantity
			cart = append(cart, it)
		}
		b.cart[to], b.state[to] = cart, "cart"
		return b.send(ctx)(whatsapp.NewReplyButtons(to, whatsapp.ButtonMessage{Header: "Cart", Body: fmt.Sprintf("%d items", len(cart)),
			Buttons: []whatsapp.Button{{ID: "cart:confirm", Title: "Confirm cart"}, {ID: "cart:edit", Title: "Edit cart"}}}))
	case m.Interactive.ReplyID() == "cart:confirm":
		b.state[to] = "address"
		return b.send(ctx)(whatsapp.NewLocationRequest(to, "Where should we deliver?"))
	case m.Type == whatsapp.TypeLocation || (m.Type == whatsapp.TypeText && b.state[to] == "address"):
		b.state[to] = "slot"
		return b.send(ctx)(whatsapp.NewList(to, whatsapp.ListMessage{Body: "Pick a slot", Button: "Slots", Sections: []whatsapp.Section{{Rows: []whatsapp.Row{
			{ID: "slot:20260101T18", Title: "Today 6-8 pm"}, {ID: "slot:20260101T20", Title: "Today 8-10 pm"}}}}}))
	case strings.HasPrefix(m.Interactive.ReplyID(), "slot:"):
		b.state[to] = "pay"
		ref := fmt.Sprintf("pay_%d", len(b.refs)+1)
		b.refs[to] = ref
		return b.send(ctx)(whatsapp.NewOrderDetails(to, whatsapp.OrderDetails{Body: "Review and pay", ReferenceID: ref,
			ConfigurationName: whatsapp.DevPaymentConfiguration, Items: b.cart[to], Shipping: &whatsapp.Charge{Value: 2500, Offset: 100}}))
	}
	return nil
}

func (b *fakeBroker) sendCatalog(ctx context.Context, to string) error {
	b.state[to] = "browsing"
	if err := b.send(ctx)(whatsapp.NewProductList(to, whatsapp.ProductListMessage{Header: "Groceries", Body: "Add to cart", CatalogID: whatsapp.DevCatalogID,
		Sections: []whatsapp.ProductSection{{Title: "Staples", ProductRetailerIDs: []string{"SKU-ATTA-5KG", "SKU-RICE-5KG"}}, {Title: "Dairy", ProductRetailerIDs: []string{"SKU-MILK-1L"}}}})); err != nil {
		return err
	}
	return b.send(ctx)(whatsapp.NewText(to, "Our catalog:\nSKU-ATTA-5KG — Atta 5 kg — ₹289.50\nSKU-RICE-5KG — Rice 5 kg — ₹420.00\nSKU-MILK-1L — Toned milk 1 L — ₹64.00"))
}

// harness wires a fake Send API, a fake broker and a webhook sender.
type harness struct {
	store  *Store
	broker *fakeBroker
	ws     *WebhookSender
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	store, sim := newTestSim(t)
	secret := []byte("harness-secret")
	fb := newFakeBroker(t, secret, sim.URL+"/v25.0")
	bsrv := httptest.NewServer(fb)
	t.Cleanup(bsrv.Close)
	ws := NewWebhookSender(bsrv.URL+"/webhooks/whatsapp", secret, whatsapp.DevPhoneNumberID)
	ws.Backoff = time.Millisecond
	return &harness{store: store, broker: fb, ws: ws}
}

func TestShopperCompletesPurchase(t *testing.T) {
	for _, id := range []string{"919811112222", "IN.1410823456789012"} {
		t.Run(id, func(t *testing.T) {
			h := newHarness(t)
			var transcript bytes.Buffer
			sh := &Shopper{WaID: id, Name: "Asha", Webhooks: h.ws, Sim: h.store, StepTimeout: 5 * time.Second, Transcript: &transcript}
			res, err := sh.Run(context.Background())
			if err != nil {
				t.Fatalf("%v\n%s", err, transcript.String())
			}
			// 2 × atta (first offered) + 1 × rice (second offered) + 25.00 shipping.
			if res.OrderID != "ord_TEST1" || res.ReferenceID != "pay_1" || res.Total != whatsapp.Paise(2*28950+42000+2500) {
				t.Errorf("result %+v", res)
			}
			h.broker.mu.Lock()
			defer h.broker.mu.Unlock()
			// The order carried the prices learnt from the text fallback.
			if len(h.broker.orders) != 2 || h.broker.orders[0].UnitPrice != whatsapp.Paise(28950) || h.broker.orders[1].Quantity != 1 {
				t.Errorf("orders %+v", h.broker.orders)
			}
			read := 0
			for _, s := range h.broker.statuses {
				if s == whatsapp.StatusRead {
					read++
				}
			}
			if read != res.BrokerMessages || read < 8 {
				t.Errorf("%d messages read, %d broker messages", read, res.BrokerMessages)
			}
			if h.broker.unsigned != 0 {
				t.Errorf("%d unsigned webhooks", h.broker.unsigned)
			}
			for _, want := range []string{`Asha → text "Hi"`, "button_reply consent:accept", "button_reply marketing:no", "order 2 × SKU-ATTA-5KG @ ₹289.50",
				"button_reply cart:confirm", "location Home", "list_reply slot:20260101T18", "pays ₹1024.00 via UPI (ref pay_1)", "order ord_TEST1 confirmed"} {
				if !strings.Contains(transcript.String(), want) {
					t.Errorf("transcript lacks %q:\n%s", want, transcript.String())
				}
			}
		})
	}
}

func TestShopperReturningCustomerAndTextAddress(t *testing.T) {
	h := newHarness(t)
	first := &Shopper{WaID: "919833334444", Webhooks: h.ws, Sim: h.store, StepTimeout: 5 * time.Second}
	if _, err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The broker skips the privacy notice for a known shopper; the script copes.
	h.broker.mu.Lock()
	h.broker.state["919833334444"] = "known"
	h.broker.mu.Unlock()
	again := &Shopper{WaID: "919833334444", Webhooks: h.ws, Sim: h.store, StepTimeout: 5 * time.Second,
		Items: []CartItem{{SKU: "SKU-MILK-1L", Quantity: 3}}, TextAddress: "12 MG Road, Bengaluru 560001", NoReceipts: true}
	res, err := again.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.OrderID != "ord_TEST2" || res.Total != whatsapp.Paise(3*6400+2500) {
		t.Errorf("result %+v", res)
	}
}

func TestShopperNamesTheStepItWaitedAt(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(h *harness) SimAPI
		step   int
		text   string
		detail string
	}{
		{"no broker answer", func(h *harness) SimAPI { return NewStore() }, StepConsent, "1/7 privacy notice", "the broker sent nothing"},
		{"no address request", func(h *harness) SimAPI { h.broker.stopAt = "cart"; return h.store }, StepAddress, "4/7 address request", "last broker message: interactive/button"},
		{"no confirmation", func(h *harness) SimAPI { h.broker.ignorePayments = true; return h.store }, StepConfirmation, "7/7 confirmation", "last broker message: interactive/order_details"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sim := tt.setup(h)
			sh := &Shopper{WaID: "919844445555", Webhooks: h.ws, Sim: sim, StepTimeout: 300 * time.Millisecond}
			start := time.Now()
			_, err := sh.Run(context.Background())
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v", err)
			}
			if se.Step != tt.step || !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q at step %d, want step %d", err, se.Step, tt.step)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("gave up after %s", d)
			}
		})
	}
}

func TestChatDrivesTheBroker(t *testing.T) {
	h := newHarness(t)
	in := strings.NewReader("Hi\n")
	var out syncBuffer
	c := &Chat{WaID: "919855556666", Name: "Sana", Webhooks: h.ws, Sim: h.store, In: in, Out: &out, Linger: 300 * time.Millisecond}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"Privacy notice", "1) Accept & continue  [consent:accept]", "2) Decline  [consent:decline]", "delivered to the broker (HTTP 200"} {
		if !strings.Contains(got, want) {
			t.Errorf("chat output lacks %q:\n%s", want, got)
		}
	}
	// Answer by number, then order and share a location.
	in2 := strings.NewReader("1\n2\norder sku-atta-5kg 2 SKU-MILK-1L\nlocation\n1\npay\n")
	var out2 syncBuffer
	c2 := &Chat{WaID: "919855556666", Name: "Sana", Webhooks: h.ws, Sim: h.store, In: in2, Out: &out2, Linger: 300 * time.Millisecond}
	c2.options = c.options
	if err := c2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.broker.mu.Lock()
	defer h.broker.mu.Unlock()
	if len(h.broker.orders) != 2 || h.broker.orders[0].ProductRetailerID != "SKU-ATTA-5KG" || h.broker.orders[1].Quantity != 1 {
		t.Errorf("orders %+v\n%s", h.broker.orders, out2.String())
	}
}

func TestParseHelpers(t *testing.T) {
	items, err := ParseCartItems("SKU-A:2, SKU-B")
	if err != nil || len(items) != 2 || items[0].Quantity != 2 || items[1].Quantity != 1 {
		t.Errorf("ParseCartItems: %+v %v", items, err)
	}
	if _, err := ParseCartItems("SKU-A:0"); err == nil {
		t.Error("quantity 0 accepted")
	}
	o, err := parseOrder(strings.Fields("SKU-A 2 sku-b SKU-C 3"))
	if err != nil || len(o) != 3 || o[1].SKU != "SKU-B" || o[1].Quantity != 1 || o[2].Quantity != 3 {
		t.Errorf("parseOrder: %+v %v", o, err)
	}
	skus, prices := skusAndPrices("Catalog:\nSKU-ATTA-5KG — Atta — ₹289.50\nSKU-OIL-1L — Oil — Rs. 1,299\nSKU-X- and SKU-Y on one line ₹5")
	if strings.Join(skus, ",") != "SKU-ATTA-5KG,SKU-OIL-1L,SKU-X,SKU-Y" {
		t.Errorf("skus %v", skus)
	}
	if prices["SKU-ATTA-5KG"] != whatsapp.Paise(28950) || prices["SKU-OIL-1L"] != whatsapp.Paise(129900) || len(prices) != 2 {
		t.Errorf("prices %v", prices)
	}
}

// syncBuffer is a bytes.Buffer safe for the chat's two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
