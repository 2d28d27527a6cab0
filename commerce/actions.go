package commerce

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// actions performs the conversation's effects within the turn's transaction.
type actions struct {
	s       *Service
	subject string
	store   string
	erased  bool
	// The turn's shopper, event and identity, and the consent, language
	// and notice version last stored (what a change is recorded against).
	sh                *Shopper
	in                Inbound
	ident             Identity
	prev              broker.Consent
	prevLang, prevSHA string
	// extra are messages to others than the shopper (a minor's parent).
	extra []OutboxItem
}

func (a *actions) Products(ctx context.Context) ([]Product, error) { return a.s.products(ctx) }

// catalogTTL bounds how stale the catalog message may be; stock is checked
// again, authoritatively, when an order reserves it.
const catalogTTL = 2 * time.Second

type catalogCache struct {
	mu       sync.Mutex
	products []Product
	at       time.Time
}

// products returns the catalog, cached briefly: every "Hi" shows it.
func (s *Service) products(ctx context.Context) ([]Product, error) {
	c := &s.catalogMemo
	c.mu.Lock()
	if time.Since(c.at) < catalogTTL && c.products != nil {
		p := c.products
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := s.Catalog.Products(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.products, c.at = p, time.Now()
	c.mu.Unlock()
	return p, nil
}

func (a *actions) ProductsBySKU(ctx context.Context, skus []string) (map[string]Product, error) {
	return a.s.Catalog.ProductsBySKU(ctx, skus)
}

func (a *actions) SetConsent(ctx context.Context, c broker.Consent) error {
	// a.prev is the consent last stored, loaded with the turn: what a
	// withdrawal is told against, without reading the subject again.
	prev := a.prev
	if a.s.Consents != nil && a.sh != nil {
		if err := a.saveConsent(ctx, c); err != nil {
			return err
		}
		return a.s.notifyWithdrawal(ctx, a.subject, prev, c)
	}
	if err := a.s.Subjects.SetConsent(ctx, a.subject, c); err != nil {
		return err
	}
	a.prev = c
	if err := a.s.notifyWithdrawal(ctx, a.subject, prev, c); err != nil {
		return err
	}
	return a.s.record(ctx, broker.Event{Actor: "shopper:chat", Action: "consent", Purpose: broker.Purpose(consentPurposes(c)),
		Subject: a.subject, Outcome: audit.OutcomeDone,
		Reason: "consent recorded"})
}

func consentPurposes(c broker.Consent) string {
	out := ""
	add := func(ok bool, p string) {
		if ok {
			if out != "" {
				out += ","
			}
			out += p
		}
	}
	add(c.Notice, "notice")
	add(c.Marketing, "marketing")
	add(c.Analytics, "analytics")
	if out == "" {
		out = "none"
	}
	return out
}

func (a *actions) sealOrder(ctx context.Context, o *Order) ([]byte, error) {
	b, _ := json.Marshal(o.Private())
	return a.s.Sealer.Seal(ctx, o.Subject, broker.Binding{Table: "orders", Column: "sealed", RowID: o.ID}, b)
}

func (a *actions) CreateOrder(ctx context.Context, o *Order) error {
	qty := map[string]int{}
	for _, l := range o.Lines {
		qty[l.SKU] += l.Quantity
	}
	if err := a.s.Stock.ReserveStock(ctx, qty); err != nil {
		return err
	}
	sealed, err := a.sealOrder(ctx, o)
	if err != nil {
		return err
	}
	return a.s.Orders.CreateOrder(ctx, OrderRow{Order: *o, Sealed: sealed})
}

func (a *actions) OrderByReference(ctx context.Context, ref string) (*Order, error) {
	row, err := a.s.Orders.OrderByReference(ctx, ref)
	if err != nil {
		return nil, err
	}
	if row.Subject != a.subject || row.Erased {
		return nil, broker.ErrNotFound
	}
	if err := a.s.OpenOrder(ctx, &row); err != nil {
		return nil, err
	}
	return &row.Order, nil
}

// OpenOrder unseals an order's private part.
func (s *Service) OpenOrder(ctx context.Context, row *OrderRow) error {
	if row.Erased || row.Sealed == nil {
		return broker.ErrNotFound
	}
	b, err := s.Sealer.Open(ctx, row.Subject, broker.Binding{Table: "orders", Column: "sealed", RowID: row.ID}, row.Sealed)
	if err != nil {
		return err
	}
	var p OrderPrivate
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	row.SetPrivate(p)
	return nil
}

func (a *actions) OrderPaid(ctx context.Context, o *Order, p Payment) error {
	return a.s.placeOrder(ctx, o)
}

func (a *actions) CancelOrder(ctx context.Context, o *Order, reason string) error {
	return a.s.cancelOrder(ctx, o, broker.Party{ID: "chat", Kind: broker.KindShopper}, reason)
}

func (a *actions) DataSummary(ctx context.Context) (string, error) {
	if a.s.rights == nil {
		return "", errors.New("no summary service")
	}
	return a.s.rights.Summary(ctx, a.subject)
}

func (a *actions) Erase(ctx context.Context) error {
	if a.s.rights == nil {
		return broker.Errorf(broker.EUnavailable, "erasure not configured")
	}
	if err := a.s.rights.Erase(ctx, a.subject, broker.Party{ID: "chat", Kind: broker.KindShopper}, EraseRequest); err != nil {
		return err
	}
	a.erased = true
	return nil
}

// placeOrder marks a paid order placed, assigns its retailer and, when the
// retailer takes webhooks, releases the order to it through the pipeline.
func (s *Service) placeOrder(ctx context.Context, o *Order) error {
	var retailer broker.Partner
	var err error
	if o.RetailerID != "" {
		// Routed (SPEC §9): the store that accepted the offer.
		retailer, err = s.Partners.GetPartner(ctx, o.RetailerID)
	} else {
		retailer, err = s.Partners.RetailerForStore(ctx, o.Store)
	}
	if err != nil && !broker.IsNotFound(err) {
		return err
	}
	o.Status, o.PaymentStatus = StatusPlaced, PaymentCaptured
	if err := s.Orders.UpdateOrderStatus(ctx, o.ID, o.Status, o.PaymentStatus, nil); err != nil {
		return err
	}
	if s.holds != nil {
		if err := s.holds.SealInvoice(ctx, o, time.Now()); err != nil {
			return err
		}
	}
	s.inc("sieve_orders_total", "placed")
	if retailer.ID == "" {
		s.Log.Warn("order placed with no retailer to receive it")
		return nil
	}
	o.RetailerID = retailer.ID
	if err := s.Orders.SetOrderRetailer(ctx, o.ID, retailer.ID); err != nil {
		return err
	}
	return s.pushOrder(ctx, retailer, o, "order.placed")
}

// PartnerParty is the party a partner acts as.
func PartnerParty(p broker.Partner) broker.Party {
	return broker.PartyOf(p, p.Scopes, StoreJurisdiction)
}

// pushOrder releases the order view to a partner's webhook, if it has one.
func (s *Service) pushOrder(ctx context.Context, p broker.Partner, o *Order, event string) error {
	if p.WebhookURL == "" || p.Disabled {
		return nil
	}
	row, err := s.Subjects.GetSubject(ctx, o.Subject)
	if err != nil {
		return err
	}
	fields := OrderFieldsFor(p)
	if event == "order.cancelled" {
		fields = []string{"order.id", "order.status", "customer.ref"}
	}
	d, err := s.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: broker.PurposeOrderFulfilment,
		Action: "webhook " + event, Subject: o.Subject, Resource: "order:" + o.ID, State: o.Status,
		Consent: row.Consent, Restricted: row.Restricted, Jurisdiction: ShopperJurisdiction(row), Fields: fields, Record: o.Record()})
	if err != nil {
		return err
	}
	if d.Outcome == audit.OutcomeDenied {
		return nil
	}
	if ref, ok := d.Released["customer.ref"].(string); ok {
		if err := s.Subjects.RememberPartnerRef(ctx, p.ID, ref, o.Subject); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(map[string]any{"type": event, "id": broker.NewID("evt"), "created_at": time.Now().UTC(),
		"data": NewRetailerView(o.ID, d)})
	ref := broker.NewID("msg")
	payload := append([]byte(event+"\n"), body...)
	// A cancellation carries no personal data (order id, status, the
	// partner's own pseudonym), and is often caused by the shopper's
	// erasure, which shreds their key and kills what it sealed in the
	// outbox: it is sealed under the vault so that the retailer still
	// learns that the order is off.
	vault := event == "order.cancelled"
	var sealed []byte
	if vault {
		sealed, err = s.Vault.SealSecret(ctx, "outbox:"+ref, payload)
	} else {
		sealed, err = s.Sealer.Seal(ctx, o.Subject, broker.Binding{Table: "outbox", Column: "sealed", RowID: ref}, payload)
	}
	if err != nil {
		return err
	}
	_, err = s.Outbox.Enqueue(ctx, OutboxItem{Ref: ref, Kind: "partner", Subject: o.Subject, Partner: p.ID,
		VaultSealed: vault, Sealed: sealed})
	return err
}

// cancelOrder cancels an order, releases its stock and tells the retailer.
func (s *Service) cancelOrder(ctx context.Context, o *Order, by broker.Party, reason string) error {
	prev := o.Status
	o.Status = StatusCancelled
	if err := s.Orders.UpdateOrderStatus(ctx, o.ID, StatusCancelled, o.PaymentStatus, nil); err != nil {
		return err
	}
	qty := map[string]int{}
	for _, l := range o.Lines {
		qty[l.SKU] += l.Quantity
	}
	if err := s.Stock.ReleaseStock(ctx, qty); err != nil {
		return err
	}
	s.inc("sieve_orders_total", "cancelled")
	if prev == StatusRouting {
		if m, ok := s.market(); ok {
			if err := m.WithdrawOffers(ctx, o.ID); err != nil {
				return err
			}
		}
	}
	if prev == StatusPendingPayment || prev == StatusRouting || o.RetailerID == "" || by.ID == o.RetailerID {
		return nil
	}
	p, err := s.Partners.GetPartner(ctx, o.RetailerID)
	if err != nil {
		return err
	}
	return s.pushOrder(ctx, p, o, "order.cancelled")
}
