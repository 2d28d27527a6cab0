package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// SimAPI is what a shopper needs from the fake Send API: the messages the
// broker sent to it, and a way to pay. *Store implements it in process,
// *SimClient over HTTP against a separate `wasim serve`.
type SimAPI interface {
	// Sent returns the records for recipient to with Seq > after, waiting up
	// to wait for the first one.
	Sent(ctx context.Context, to string, after int64, wait time.Duration) ([]Record, error)
	// CapturePayment pays an order_details message.
	CapturePayment(ctx context.Context, c Capture) (*whatsapp.PaymentRecord, error)
	// Media returns a file the broker uploaded (a document it sent).
	Media(ctx context.Context, id string) (Media, error)
}

// SimClient is a SimAPI over HTTP (the /_sim endpoints of `wasim serve`).
type SimClient struct {
	BaseURL string
	Client  *http.Client
}

func (c *SimClient) http() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return &http.Client{Timeout: 40 * time.Second}
}

// Sent implements SimAPI with GET /_sim/messages.
func (c *SimClient) Sent(ctx context.Context, to string, after int64, wait time.Duration) ([]Record, error) {
	q := url.Values{"to": {to}, "after": {strconv.FormatInt(after, 10)}}
	if wait > 0 {
		q.Set("wait", min(wait, 30*time.Second).String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/_sim/messages?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim: list messages: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sim: list messages: HTTP %d", resp.StatusCode)
	}
	var recs []Record
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&recs); err != nil {
		return nil, fmt.Errorf("sim: list messages: %w", err)
	}
	return recs, nil
}

// CapturePayment implements SimAPI with POST /_sim/payments.
func (c *SimClient) CapturePayment(ctx context.Context, capture Capture) (*whatsapp.PaymentRecord, error) {
	body, _ := json.Marshal(capture)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/_sim/payments", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim: capture payment: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sim: capture payment: HTTP %d", resp.StatusCode)
	}
	var rec whatsapp.PaymentRecord
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("sim: capture payment: %w", err)
	}
	return &rec, nil
}

// CartItem is a product the shopper orders.
type CartItem struct {
	SKU      string
	Quantity int
}

// ParseCartItems reads "SKU-A:2,SKU-B:1" (a missing quantity is 1).
func ParseCartItems(s string) ([]CartItem, error) {
	var items []CartItem
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sku, qty, found := strings.Cut(part, ":")
		q := 1
		if found {
			n, err := strconv.Atoi(strings.TrimSpace(qty))
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("bad quantity in %q", part)
			}
			q = n
		}
		items = append(items, CartItem{SKU: strings.TrimSpace(sku), Quantity: q})
	}
	return items, nil
}

// Steps of the purchase conversation, as the shopper waits for them.
const (
	StepConsent = iota + 1
	StepCatalog
	StepCart
	StepAddress
	StepSlot
	StepPayment
	StepConfirmation
)

var stepNames = map[int]string{
	StepConsent:      "1/7 privacy notice (button consent:accept)",
	StepCatalog:      "2/7 catalog (product_list, catalog_message or SKU list)",
	StepCart:         "3/7 cart summary (button cart:confirm)",
	StepAddress:      "4/7 address request (location_request_message or address_message)",
	StepSlot:         "5/7 delivery slot list (rows slot:<id>)",
	StepPayment:      "6/7 payment request (order_details)",
	StepConfirmation: "7/7 confirmation text naming ord_…",
}

// StepError reports the step a shopper was waiting at when it gave up.
type StepError struct {
	Step   int
	Waited time.Duration
	// Last is the kind of the last broker message seen ("" when none).
	Last string
	Err  error
}

// Error implements error.
func (e *StepError) Error() string {
	msg := fmt.Sprintf("shopper: waiting at step %s", stepNames[e.Step])
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	msg += fmt.Sprintf(": no matching broker message within %s", e.Waited.Round(time.Millisecond))
	if e.Last != "" {
		msg += " (last broker message: " + e.Last + ")"
	} else {
		msg += " (the broker sent nothing: is it running with WHATSAPP_API_BASE pointing at wasim?)"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *StepError) Unwrap() error { return e.Err }

// Result is the outcome of a completed purchase.
type Result struct {
	OrderID        string          `json:"order_id"`
	ReferenceID    string          `json:"reference_id"`
	Total          whatsapp.Amount `json:"total"`
	Elapsed        time.Duration   `json:"elapsed_ns"`
	BrokerMessages int             `json:"broker_messages"`
	WebhooksSent   int             `json:"webhooks_sent"`
}

// Shopper is a scripted shopper that buys groceries from the broker over
// the simulated WhatsApp: it posts signed webhooks to the broker and reads
// the broker's answers from the fake Send API. The conversation is driven by
// what the broker sends (stable reply ids), not by fixed timing.
type Shopper struct {
	// WaID is the shopper's phone number in digits, or a BSUID.
	WaID string
	// User, when set, is who the shopper is to WhatsApp (phone, BSUID,
	// parent BSUID, username); WaID then follows its address.
	User *User
	Name string
	// Webhooks delivers the shopper's messages and statuses to the broker.
	Webhooks *WebhookSender
	// Sim reads the broker's sends and captures payments.
	Sim SimAPI
	// Prices are known catalog prices, used for the order's item_price;
	// prices stated in the broker's messages are learnt as well. Unknown
	// prices are sent as 0 (the broker prices carts from its own catalog).
	Prices map[string]whatsapp.Amount
	// Items is the cart; when empty the shopper buys the first two products
	// offered (2 × the first, 1 × the second).
	Items []CartItem
	// MarketingOptIn answers the marketing opt-in with marketing:yes.
	MarketingOptIn bool
	// TextAddress, when set, answers the address request with this text
	// instead of a shared location.
	TextAddress string
	// Location is shared for the address (DemoLocation when zero).
	Location whatsapp.Location
	// Pincode is the shopper's PIN code (the area whose stores get the
	// order, SPEC §9): it fills the address_message form and the shared
	// location's address; "" means DemoLocation's 560001.
	Pincode string
	// StepTimeout is how long the shopper waits for the broker's next step
	// (default 30 s).
	StepTimeout time.Duration
	// NoReceipts disables the delivered/read statuses for broker messages.
	NoReceipts bool
	// Transcript receives a readable log of the chat; nil is silent.
	Transcript io.Writer

	start    time.Time
	webhooks int
}

// shopState tracks the conversation.
type shopState struct {
	consentAsked, consentDone     bool
	marketingAsked, marketingDone bool
	catalogSeen                   bool
	skus                          []string
	orderSent, cartDone           bool
	addressDone, slotDone         bool
	paid                          bool
	payment                       *PaymentRequest
	orderID                       string
	last                          string
	brokerMessages                int
}

func (st *shopState) step() int {
	switch {
	case !st.orderSent && !st.consentDone && !st.catalogSeen:
		return StepConsent
	case !st.orderSent:
		return StepCatalog
	case !st.cartDone:
		return StepCart
	case !st.addressDone:
		return StepAddress
	case !st.slotDone:
		return StepSlot
	case !st.paid:
		return StepPayment
	default:
		return StepConfirmation
	}
}

func (s *Shopper) logf(format string, args ...any) {
	if s.Transcript == nil {
		return
	}
	fmt.Fprintf(s.Transcript, "[%7.3fs] ", time.Since(s.start).Seconds())
	fmt.Fprintf(s.Transcript, format, args...)
	fmt.Fprintln(s.Transcript)
}

func (s *Shopper) name() string {
	if s.Name != "" {
		return s.Name
	}
	return "shopper"
}

// send delivers messages (and statuses) from this shopper.
func (s *Shopper) send(ctx context.Context, msgs []whatsapp.Message, statuses []whatsapp.Status) error {
	var contacts []whatsapp.Contact
	if len(msgs) > 0 {
		contacts = []whatsapp.Contact{ContactFor(s.WaID, s.Name)}
		if s.User != nil {
			contacts = []whatsapp.Contact{s.User.Contact(s.Name)}
			for i := range msgs {
				s.User.Stamp(&msgs[i])
			}
		}
	}
	if _, err := s.Webhooks.Send(ctx, s.Webhooks.Notification(contacts, msgs, statuses)); err != nil {
		return err
	}
	s.webhooks++
	return nil
}

func (s *Shopper) say(ctx context.Context, m whatsapp.Message, what string) error {
	s.logf("%s → %s", s.name(), what)
	return s.send(ctx, []whatsapp.Message{m}, nil)
}

// Run performs the purchase and returns the order the broker confirmed.
func (s *Shopper) Run(ctx context.Context) (*Result, error) {
	if s.User != nil {
		s.WaID = s.User.Address()
	}
	if s.WaID == "" || s.Webhooks == nil || s.Sim == nil {
		return nil, errors.New("shopper: WaID, Webhooks and Sim are required")
	}
	s.start = time.Now()
	timeout := s.StepTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	prices := make(map[string]whatsapp.Amount, len(s.Prices))
	for k, v := range s.Prices {
		prices[k] = v
	}
	// Ignore what the broker sent this shopper before.
	old, err := s.Sim.Sent(ctx, s.WaID, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shopper: %w", err)
	}
	var after int64
	if len(old) > 0 {
		after = old[len(old)-1].Seq
	}
	st := &shopState{}
	if err := s.say(ctx, TextMessage(s.WaID, "Hi"), `text "Hi"`); err != nil {
		return nil, &StepError{Step: StepConsent, Err: err}
	}
	lastProgress := time.Now()
	for st.orderID == "" {
		wait := min(time.Second, time.Until(lastProgress.Add(timeout)))
		if wait <= 0 {
			return nil, &StepError{Step: st.step(), Waited: timeout, Last: st.last}
		}
		recs, err := s.Sim.Sent(ctx, s.WaID, after, wait)
		if err != nil {
			return nil, &StepError{Step: st.step(), Err: err}
		}
		if len(recs) == 0 {
			continue
		}
		after = recs[len(recs)-1].Seq
		before := st.step()
		if err := s.handle(ctx, st, recs, prices); err != nil {
			return nil, &StepError{Step: st.step(), Err: err}
		}
		if st.step() != before {
			lastProgress = time.Now()
		}
	}
	return &Result{
		OrderID:        st.orderID,
		ReferenceID:    st.payment.ReferenceID,
		Total:          st.payment.Total,
		Elapsed:        time.Since(s.start),
		BrokerMessages: st.brokerMessages,
		WebhooksSent:   s.webhooks,
	}, nil
}

// handle reacts to a batch of broker messages.
func (s *Shopper) handle(ctx context.Context, st *shopState, recs []Record, prices map[string]whatsapp.Amount) error {
	var receipts []whatsapp.Status
	type parsed struct {
		rec Record
		msg *whatsapp.OutboundMessage
		r   Rendered
	}
	var batch []parsed
	for _, rec := range recs {
		if rec.Type == TypeMarkRead {
			continue
		}
		m, err := rec.Message()
		if err != nil {
			return err
		}
		r := Render(rec)
		st.brokerMessages++
		st.last = rec.Kind()
		s.logf("bot → %s:\n%s", rec.Kind(), indent(r.Text))
		batch = append(batch, parsed{rec, m, r})
		receipts = append(receipts,
			StatusUpdate(rec.MessageID, whatsapp.StatusDelivered, s.WaID),
			StatusUpdate(rec.MessageID, whatsapp.StatusRead, s.WaID))
	}
	if len(receipts) > 0 && !s.NoReceipts {
		if err := s.send(ctx, nil, receipts); err != nil {
			return fmt.Errorf("read receipts: %w", err)
		}
	}
	for _, p := range batch {
		for k, v := range p.r.Prices {
			prices[k] = v
		}
		if err := s.react(ctx, st, p.rec, p.msg, p.r); err != nil {
			return err
		}
	}
	if !st.orderSent && st.catalogSeen && (st.consentDone || !st.consentAsked) && (st.marketingDone || !st.marketingAsked) {
		items := s.Items
		if len(items) == 0 {
			for i, sku := range st.skus {
				if i == 2 {
					break
				}
				items = append(items, CartItem{SKU: sku, Quantity: 2 - i})
			}
		}
		if len(items) > 0 {
			var pis []whatsapp.ProductItem
			var desc []string
			for _, it := range items {
				price := prices[it.SKU]
				if price.Offset == 0 {
					price = whatsapp.Paise(0)
				}
				pis = append(pis, whatsapp.ProductItem{ProductRetailerID: it.SKU, Quantity: whatsapp.Quantity(it.Quantity), ItemPrice: price.JSONNumber(), Currency: whatsapp.CurrencyINR})
				desc = append(desc, fmt.Sprintf("%d × %s @ %s", it.Quantity, it.SKU, inr(price)))
			}
			if err := s.say(ctx, OrderMessage(s.WaID, whatsapp.DevCatalogID, "", pis), "order "+strings.Join(desc, ", ")); err != nil {
				return err
			}
			st.orderSent = true
		}
	}
	return nil
}

func hasOption(opts []Option, id string) (Option, bool) {
	for _, o := range opts {
		if o.ID == id {
			return o, true
		}
	}
	return Option{}, false
}

// react answers one broker message.
func (s *Shopper) react(ctx context.Context, st *shopState, rec Record, m *whatsapp.OutboundMessage, r Rendered) error {
	tap := func(o Option) error {
		if o.Kind == whatsapp.ReplyTypeList {
			return s.say(ctx, ListReplyMessage(s.WaID, o.ContextID, o.ID, o.Title, o.Description), "list_reply "+o.ID)
		}
		return s.say(ctx, ButtonReplyMessage(s.WaID, o.ContextID, o.ID, o.Title), "button_reply "+o.ID)
	}
	itype := ""
	if m.Interactive != nil {
		itype = m.Interactive.Type
	}
	switch {
	case itype == whatsapp.InteractiveButton:
		if o, ok := hasOption(r.Options, "consent:accept"); ok {
			st.consentAsked = true
			if !st.consentDone {
				if err := tap(o); err != nil {
					return err
				}
				st.consentDone = true
			}
		}
		want := "marketing:no"
		if s.MarketingOptIn {
			want = "marketing:yes"
		}
		if o, ok := hasOption(r.Options, want); ok {
			st.marketingAsked = true
			if !st.marketingDone {
				if err := tap(o); err != nil {
					return err
				}
				st.marketingDone = true
			}
		}
		if o, ok := hasOption(r.Options, "cart:confirm"); ok && st.orderSent && !st.cartDone {
			if err := tap(o); err != nil {
				return err
			}
			st.cartDone = true
		}
	case itype == whatsapp.InteractiveProductList, itype == whatsapp.InteractiveCatalogMessage:
		st.catalogSeen = true
		st.skus = appendUnique(st.skus, r.SKUs...)
	case itype == whatsapp.InteractiveAddress:
		// The India address form: answered with the demo address in
		// the shopper's PIN code (a pin or text would do as well).
		if st.orderSent && !st.addressDone {
			if err := s.say(ctx, AddressFormMessage(s.WaID, rec.MessageID, DemoAddress(s.Pincode)),
				"address form "+DemoAddress(s.Pincode).PinCode); err != nil {
				return err
			}
			st.cartDone, st.addressDone = true, true
		}
	case itype == whatsapp.InteractiveLocationRequest:
		if st.orderSent && !st.addressDone {
			var err error
			if s.TextAddress != "" {
				err = s.say(ctx, TextMessage(s.WaID, s.TextAddress), "text address")
			} else {
				loc := s.Location
				if loc == (whatsapp.Location{}) {
					loc = DemoLocation
					if s.Pincode != "" {
						loc.Address = strings.Replace(loc.Address, "560001", s.Pincode, 1)
					}
				}
				err = s.say(ctx, LocationMessage(s.WaID, rec.MessageID, loc), "location "+loc.Name)
			}
			if err != nil {
				return err
			}
			st.cartDone, st.addressDone = true, true
		}
	case itype == whatsapp.InteractiveList:
		if st.orderSent && !st.slotDone {
			for _, o := range r.Options {
				if strings.HasPrefix(o.ID, "slot:") {
					if err := tap(o); err != nil {
						return err
					}
					st.cartDone, st.addressDone, st.slotDone = true, true, true
					break
				}
			}
		}
	case itype == whatsapp.InteractiveOrderDetails:
		if r.Payment != nil && !st.paid {
			if err := s.pay(ctx, r.Payment); err != nil {
				return err
			}
			st.payment = r.Payment
			st.cartDone, st.addressDone, st.slotDone, st.paid = true, true, true, true
		}
	case itype == whatsapp.InteractiveOrderStatus:
		// The broker confirms a paid order in its first order_status
		// update (one chargeable message instead of two).
		if st.paid && st.orderID == "" && m.Interactive.Body != nil {
			if id := orderIDRe.FindString(m.Interactive.Body.Text); id != "" {
				st.orderID = id
				s.logf("%s: order %s confirmed", s.name(), id)
			}
		}
	case m.Type == whatsapp.TypeText:
		if len(r.SKUs) > 0 && !st.orderSent {
			st.catalogSeen = true
			st.skus = appendUnique(st.skus, r.SKUs...)
		}
		if st.paid {
			if id := orderIDRe.FindString(m.Text.Body); id != "" {
				st.orderID = id
				s.logf("%s: order %s confirmed", s.name(), id)
			}
		}
	}
	return nil
}

// pay captures the payment at the simulated WhatsApp Pay and sends the
// "captured" payment status webhook.
func (s *Shopper) pay(ctx context.Context, p *PaymentRequest) error {
	rec, err := s.Sim.CapturePayment(ctx, Capture{ConfigurationName: p.ConfigurationName, ReferenceID: p.ReferenceID, Method: "upi"})
	if err != nil {
		return fmt.Errorf("pay %s: %w", p.ReferenceID, err)
	}
	s.logf("%s pays %s via UPI (ref %s)", s.name(), inr(rec.Amount), rec.ReferenceID)
	s.logf("whatsapp pay → payment status captured")
	return s.send(ctx, nil, []whatsapp.Status{PaymentStatus(s.WaID, rec)})
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
