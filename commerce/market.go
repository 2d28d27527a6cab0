package commerce

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Order statuses of the marketplace (SPEC §9): an order being offered to
// candidate stores, and one no store took (final, nothing charged).
const (
	StatusRouting  = "routing"
	StatusUnserved = "unserved"
)

// DefaultOfferTTL is how long a store has to take an offer
// (BROKER_OFFER_TTL).
const DefaultOfferTTL = 60 * time.Second

// OfferFields are what a candidate store is offered: the cart, the slot
// and the postal code, never a name, phone, address or customer_ref.
var OfferFields = []string{"items", "delivery.slot", "delivery.postal_code"}

// offerIDRe is the shape of the offer ids the broker issues.
var offerIDRe = regexp.MustCompile(`^off_[a-z2-7]{26}$`)

// Offer statuses.
const (
	OfferPending   = "pending" // a later candidate, not offered yet
	OfferOpen      = "open"
	OfferAccepted  = "accepted"
	OfferDeclined  = "declined"
	OfferExpired   = "expired"
	OfferWithdrawn = "withdrawn"
)

// Offer is one order offered to one candidate store.
type Offer struct {
	ID, OrderID, PartnerID, Status string
	Rank                           int
	ExpiresAt                      time.Time
}

// MarketStore keeps offers and per-store stock (Service.Offers). PostgreSQL
// implements it; a Service without it has no marketplace (every order goes
// as before).
type MarketStore interface {
	// CreateOffers records the candidates of an order, in rank order.
	CreateOffers(ctx context.Context, orderID string, partners []string) error
	// OpenNextOffer locks the routing order and opens its best pending
	// offer until now+ttl; ok is false when the order is no longer
	// routing, an offer is already open, or none is left (left reports
	// the last case).
	OpenNextOffer(ctx context.Context, orderID string, ttl time.Duration) (o Offer, ok, left bool, err error)
	// LockOffer reads and locks a partner's offer; ENotFound when the
	// offer does not exist or is another partner's.
	LockOffer(ctx context.Context, id, partner string) (Offer, error)
	// DecideOffer sets an offer's status (accepted, declined, expired,
	// withdrawn) and its decision time.
	DecideOffer(ctx context.Context, id, status string) error
	// AssignOrder gives a routing order to the partner and makes it wait
	// for payment; false when the order is no longer routing.
	AssignOrder(ctx context.Context, orderID, partner string) (bool, error)
	// WithdrawOffers withdraws every undecided offer of an order.
	WithdrawOffers(ctx context.Context, orderID string) error
	// SetRouting moves a new order (pending_payment) to routing or
	// routing to unserved; false when it was not in the from status.
	SetOrderStatusIf(ctx context.Context, orderID, from, to string) (bool, error)
	// DueOffers locks open offers past their expiry (skipping locked
	// ones, so several brokers share the sweep).
	DueOffers(ctx context.Context, limit int) ([]Offer, error)
	// OpenOffersOf lists a partner's open, unexpired offers.
	OpenOffersOf(ctx context.Context, partner string) ([]Offer, error)
	// TakeStoreStock decrements a store's stock for the cart, all or
	// nothing; false when its stock does not cover it.
	TakeStoreStock(ctx context.Context, partner string, qty map[string]int) (bool, error)
}

// RouteResult is what routing did with a new order.
type RouteResult int

// Route results.
const (
	RouteNone     RouteResult = iota // no store declares a service area: today's flow
	RouteAccepted                    // a store accepted at once (auto-accept): ask for payment
	RoutePending                     // offered; the shopper waits for a store
	RouteUnserved                    // no store serves the address: the order ended unserved
)

// Router is the conversation's optional routing step, between the slot
// and the payment (SPEC §9).
type Router interface {
	RouteOrder(ctx context.Context, o *Order) (RouteResult, error)
}

// Market is the marketplace (SPEC §9): it routes a paid order to the
// nearest eligible stores, offers it to them in turn, takes a store's
// acceptance or refusal, expires offers nobody answered and tells the
// shopper and the stores what became of it. Its state lives in the
// Service's Offers (MarketStore); without one there is no marketplace and
// the retailer serves every order.
type Market struct{ Service *Service }

// market is the Service's MarketStore, if it has one.
func (s *Service) market() (MarketStore, bool) {
	return s.Offers, s.Offers != nil
}

func (mk *Market) offerTTL() time.Duration {
	if mk.Service.OfferTTL > 0 {
		return mk.Service.OfferTTL
	}
	return DefaultOfferTTL
}

// storesCache keeps the stores with service areas briefly: every checkout
// reads them, and they change only when an operator runs partner update.
type storesCache struct {
	mu     sync.Mutex
	stores []broker.Partner
	at     time.Time
}

const storesTTL = 2 * time.Second

func (mk *Market) routingStores(ctx context.Context) ([]broker.Partner, error) {
	c := &mk.Service.stores
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores != nil && time.Since(c.at) < storesTTL {
		return c.stores, nil
	}
	ps, err := mk.Service.Partners.RoutingStores(ctx)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		ps = []broker.Partner{}
	}
	c.stores, c.at = ps, time.Now()
	return ps, nil
}

// Candidates returns the stores whose area covers the order's postal code
// or pinned location, nearest first: by distance from the store's location
// when both are known, else in creation order (stores are given in it).
func Candidates(stores []broker.Partner, postal string, lat, lon float64) []broker.Partner {
	pinned := lat != 0 || lon != 0
	type cand struct {
		p    broker.Partner
		dist float64
		i    int
	}
	var out []cand
	for i, p := range stores {
		d := math.Inf(1)
		if pinned && p.Area.HasLocation {
			d = distanceKm(lat, lon, p.Area.Lat, p.Area.Lon)
		}
		covers := postal != "" && slices.Contains(p.Area.Serves, postal)
		if !covers && pinned && p.Area.HasLocation && p.Area.RadiusKm > 0 && d <= p.Area.RadiusKm {
			covers = true
		}
		if covers {
			out = append(out, cand{p, d, i})
		}
	}
	slices.SortStableFunc(out, func(a, b cand) int {
		switch {
		case a.dist < b.dist:
			return -1
		case a.dist > b.dist:
			return 1
		}
		return a.i - b.i
	})
	ps := make([]broker.Partner, len(out))
	for i, c := range out {
		ps[i] = c.p
	}
	return ps
}

// distanceKm is the great-circle distance (haversine).
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// RouteOrder implements Router for the conversation: within the turn's
// transaction, it offers a new order to its first candidate store.
func (a *actions) RouteOrder(ctx context.Context, o *Order) (RouteResult, error) {
	return (&Market{Service: a.s}).routeOrder(ctx, o)
}

func (mk *Market) routeOrder(ctx context.Context, o *Order) (RouteResult, error) {
	m, ok := mk.Service.market()
	if !ok {
		return RouteNone, nil
	}
	stores, err := mk.routingStores(ctx)
	if err != nil || len(stores) == 0 {
		return RouteNone, err
	}
	cands := Candidates(stores, o.PostalCode, o.Address.Lat, o.Address.Long)
	if _, err := m.SetOrderStatusIf(ctx, o.ID, StatusPendingPayment, StatusRouting); err != nil {
		return RouteNone, err
	}
	o.Status = StatusRouting
	if len(cands) == 0 {
		if err := mk.unserved(ctx, o, false); err != nil {
			return RouteNone, err
		}
		return RouteUnserved, nil
	}
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ID
	}
	if err := m.CreateOffers(ctx, o.ID, ids); err != nil {
		return RouteNone, err
	}
	res, err := mk.advance(ctx, m, o, false)
	if err != nil {
		return RouteNone, err
	}
	return res, nil
}

// advance opens the order's next offer: it releases the offer to the
// store (audited), pushes order.offered to its webhook, and accepts at
// once for an auto-accept store whose stock covers the cart. With no
// candidate left the order ends unserved. notify says whether the shopper
// must be messaged here (outside the conversation's own turn).
func (mk *Market) advance(ctx context.Context, m MarketStore, o *Order, notify bool) (RouteResult, error) {
	for {
		off, ok, left, err := m.OpenNextOffer(ctx, o.ID, mk.offerTTL())
		if err != nil {
			return RouteNone, err
		}
		if !ok {
			if left {
				return RoutePending, nil // already open elsewhere, or no longer routing
			}
			if err := mk.unserved(ctx, o, notify); err != nil {
				return RouteNone, err
			}
			return RouteUnserved, nil
		}
		p, err := mk.Service.Partners.GetPartner(ctx, off.PartnerID)
		if err != nil {
			return RouteNone, err
		}
		row, err := mk.Service.Subjects.GetSubject(ctx, o.Subject)
		if err != nil {
			return RouteNone, err
		}
		d, err := mk.Service.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: broker.PurposeOrderFulfilment,
			Action: "offer", Subject: o.Subject, Resource: "order:" + o.ID, State: StatusRouting, Consent: row.Consent,
			Jurisdiction: ShopperJurisdiction(row), Fields: OfferFields, Record: o.Record()})
		if err != nil {
			return RouteNone, err
		}
		if p.Disabled || d.Outcome == audit.OutcomeDenied {
			// Policy refuses this store the offer (no agreement, no
			// transfer basis…): it is withdrawn, the next one is asked.
			if err := m.DecideOffer(ctx, off.ID, OfferWithdrawn); err != nil {
				return RouteNone, err
			}
			continue
		}
		if p.Area.AutoAccept {
			took, err := m.TakeStoreStock(ctx, p.ID, cartQuantities(o))
			if err != nil {
				return RouteNone, err
			}
			if took {
				if err := mk.accepted(ctx, m, o, p, off, "auto_accept", notify); err != nil {
					return RouteNone, err
				}
				return RouteAccepted, nil
			}
		}
		if err := mk.pushEvent(ctx, p, o.Subject, "order.offered", OfferView(off, d)); err != nil {
			return RouteNone, err
		}
		mk.Service.inc("sieve_offers_total", "offered")
		return RoutePending, nil
	}
}

func cartQuantities(o *Order) map[string]int {
	qty := map[string]int{}
	for _, l := range o.Lines {
		qty[l.SKU] += l.Quantity
	}
	return qty
}

// OfferView is what a store sees of an offer: exactly SPEC §9's
// {"offer_id","items","slot","postal_code","expires_at"}, from the
// released fields only.
func OfferView(off Offer, d broker.Decision) map[string]any {
	v := map[string]any{"offer_id": off.ID, "expires_at": off.ExpiresAt.UTC(),
		"privacy": map[string]any{"decision_id": d.ID, "purpose": d.Purpose, "withheld": withheldNames(d)}}
	if x, ok := d.Released["items"]; ok {
		v["items"] = x
	}
	if x, ok := d.Released["delivery.slot"]; ok {
		v["slot"] = x
	}
	if x, ok := d.Released["delivery.postal_code"]; ok {
		v["postal_code"] = x
	}
	return v
}

func withheldNames(d broker.Decision) []string {
	out := d.WithheldFields()
	if out == nil {
		out = []string{}
	}
	return out
}

// accepted gives the order to the store whose offer was taken: the order
// waits for the shopper's payment, every other offer is withdrawn, the
// acceptance is audited, and the shopper gets the payment request.
func (mk *Market) accepted(ctx context.Context, m MarketStore, o *Order, p broker.Partner, off Offer, how string, notify bool) error {
	ok, err := m.AssignOrder(ctx, o.ID, p.ID)
	if err != nil {
		return err
	}
	if !ok {
		return broker.Errorf(broker.EConflict, "the order is no longer open to offers")
	}
	if err := m.DecideOffer(ctx, off.ID, OfferAccepted); err != nil {
		return err
	}
	if err := m.WithdrawOffers(ctx, o.ID); err != nil {
		return err
	}
	o.Status, o.RetailerID = StatusPendingPayment, p.ID
	dec, err := mk.auditOfferID(ctx, PartnerParty(p).Actor(), "offer accept", o, how)
	if err != nil {
		return err
	}
	if d, ok := ctx.Value(decisionKey{}).(*string); ok {
		*d = dec
	}
	mk.Service.inc("sieve_offers_total", "accepted")
	if notify {
		return mk.Service.SendToShopper(ctx, o.Subject, o.Store, orderDetailsReply(o))
	}
	return nil
}

// unserved ends an order no store took: nothing is charged (it never
// reached payment), its stock is released, and the shopper is told.
func (mk *Market) unserved(ctx context.Context, o *Order, notify bool) error {
	m, _ := mk.Service.market()
	ok, err := m.SetOrderStatusIf(ctx, o.ID, StatusRouting, StatusUnserved)
	if err != nil || !ok {
		return err
	}
	o.Status = StatusUnserved
	if err := m.WithdrawOffers(ctx, o.ID); err != nil {
		return err
	}
	if err := mk.Service.Stock.ReleaseStock(ctx, cartQuantities(o)); err != nil {
		return err
	}
	if err := mk.auditOffer(ctx, "system:router", "route unserved", o, "no_store"); err != nil {
		return err
	}
	mk.Service.inc("sieve_orders_total", StatusUnserved)
	if notify {
		return mk.Service.SendToShopper(ctx, o.Subject, o.Store, UnservedReply(o))
	}
	return nil
}

// UnservedReply tells the shopper no store could take the order.
func UnservedReply(o *Order) Reply {
	return Reply{Kind: ReplyText, Body: fmt.Sprintf("Sorry, no store near %s could take your order %s. "+
		"Nothing was charged. Send a new cart to try again.", o.PostalCode, o.ID)}
}

// RoutingReply tells the shopper the order is being offered to stores.
func RoutingReply(o *Order) Reply {
	return Reply{Kind: ReplyText, Body: fmt.Sprintf("Finding the nearest store that delivers to %s for order %s. "+
		"You'll get the payment request here as soon as a store takes it.", o.PostalCode, o.ID)}
}

// orderDetailsReply is the payment request of an order (step 6).
func orderDetailsReply(o *Order) Reply {
	return Reply{Kind: ReplyOrderDetails, Header: "Your order", Body: fmt.Sprintf("Order %s, delivery %s. "+
		"Tap \"Review and pay\" to pay %s with UPI.", o.ID, o.Slot, broker.INR(o.Total)),
		Order: &OrderDetails{ReferenceID: o.ReferenceID, Items: o.Lines, Subtotal: broker.INR(o.Subtotal),
			Tax: broker.INR(o.Tax), Shipping: broker.INR(o.Shipping), Total: broker.INR(o.Total)}}
}

// Offer decisions' reason codes in the audit log.
const (
	OfferReasonAccepted = "accepted"
	OfferReasonDeclined = "declined"
	OfferReasonExpired  = "expired"
)

func (mk *Market) auditOffer(ctx context.Context, actor, action string, o *Order, reason string) error {
	_, err := mk.auditOfferID(ctx, actor, action, o, reason)
	return err
}

// auditOfferID appends an offer decision's entry and returns its id.
func (mk *Market) auditOfferID(ctx context.Context, actor, action string, o *Order, reason string) (string, error) {
	id := broker.NewID("dec")
	return id, mk.Service.record(ctx, broker.Event{Time: mk.Service.now(), DecisionID: id, Actor: actor,
		Action: action, Purpose: broker.PurposeOrderFulfilment, Subject: o.Subject,
		Resource: "order:" + o.ID, Outcome: audit.OutcomeDone, Reason: reason})
}

// loadOrder reads and unseals an order.
func (mk *Market) loadOrder(ctx context.Context, id string) (*Order, error) {
	row, _, err := mk.Service.Orders.GetOrderWithSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := mk.Service.OpenOrder(ctx, &row); err != nil {
		return nil, err
	}
	return &row.Order, nil
}

// decideOffer locks the partner's offer and checks it is still open: an
// unknown offer or another store's is 404; one already decided or past
// its expiry is 409, and nothing changes.
func (mk *Market) decideOffer(ctx context.Context, m MarketStore, p broker.Partner, id string) (Offer, error) {
	if !offerIDRe.MatchString(id) {
		return Offer{}, broker.Errorf(broker.ENotFound, "no such offer")
	}
	off, err := m.LockOffer(ctx, id, p.ID)
	if broker.IsNotFound(err) {
		return Offer{}, broker.Errorf(broker.ENotFound, "no such offer")
	}
	if err != nil {
		return Offer{}, err
	}
	switch {
	case off.Status == OfferPending:
		return Offer{}, broker.Errorf(broker.ENotFound, "no such offer")
	case off.Status != OfferOpen:
		return Offer{}, broker.Errorf(broker.EConflict, "the offer is %s", off.Status)
	case !mk.Service.now().Before(off.ExpiresAt):
		return Offer{}, broker.Errorf(broker.EConflict, "the offer is expired")
	}
	return off, nil
}

// decisionKey carries, in a context, where accepted stores its audit
// entry's id for the HTTP answer.
type decisionKey struct{}

// OfferResult is the answer to an offer's acceptance or decline.
type OfferResult struct {
	OfferID  string `json:"offer_id"`
	OrderID  string `json:"order_id"`
	Status   string `json:"status"`
	Decision string `json:"decision_id"`
}

// AcceptOffer takes an open offer for the store: first acceptance wins.
func (mk *Market) AcceptOffer(ctx context.Context, p broker.Partner, id string) (OfferResult, error) {
	m, ok := mk.Service.market()
	if !ok {
		return OfferResult{}, broker.Errorf(broker.ENotFound, "no such offer")
	}
	var orderID, dec string
	ctx = context.WithValue(ctx, decisionKey{}, &dec)
	err := mk.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		off, err := mk.decideOffer(ctx, m, p, id)
		if err != nil {
			return err
		}
		o, err := mk.loadOrder(ctx, off.OrderID)
		if err != nil {
			return err
		}
		orderID = o.ID
		return mk.accepted(ctx, m, o, p, off, OfferReasonAccepted, true)
	})
	if err != nil {
		return OfferResult{}, err
	}
	mk.Service.WakeSender()
	return OfferResult{OfferID: id, OrderID: orderID, Status: OfferAccepted, Decision: dec}, nil
}

// DeclineOffer declines an open offer; the next candidate gets it.
func (mk *Market) DeclineOffer(ctx context.Context, p broker.Partner, id string) (OfferResult, error) {
	m, ok := mk.Service.market()
	if !ok {
		return OfferResult{}, broker.Errorf(broker.ENotFound, "no such offer")
	}
	var orderID, dec string
	err := mk.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		off, err := mk.decideOffer(ctx, m, p, id)
		if err != nil {
			return err
		}
		if err := m.DecideOffer(ctx, off.ID, OfferDeclined); err != nil {
			return err
		}
		o, err := mk.loadOrder(ctx, off.OrderID)
		if err != nil {
			return err
		}
		orderID = o.ID
		if dec, err = mk.auditOfferID(ctx, PartnerParty(p).Actor(), "offer decline", o, OfferReasonDeclined); err != nil {
			return err
		}
		mk.Service.inc("sieve_offers_total", "declined")
		_, err = mk.advance(ctx, m, o, true)
		return err
	})
	if err != nil {
		return OfferResult{}, err
	}
	mk.Service.WakeSender()
	return OfferResult{OfferID: id, OrderID: orderID, Status: OfferDeclined, Decision: dec}, nil
}

// OpenOffers lists the store's open offers, each released (and audited)
// through the pipeline as the offer view.
func (mk *Market) OpenOffers(ctx context.Context, p broker.Partner) ([]map[string]any, error) {
	out := []map[string]any{}
	m, ok := mk.Service.market()
	if !ok {
		return out, nil
	}
	offs, err := m.OpenOffersOf(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	for _, off := range offs {
		row, subj, err := mk.Service.Orders.GetOrderWithSubject(ctx, off.OrderID)
		if err != nil || row.Status != StatusRouting || subj.Erased {
			continue
		}
		if err := mk.Service.OpenOrder(ctx, &row); err != nil {
			continue
		}
		d, err := mk.Service.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: broker.PurposeOrderFulfilment,
			Action: "offer", Subject: row.Subject, Resource: "order:" + row.ID, State: StatusRouting, Consent: subj.Consent,
			Jurisdiction: ShopperJurisdiction(subj), Fields: OfferFields, Record: row.Record()})
		if err != nil {
			return nil, err
		}
		if d.Outcome == audit.OutcomeDenied {
			continue
		}
		out = append(out, OfferView(off, d))
	}
	return out, nil
}

// ExpireOffers expires the offers past their time and moves each order on
// to its next candidate (or unserved); it returns how many it expired.
func (mk *Market) ExpireOffers(ctx context.Context) (int, error) {
	m, ok := mk.Service.market()
	if !ok {
		return 0, nil
	}
	n := 0
	err := mk.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		due, err := m.DueOffers(ctx, 50)
		if err != nil {
			return err
		}
		for _, off := range due {
			if err := m.DecideOffer(ctx, off.ID, OfferExpired); err != nil {
				return err
			}
			o, err := mk.loadOrder(ctx, off.OrderID)
			if err != nil {
				if broker.IsNotFound(err) {
					continue // erased meanwhile
				}
				return err
			}
			if err := mk.auditOffer(ctx, "system:router", "offer expire", o, OfferReasonExpired); err != nil {
				return err
			}
			mk.Service.inc("sieve_offers_total", "expired")
			if _, err := mk.advance(ctx, m, o, true); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// RunOfferSweeper expires offers until ctx ends. Several brokers may run
// it: each locks the offers it expires, skipping those another holds.
func (mk *Market) RunOfferSweeper(ctx context.Context) error {
	if _, ok := mk.Service.market(); !ok {
		<-ctx.Done()
		return nil
	}
	tick := mk.offerTTL() / 10
	tick = min(max(tick, 100*time.Millisecond), time.Second)
	return broker.Every(ctx, tick, tick, func(ctx context.Context) {
		if _, err := mk.ExpireOffers(ctx); err != nil && ctx.Err() == nil {
			mk.Service.Log.Warn("offer sweep failed", "error", broker.ErrorCode(err))
		}
	})
}

// pushEvent sends a partner event to its webhook through the outbox,
// sealed under the shopper's key (it carries released data).
func (mk *Market) pushEvent(ctx context.Context, p broker.Partner, subject, event string, data any) error {
	if p.WebhookURL == "" || p.Disabled {
		return nil
	}
	body, _ := json.Marshal(map[string]any{"type": event, "id": broker.NewID("evt"), "created_at": time.Now().UTC(), "data": data})
	ref := broker.NewID("msg")
	payload := append([]byte(event+"\n"), body...)
	sealed, err := mk.Service.Sealer.Seal(ctx, subject, broker.Binding{Table: "outbox", Column: "sealed", RowID: ref}, payload)
	if err != nil {
		return err
	}
	_, err = mk.Service.Outbox.Enqueue(ctx, OutboxItem{Ref: ref, Kind: "partner", Subject: subject, Partner: p.ID, Sealed: sealed})
	return err
}

// route is the conversation's routing step after the slot (SPEC §9): done
// is false when the order goes on to payment at once (no marketplace, or a
// store auto-accepted it).
func (c *Conversation) route(ctx context.Context, s *Session, o *Order, slotID, label string, act Actions) ([]Reply, bool, error) {
	rt, ok := act.(Router)
	if !ok {
		return nil, false, nil
	}
	res, err := rt.RouteOrder(ctx, o)
	if err != nil {
		return nil, true, err
	}
	switch res {
	case RoutePending:
		s.State, s.SlotID, s.SlotLabel, s.OrderID = StateRouting, slotID, label, o.ID
		return []Reply{RoutingReply(o)}, true, nil
	case RouteUnserved:
		*s = Session{State: StateBrowsing}
		return []Reply{UnservedReply(o)}, true, nil
	}
	return nil, false, nil
}

// routingWait answers a shopper whose order is with the stores: still
// waiting, on to payment once a store took it, or back to browsing when
// none did (they were told) or it was cancelled.
func (c *Conversation) routingWait(ctx context.Context, s *Session, act Actions) ([]Reply, error) {
	o, err := act.OrderByReference(ctx, s.OrderID+"-1")
	if err != nil && !broker.IsNotFound(err) {
		return nil, err
	}
	switch {
	case err == nil && o.Status == StatusRouting:
		return []Reply{{Kind: ReplyText, Body: "Still finding a store for your order. Say \"cancel\" to cancel it."}}, nil
	case err == nil && o.Status == StatusPendingPayment:
		s.State = StatePayment
		return []Reply{orderDetailsReply(o)}, nil
	}
	*s = Session{State: StateBrowsing}
	return c.catalog(ctx, act, "")
}

// OfferRecord is one offer as the dashboard lists it: ids, the store,
// status and times, never an item, slot or address.
type OfferRecord struct {
	OfferID   string
	OrderID   string
	StoreID   string
	Status    string
	Rank      int
	CreatedAt time.Time
	DecidedAt *time.Time
}
