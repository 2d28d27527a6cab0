package commerce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Orders is the partner side of the shop: the orders a store, courier or
// payment provider may read, the status moves they make, the messages
// they relay to the shopper and the data they ask for, each decided by
// the broker's release pipeline and audited. The partner orders API
// (commerce/httpapi) serves it.
type Orders struct{ Service *Service }

// refSet remembers (partner, customer_ref) pairs this service has already
// recorded, so a repeated read does not write. It belongs to one Service
// (one database): a set shared by every Service of the process would skip
// the write for a second database. It is bounded; when full it starts
// again, which costs one idempotent write per pair.
type refSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// refSetMax bounds the set: the pairs of a day's active shoppers per partner.
const refSetMax = 100_000

func (r *refSet) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.seen[key]
	return ok
}

func (r *refSet) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil || len(r.seen) >= refSetMax {
		r.seen = make(map[string]struct{})
	}
	r.seen[key] = struct{}{}
}

func (po *Orders) rememberRef(ctx context.Context, partner string, d broker.Decision, subject string) error {
	ref, ok := d.Released["customer.ref"].(string)
	if !ok {
		return nil
	}
	key := partner + "|" + ref
	if po.Service.refs.has(key) {
		return nil
	}
	if err := po.Service.Subjects.RememberPartnerRef(ctx, partner, ref, subject); err != nil {
		return err
	}
	po.Service.refs.add(key)
	return nil
}

// Refusal reasons: the codes a partner's refused request is audited with
// (SPEC §5.4: audit reasons come from fixed lists, never from input).
const (
	RefusedNoSuchOrder     = "no_such_order"        // no order with that id, or not yet paid
	RefusedNotVisible      = "not_visible"          // the order is another retailer's
	RefusedNotDispatched   = "not_dispatched"       // the order is not dispatched to this logistics partner
	RefusedNotOutForDeliv  = "not_out_for_delivery" // the delivery view is only open while out for delivery
	RefusedSubjectErased   = "subject_erased"       // the shopper was erased
	RefusedUnknownRef      = "unknown_customer_ref" // the partner never received that customer_ref
	RefusedNoDeliveryOrder = "no_dispatched_order"  // no order of that shopper is out for delivery with this partner
	// RefusedSubjectRestricted: the shopper paused processing (GDPR Art. 18).
	RefusedSubjectRestricted = "subject_restricted"
)

// RefusalReasons lists every refusal code, for tests and documentation.
var RefusalReasons = []string{RefusedNoSuchOrder, RefusedNotVisible, RefusedNotDispatched, RefusedNotOutForDeliv,
	RefusedSubjectErased, RefusedUnknownRef, RefusedNoDeliveryOrder, RefusedSubjectRestricted}

// NotFound is a not-found answer audited as a refusal. Its entry is written
// by settle, outside the request's transaction, so that the rollback of a
// refused POST does not take the refusal's entry with it; DecisionID is set
// only once that entry is durable, so no answer names an entry that does
// not exist.
type NotFound struct {
	DecisionID string
	pending    *broker.Event
}

func (e *NotFound) Error() string { return "not found" }

// Decision is the audit entry of the refusal ("" before it is written);
// the HTTP layer answers it as X-Decision-Id.
func (e *NotFound) Decision() string { return e.DecisionID }

// notFound returns an ENotFound error carrying the refusal's entry, still
// to be written by settle.
func (po *Orders) notFound(p broker.Partner, purpose broker.Purpose, resource, reason string) error {
	e := broker.Event{Time: po.Service.now(), Actor: PartnerParty(p).Actor(),
		Action: "release", Purpose: purpose, Resource: resource, Outcome: audit.OutcomeDenied, Reason: reason}
	return &broker.Error{Code: broker.ENotFound, Message: "order not found", Err: &NotFound{pending: &e}}
}

// settle writes the refusal entry err carries, if any. ctx must be the
// caller's own context, not a transaction's: the entry then commits on its
// own, whatever became of the transaction. If it cannot be written the
// answer is 503, never a not-found naming a missing entry.
func (po *Orders) settle(ctx context.Context, err error) error {
	var nf *NotFound
	if err == nil || !errors.As(err, &nf) || nf.pending == nil {
		return err
	}
	ev := *nf.pending
	nf.pending = nil
	id, aerr := po.Service.Releaser.Recorder().Record(ctx, ev)
	if aerr != nil {
		return broker.Wrap(broker.EUnavailable, aerr, "audit log unavailable")
	}
	nf.DecisionID = id
	return err
}

// orderIDRe is the shape of the order ids the broker issues (broker.NewID).
var orderIDRe = regexp.MustCompile(`^ord_[a-z2-7]{26}$`)

// orderResource names an order in the audit log. An id that is not shaped
// like ours is caller text (it could be a phone number and a name): it is
// never written into a leaf.
func orderResource(id string) string {
	if !orderIDRe.MatchString(id) {
		return "order:invalid"
	}
	return "order:" + id
}

// loadPartnerOrder returns an order the partner may see for purpose, or an
// audited not-found (see settle). A logistics partner sees an order only
// while it is out for delivery and dispatched to it, for delivery or
// support; a retailer only its own orders.
func (po *Orders) loadPartnerOrder(ctx context.Context, p broker.Partner, id string, purpose broker.Purpose) (*OrderRow, SubjectRow, error) {
	res := orderResource(id)
	if res == "order:invalid" {
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNoSuchOrder)
	}
	row, subj, err := po.Service.Orders.GetOrderWithSubject(ctx, id)
	if broker.IsNotFound(err) || (err == nil && (row.Erased || row.Status == StatusPendingPayment ||
		row.Status == StatusRouting || row.Status == StatusUnserved)) {
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNoSuchOrder)
	}
	if err != nil {
		return nil, SubjectRow{}, err
	}
	switch {
	case p.Kind == broker.KindLogistics && (purpose == broker.PurposeDelivery || purpose == broker.PurposeSupport):
		if row.LogisticsID == "" || row.LogisticsID != p.ID {
			return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNotDispatched)
		}
		if row.Status != StatusOutForDelivery {
			return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNotOutForDeliv)
		}
	case purpose == broker.PurposeDelivery:
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNotDispatched)
	case p.Kind != broker.KindRetailer || row.RetailerID != p.ID:
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedNotVisible)
	}
	if subj.Erased {
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedSubjectErased)
	}
	if subj.Restricted {
		// Paused (SPEC §5.11): to partners the order does not exist.
		return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedSubjectRestricted)
	}
	if err := po.Service.OpenOrder(ctx, &row); err != nil {
		if broker.IsNotFound(err) {
			return nil, SubjectRow{}, po.notFound(p, purpose, res, RefusedSubjectErased)
		}
		return nil, SubjectRow{}, err
	}
	return &row, subj, nil
}

// PartnerOrder releases one order to a partner for a purpose (the retailer
// for order_fulfilment, logistics for delivery).
func (po *Orders) PartnerOrder(ctx context.Context, p broker.Partner, id string, purpose broker.Purpose) (RetailerView, broker.Decision, error) {
	// A read changes nothing but the audit log, so it needs no transaction
	// of its own: the release's entry is group-committed with concurrent
	// ones, and Release returns only once it is durable.
	row, subj, err := po.loadPartnerOrder(ctx, p, id, purpose)
	if err != nil {
		return RetailerView{}, broker.Decision{}, po.settle(ctx, err)
	}
	d, err := po.Service.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: purpose,
		Subject: row.Subject, Resource: "order:" + row.ID, State: row.Status, Consent: subj.Consent, Restricted: subj.Restricted, Jurisdiction: ShopperJurisdiction(subj),
		Fields: OrderFieldsFor(p), Record: row.Record()})
	if err != nil {
		return RetailerView{}, broker.Decision{}, err
	}
	if err := po.rememberRef(ctx, p.ID, d, row.Subject); err != nil {
		return RetailerView{}, broker.Decision{}, err
	}
	return NewRetailerView(row.ID, d), d, nil
}

// PartnerOrders lists a retailer's orders, each released (and audited) on
// its own; the list itself gets one more entry naming the page.
func (po *Orders) PartnerOrders(ctx context.Context, p broker.Partner, f OrderFilter) ([]RetailerView, string, string, error) {
	var views []RetailerView
	var next, listID string
	err := po.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		views = views[:0]
		f.Retailer = p.ID
		if p.Kind != broker.KindRetailer {
			f.Retailer = "\x00none"
		}
		rows, n, err := po.Service.Orders.ListOrders(ctx, f)
		if err != nil {
			return err
		}
		next = n
		var released []string
		for i := range rows {
			row := &rows[i]
			subj, err := po.Service.Subjects.GetSubject(ctx, row.Subject)
			if err != nil || subj.Erased || subj.Restricted {
				continue
			}
			if err := po.Service.OpenOrder(ctx, row); err != nil {
				continue
			}
			d, err := po.Service.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: broker.PurposeOrderFulfilment,
				Subject: row.Subject, Resource: "order:" + row.ID, State: row.Status, Consent: subj.Consent, Restricted: subj.Restricted, Jurisdiction: ShopperJurisdiction(subj),
				Fields: OrderFieldsFor(p), Record: row.Record()})
			if err != nil {
				return err
			}
			if d.Outcome == audit.OutcomeDenied {
				continue
			}
			if err := po.rememberRef(ctx, p.ID, d, row.Subject); err != nil {
				return err
			}
			views = append(views, NewRetailerView(row.ID, d))
			released = append(released, row.ID)
		}
		listID = broker.NewID("dec")
		outcome := audit.OutcomeReleased
		if len(released) == 0 {
			outcome = audit.OutcomeDenied
		}
		return po.Service.record(ctx, broker.Event{Time: po.Service.now(), DecisionID: listID,
			Actor: PartnerParty(p).Actor(), Action: "list", Purpose: broker.PurposeOrderFulfilment,
			Resource: fmt.Sprintf("orders:%d", len(released)), Outcome: outcome,
			Released: slices.Clone(OrderFieldsReleasedToRetailer)})
	})
	return views, next, listID, err
}

// OrderFieldsReleasedToRetailer names, for the list's audit entry, the
// fields a retailer's order view can hold.
var OrderFieldsReleasedToRetailer = []string{"order.id", "order.status", "order.created_at", "customer.ref", "items",
	"total", "delivery.address", "delivery.postal_code", "delivery.slot", "payment.status"}

// StatusUpdate is a retailer's status change. Extra holds any other fields
// the retailer sent (ETA, notes, internal data); policy decides which of
// them reach the shopper.
type StatusUpdate struct {
	Status string
	Extra  map[string]any
}

// StatusResult says what happened to an update.
type StatusResult struct {
	OrderID  string   `json:"order_id"`
	Status   string   `json:"status"`
	Relayed  []string `json:"relayed_to_shopper"`
	Withheld []string `json:"withheld_from_shopper"`
	Decision string   `json:"decision_id"`
}

// UpdateStatus applies a retailer's status update and relays to the shopper
// only what policy releases to the messaging side (status, ETA, a note to
// the customer) — never the retailer's internal fields.
func (po *Orders) UpdateStatus(ctx context.Context, p broker.Partner, id string, u StatusUpdate) (StatusResult, error) {
	if !slices.Contains(PartnerStatuses, u.Status) {
		return StatusResult{}, broker.Errorf(broker.EInvalid, "status must be one of %s", strings.Join(PartnerStatuses, ", "))
	}
	var res StatusResult
	err := po.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		row, subj, err := po.loadPartnerOrder(ctx, p, id, broker.PurposeOrderFulfilment)
		if err != nil {
			return err
		}
		if row.Status == u.Status {
			return broker.Errorf(broker.EConflict, "order is already %s", u.Status)
		}
		if !ValidTransition(row.Status, u.Status) {
			return broker.Errorf(broker.EConflict, "order cannot go from %s to %s", row.Status, u.Status)
		}
		eta, _ := u.Extra["eta"].(string)
		if eta != "" {
			row.ETA = clipText(eta, 60)
		}
		sealed, err := po.sealOrderRow(ctx, row)
		if err != nil {
			return err
		}
		if u.Status == StatusCancelled {
			qty := map[string]int{}
			for _, l := range row.Lines {
				qty[l.SKU] += l.Quantity
			}
			if err := po.Service.Stock.ReleaseStock(ctx, qty); err != nil {
				return err
			}
		}
		if err := po.Service.Orders.UpdateOrderStatus(ctx, row.ID, u.Status, row.PaymentStatus, sealed); err != nil {
			return err
		}
		if u.Status == StatusOutForDelivery && row.LogisticsID == "" {
			// Not dispatched explicitly: the store's default courier, if
			// it has one, gets this order (and only this one).
			if err := po.Service.Orders.BindDefaultCourier(ctx, row.ID); err != nil {
				return err
			}
		}
		row.Status = u.Status
		po.Service.inc("sieve_orders_total", u.Status)
		// The messaging-side release: the shopper's chat is the party.
		rec := broker.Record{"status": u.Status}
		fields := []string{"status"}
		for k, v := range u.Extra {
			// Only field-shaped names are considered: a key is caller text
			// and withheld names reach the audit log, which must never
			// hold free text (a key could be a phone number).
			if len(fields) >= 32 || !FieldName(k) {
				continue
			}
			rec[k] = v
			fields = append(fields, k)
		}
		slices.Sort(fields[1:])
		d, err := po.Service.Releaser.Release(ctx, broker.Request{Party: broker.Party{ID: "chat", Kind: broker.KindShopper},
			Purpose: broker.PurposeOrderFulfilment, Action: "relay status", Subject: row.Subject,
			Resource: "order:" + row.ID, State: u.Status, Consent: subj.Consent, Restricted: subj.Restricted, Fields: fields, Record: rec})
		if err != nil {
			return err
		}
		res = StatusResult{OrderID: row.ID, Status: u.Status, Decision: d.ID, Withheld: d.WithheldFields(),
			Relayed: d.Released.SortedFields()}
		if res.Withheld == nil {
			res.Withheld = []string{}
		}
		return po.Service.SendToShopper(ctx, row.Subject, row.Store, statusReply(&row.Order, d.Released))
	})
	if err == nil {
		po.Service.WakeSender()
	}
	return res, po.settle(ctx, err)
}

func (po *Orders) sealOrderRow(ctx context.Context, row *OrderRow) ([]byte, error) {
	b, _ := json.Marshal(row.Private())
	return po.Service.Sealer.Seal(ctx, row.Subject, broker.Binding{Table: "orders", Column: "sealed", RowID: row.ID}, b)
}

// statusReply renders what was released to the shopper as an order_status
// message (a template outside the 24-hour window).
func statusReply(o *Order, released broker.Record) Reply {
	status, _ := released["status"].(string)
	words := map[string]string{StatusAccepted: "accepted by the store", StatusPacked: "packed",
		StatusOutForDelivery: "out for delivery", StatusDelivered: "delivered", StatusCancelled: "cancelled by the store"}
	body := fmt.Sprintf("Order %s is %s.", o.ID, words[status])
	if eta, ok := released["eta"].(string); ok && eta != "" {
		body += " Expected: " + clipText(eta, 60) + "."
	}
	if note, ok := released["note_to_customer"].(string); ok && note != "" {
		body += "\n" + clipText(note, 300)
	}
	if status == StatusCancelled && o.PaymentStatus == PaymentCaptured {
		body += " Your payment will be refunded."
	}
	return Reply{Kind: ReplyOrderStatus, Body: body, Template: "order_update",
		Status: &OrderStatus{ReferenceID: o.ReferenceID, Status: WhatsAppStatus(status), Description: clipText(words[status], 120)}}
}

func clipText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return -1
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > n {
		return string([]rune(s)[:n])
	}
	return s
}

// Relay sends a partner's text to the shopper of an order through the
// broker: the partner never learns the phone number. The retailer of the
// order may relay at any time before delivery; logistics while it is out.
func (po *Orders) Relay(ctx context.Context, p broker.Partner, id, text string) (string, error) {
	text = strings.TrimSpace(text)
	if text == "" || utf8.RuneCountInString(text) > 1000 || !utf8.ValidString(text) {
		return "", broker.Errorf(broker.EInvalid, "text must be 1 to 1000 characters")
	}
	purpose := broker.PurposeSupport
	if p.Kind == broker.KindLogistics {
		purpose = broker.PurposeDelivery
	}
	var decision string
	err := po.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		row, _, err := po.loadPartnerOrder(ctx, p, id, purpose)
		if err != nil {
			return err
		}
		if row.Status == StatusDelivered || row.Status == StatusCancelled {
			return broker.Errorf(broker.EConflict, "order is %s: the chat is closed", row.Status)
		}
		decision = broker.NewID("dec")
		if err := po.Service.record(ctx, broker.Event{Time: po.Service.now(), DecisionID: decision,
			Actor: PartnerParty(p).Actor(), Action: "relay message", Purpose: purpose,
			Subject: row.Subject, Resource: "order:" + row.ID,
			Outcome: audit.OutcomeDone, Reason: "relayed"}); err != nil {
			return err
		}
		who := "the store"
		if p.Kind == broker.KindLogistics {
			who = "your delivery partner"
		}
		return po.Service.SendToShopper(ctx, row.Subject, row.Store, Reply{Kind: ReplyText,
			Body: fmt.Sprintf("Message from %s about order %s:\n%s", who, row.ID, clipText(text, 1000))})
	})
	if err == nil {
		po.Service.WakeSender()
	}
	return decision, po.settle(ctx, err)
}

// DispatchResult says which logistics partner an order was handed to.
type DispatchResult struct {
	OrderID   string `json:"order_id"`
	Logistics string `json:"logistics"`
	Decision  string `json:"decision_id"`
}

// Dispatch hands an order to one logistics partner (SPEC §4): from then on
// that partner, and no other, gets the order's delivery view, its relay and
// delivery data requests while it is out for delivery. Only the retailer
// of the order may dispatch it (others get an audited 404); the target
// must be an enabled logistics partner. A later dispatch replaces the
// earlier one.
func (po *Orders) Dispatch(ctx context.Context, p broker.Partner, id, logistics string) (DispatchResult, error) {
	if logistics == "" || len(logistics) > 128 || !utf8.ValidString(logistics) {
		return DispatchResult{}, broker.Errorf(broker.EInvalid, "logistics must be the client id of an enabled logistics partner")
	}
	var res DispatchResult
	err := po.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		row, _, err := po.loadPartnerOrder(ctx, p, id, broker.PurposeOrderFulfilment)
		if err != nil {
			return err
		}
		if row.Status == StatusDelivered || row.Status == StatusCancelled {
			return broker.Errorf(broker.EConflict, "order is %s: it can no longer be dispatched", row.Status)
		}
		// One answer for an unknown id, a disabled partner and another
		// kind: a retailer learns nothing about other partners here.
		c, err := po.Service.Partners.GetPartner(ctx, logistics)
		switch {
		case broker.IsNotFound(err) || broker.ErrorCode(err) == broker.EInvalid ||
			(err == nil && (c.Kind != broker.KindLogistics || c.Disabled)):
			return broker.Errorf(broker.EInvalid, "logistics must be the client id of an enabled logistics partner")
		case err != nil:
			return err
		}
		if err := po.Service.Orders.SetOrderLogistics(ctx, row.ID, c.ID); err != nil {
			return err
		}
		decision := broker.NewID("dec")
		if err := po.Service.record(ctx, broker.Event{Time: po.Service.now(), DecisionID: decision,
			Actor: PartnerParty(p).Actor(), Action: "dispatch", Purpose: broker.PurposeDelivery,
			Subject: row.Subject, Resource: "order:" + row.ID,
			Outcome: audit.OutcomeDone, Reason: "dispatched"}); err != nil {
			return broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
		}
		res = DispatchResult{OrderID: row.ID, Logistics: c.ID, Decision: decision}
		return nil
	})
	return res, po.settle(ctx, err)
}

// DataRequest releases scoped data about a shopper the partner names by its
// own customer_ref, for a declared purpose; policy and consent decide.
func (po *Orders) DataRequest(ctx context.Context, p broker.Partner, ref string, purpose broker.Purpose, fields []string) (broker.Decision, error) {
	if len(fields) == 0 || len(fields) > 32 {
		return broker.Decision{}, broker.Errorf(broker.EInvalid, "fields must list 1 to 32 field names")
	}
	for _, f := range fields {
		if !FieldName(f) {
			return broker.Decision{}, broker.Errorf(broker.EInvalid, "field names are lower-case dotted names such as delivery.postal_code")
		}
	}
	if !slices.Contains(broker.Purposes, purpose) {
		return broker.Decision{}, broker.Errorf(broker.EInvalid, "unknown purpose")
	}
	var d broker.Decision
	err := po.Service.Tx.InTx(ctx, func(ctx context.Context) error {
		subject, err := po.Service.Subjects.SubjectOfPartnerRef(ctx, p.ID, ref)
		if broker.IsNotFound(err) {
			return po.notFound(p, purpose, "subject", RefusedUnknownRef)
		}
		if err != nil {
			return err
		}
		subj, err := po.Service.Subjects.GetSubject(ctx, subject)
		if err != nil || subj.Erased {
			return po.notFound(p, purpose, "subject", RefusedSubjectErased)
		}
		if subj.Restricted {
			return po.notFound(p, purpose, "subject", RefusedSubjectRestricted)
		}
		rec, state, found, err := po.subjectRecord(ctx, subj, p, purpose)
		if err != nil {
			return err
		}
		if !found {
			// A courier (or anyone asking for delivery) learns nothing
			// through a customer_ref it kept: only the order dispatched
			// to it, while it is out for delivery.
			return po.notFound(p, purpose, "subject", RefusedNoDeliveryOrder)
		}
		d, err = po.Service.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: purpose, Action: "data request",
			Subject: subject, Resource: "subject", State: state, Consent: subj.Consent, Restricted: subj.Restricted, Jurisdiction: ShopperJurisdiction(subj), Fields: fields, Record: rec})
		return err
	})
	return d, po.settle(ctx, err)
}

// subjectRecord is the shopper's data as a record for a data request by p:
// one order and their identity (phone, name), for policy to minimise. The
// order is the one the request may concern: for a logistics partner, or
// for purpose delivery, only the order out for delivery and dispatched to
// p (found is false when there is none); for a retailer, its own latest
// order; for others, the latest order.
func (po *Orders) subjectRecord(ctx context.Context, subj SubjectRow, p broker.Partner, purpose broker.Purpose) (broker.Record, string, bool, error) {
	orders, err := po.Service.Orders.OrdersOfSubject(ctx, subj.ID)
	if err != nil {
		return nil, "", false, err
	}
	courier := p.Kind == broker.KindLogistics || purpose == broker.PurposeDelivery
	rec := broker.Record{}
	state := ""
	found := !courier
	for i := len(orders) - 1; i >= 0; i-- {
		row := orders[i]
		switch {
		case row.Status == StatusPendingPayment:
			continue
		case courier && (row.Status != StatusOutForDelivery || row.LogisticsID == "" || row.LogisticsID != p.ID):
			continue
		case p.Kind == broker.KindRetailer && row.RetailerID != p.ID:
			continue
		}
		if po.Service.OpenOrder(ctx, &row) != nil {
			continue
		}
		rec = row.Record()
		state = row.Status
		found = true
		break
	}
	if !found {
		return nil, "", false, nil
	}
	rec["customer.ref"] = subj.ID
	ident, err := po.Service.identity(ctx, subj)
	if err != nil {
		return nil, "", false, err
	}
	if ident.WaID != "" {
		rec["customer.phone"] = "+" + ident.WaID
	}
	if ident.Name != "" {
		rec["customer.profile_name"] = ident.Name
	}
	if !courier {
		rec["order.count"] = int64(len(orders))
	}
	return rec, state, true, nil
}

var fieldNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){0,3}$`)

// FieldName reports whether s is shaped like a field name
// ("delivery.postal_code"); anything else is refused before it can reach
// the policy input or the audit log.
func FieldName(s string) bool { return fieldNameRe.MatchString(s) }
