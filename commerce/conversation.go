package commerce

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Conversation states.
const (
	StateNew          = ""
	StateNotice       = "notice"        // privacy notice shown, waiting for consent
	StateOptIn        = "optin"         // marketing opt-in asked
	StateBrowsing     = "browsing"      // catalog shown, waiting for a cart
	StateCart         = "cart"          // cart summary shown, waiting for confirm/edit
	StateAddress      = "address"       // location requested
	StateSlot         = "slot"          // delivery slots offered
	StatePayment      = "payment"       // order_details sent, waiting for payment
	StateRouting      = "routing"       // order offered to stores, waiting for one to take it (SPEC §9)
	StateEraseConfirm = "erase_confirm" // "delete my data" asked, waiting for confirmation
)

// Stable reply ids.
const (
	IDConsentAccept  = "consent:accept"
	IDConsentDecline = "consent:decline"
	IDMarketingYes   = "marketing:yes"
	IDMarketingNo    = "marketing:no"
	IDCartConfirm    = "cart:confirm"
	IDCartEdit       = "cart:edit"
	IDOrderCancel    = "order:cancel"
	IDEraseConfirm   = "erase:confirm"
	IDEraseCancel    = "erase:cancel"
	SlotPrefix       = "slot:"
)

// Limits on carts.
const (
	MaxLineQuantity = 50
	MaxCartLines    = 30
)

// Session is a shopper's conversation state; it is sealed at rest.
type Session struct {
	State     string     `json:"state"`
	Cart      []CartLine `json:"cart,omitempty"`
	Address   *Location  `json:"address,omitempty"`
	SlotID    string     `json:"slot_id,omitempty"`
	SlotLabel string     `json:"slot_label,omitempty"`
	OrderID   string     `json:"order_id,omitempty"` // the order waiting for payment
	Return    string     `json:"return,omitempty"`   // state to go back to after a question
	Resume    string     `json:"resume,omitempty"`   // state to go back to after a new notice is accepted
}

// Shopper is what the conversation knows of the person it talks to.
type Shopper struct {
	Subject string
	Consent broker.Consent
	// Lang is the shopper's language ("" is English); NoticeSHA the
	// version of the notice they accepted.
	Lang      string
	NoticeSHA string
	// Restricted: the shopper paused processing ("pause my data").
	Restricted bool
}

// Actions are the effects the conversation asks for; the service performs
// them in the same transaction that stores the new session.
type Actions interface {
	// Products returns in-stock products (for the catalog message).
	Products(ctx context.Context) ([]Product, error)
	// ProductsBySKU returns the catalog entries of the given SKUs.
	ProductsBySKU(ctx context.Context, skus []string) (map[string]Product, error)
	// SetConsent stores the shopper's new consent state.
	SetConsent(ctx context.Context, c broker.Consent) error
	// CreateOrder stores a new order awaiting payment and reserves its stock.
	CreateOrder(ctx context.Context, o *Order) error
	// OrderByReference finds the shopper's order by payment reference.
	OrderByReference(ctx context.Context, ref string) (*Order, error)
	// OrderPaid places a paid order and hands it to the retailer.
	OrderPaid(ctx context.Context, o *Order, p Payment) error
	// ConfirmPayment confirms a capture with the payment lookup when one
	// is configured, returning a refusal reason when it disagrees; at is
	// when the capture was reported.
	ConfirmPayment(ctx context.Context, o *Order, p Payment, at time.Time) (string, error)
	// RefusePayment audits a refused capture of o (nil: of no order of the
	// shopper's) with a reason code.
	RefusePayment(ctx context.Context, o *Order, reason string) error
	// CancelOrder cancels an order and releases its stock.
	CancelOrder(ctx context.Context, o *Order, reason string) error
	// DataSummary describes what is held about the shopper and who got it.
	DataSummary(ctx context.Context) (string, error)
	// Erase erases the shopper (crypto-shredding); the final reply is
	// still delivered.
	Erase(ctx context.Context) error
	// GuardianStatus is the status of a minor's parental approval ("" for
	// none asked).
	GuardianStatus(ctx context.Context) (string, error)
	// AskParent asks the parent at the given number (digits with country
	// code) to approve, in the shopper's language.
	AskParent(ctx context.Context, digits, lang string) error
	// ParentAnswer records a parent's answer to guardian request id, given
	// from the current sender's number.
	ParentAnswer(ctx context.Context, id, status string) error
	// SetRestricted pauses or resumes processing (GDPR Art. 18), audited.
	SetRestricted(ctx context.Context, on bool) error
	// Object withdraws an optional purpose's consent on an objection
	// (GDPR Art. 21), audited with reason objection.
	Object(ctx context.Context, c broker.Consent, purpose string) error
	// ExportData releases the shopper's own data to them (GDPR Art. 20)
	// as a JSON document, audited as a release to the shopper.
	ExportData(ctx context.Context) ([]byte, error)
}

// Conversation runs the checkout dialogue.
type Conversation struct {
	StoreName string
	Now       func() time.Time
	// Notices is the privacy notice per language (from policy data).
	Notices NoticeBook
	// Langs are the chat's translations; nil: the shipped ones.
	Langs *Languages
	// Contact is SIEVE_DPO_CONTACT, carried by every rights answer.
	Contact string
}

// ist is India Standard Time, UTC+05:30 all year (no daylight saving),
// fixed so no tzdata is needed. It is the one spelling of the offset: the
// delivery slots, grievance deadlines and breach notices all render in it.
var ist = time.FixedZone("IST", int((5*time.Hour+30*time.Minute)/time.Second))

// handle advances the conversation by one inbound event (see Handle).
func (c *Conversation) handle(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, error) {
	if in.Kind == InPayment && in.Payment != nil && sh.Consent.Child {
		if r, stop, err := c.childPayment(ctx, *in.Payment, act); stop {
			return r, err
		}
	}
	if in.Kind == InPayment && in.Payment != nil {
		return c.payment(ctx, s, *in.Payment, in.Time, act)
	}
	cmd := command(in)
	if s.State == StateEraseConfirm {
		return c.eraseConfirm(ctx, s, in, act)
	}
	// A nominee's answer comes from someone who need not be a shopper:
	// it is taken before any notice or consent turn.
	if r, ok, err := c.nominate(ctx, s, in, act); ok {
		return r, err
	}
	if r, ok, err := c.consentTurn(ctx, sh, s, in, act); ok {
		return r, err
	}
	// Consent gates everything else: without the notice accepted we
	// process nothing but the consent answer.
	if !sh.Consent.Notice {
		return c.notice(ctx, sh, s, in, act)
	}
	if s.State == StateCorrectAddress {
		if cmd == "" {
			return c.correctAddress(ctx, s, in, act)
		}
		s.State, s.Return = s.Return, ""
	}
	if r, ok, err := c.complaint(ctx, s, in, act); ok {
		return r, err
	}
	if r, ok, err := c.nominateCommand(ctx, s, in, act); ok {
		return r, err
	}
	if r, ok, err := c.restriction(ctx, sh, s, in, act); ok || err != nil {
		return r, err
	}
	if r, ok, err := c.exportData(ctx, in, act); ok || err != nil {
		return r, err
	}
	switch cmd {
	case "correct address":
		return askCorrectAddress(s), nil
	case "help":
		return []Reply{helpReply()}, nil
	case "cancel":
		return c.cancel(ctx, s, act)
	case "my data":
		text, err := act.DataSummary(ctx)
		if err != nil {
			return nil, err
		}
		return []Reply{{Kind: ReplyText, Body: text}}, nil
	case "delete my data":
		s.Return, s.State = s.State, StateEraseConfirm
		return []Reply{{Kind: ReplyButtons, Body: "Delete everything we hold about you? Your open orders will be " +
			"cancelled and this cannot be undone.",
			Buttons: []Button{{ID: IDEraseConfirm, Title: "Yes, delete"}, {ID: IDEraseCancel, Title: "No, keep it"}}}}, nil
	case "stop":
		sh.Consent.Marketing, sh.Consent.Analytics = false, false
		if err := act.SetConsent(ctx, sh.Consent); err != nil {
			return nil, err
		}
		return []Reply{{Kind: ReplyText, Body: "Done: no offers and no analytics from now on. Your orders are not affected. " +
			"Say \"help\" for what else you can do."}}, nil
	case "allow analytics":
		sh.Consent.Analytics = true
		if err := act.SetConsent(ctx, sh.Consent); err != nil {
			return nil, err
		}
		return []Reply{{Kind: ReplyText, Body: "Thanks: your orders may be counted in anonymised analytics. Say \"stop\" to withdraw."}}, nil
	}
	if in.Kind == InOrder && in.Invalid != "" {
		// A refused order changes nothing (cart, state, stock): the
		// shopper is told why and may send it again.
		return []Reply{invalidOrderReply(in.Invalid)}, nil
	}
	switch s.State {
	case StateNew, StateNotice, StateOptIn:
		if in.Kind == InReply && (in.ReplyID == IDMarketingYes || in.ReplyID == IDMarketingNo) {
			sh.Consent.Marketing = in.ReplyID == IDMarketingYes
			if err := act.SetConsent(ctx, sh.Consent); err != nil {
				return nil, err
			}
			s.State = StateBrowsing
			return c.catalog(ctx, act, "")
		}
		if s.State == StateOptIn && in.Kind != InOrder {
			return []Reply{optInReply()}, nil
		}
		s.State = StateBrowsing
		if in.Kind == InOrder {
			return c.cart(ctx, s, in.Lines, act)
		}
		return c.catalog(ctx, act, "")
	case StateBrowsing:
		if in.Kind == InOrder {
			return c.cart(ctx, s, in.Lines, act)
		}
		if lines := TextOrder(in.Text); in.Kind == InText && len(lines) > 0 {
			return c.cart(ctx, s, lines, act)
		}
		return c.catalog(ctx, act, "")
	case StateCart:
		switch {
		case in.Kind == InOrder:
			return c.cart(ctx, s, in.Lines, act)
		case in.ReplyID == IDCartConfirm:
			s.State = StateAddress
			return []Reply{addressAsk(ctx, act)}, nil
		case in.ReplyID == IDCartEdit:
			s.State, s.Cart = StateBrowsing, nil
			return c.catalog(ctx, act, "Send a new cart from the catalog.")
		}
		if lines := TextOrder(in.Text); in.Kind == InText && len(lines) > 0 {
			return c.cart(ctx, s, lines, act)
		}
		return []Reply{cartReply(s.Cart)}, nil
	case StateAddress:
		switch in.Kind {
		case InOrder:
			return c.cart(ctx, s, in.Lines, act)
		case InLocation:
			if in.Loc == nil {
				return []Reply{addressReply()}, nil
			}
			loc := *in.Loc
			s.Address = &loc
			s.State = StateSlot
			return []Reply{slotReply(c.now())}, nil
		case InText:
			addr := strings.TrimSpace(in.Text)
			if len([]rune(addr)) < 10 || PostalCodeOf(addr) == "" {
				return []Reply{{Kind: ReplyText, Body: "Please send your full delivery address with its 6-digit PIN code, " +
					"or share your location."}}, nil
			}
			s.Address = &Location{Address: addr}
			s.State = StateSlot
			return []Reply{slotReply(c.now())}, nil
		}
		return []Reply{addressReply()}, nil
	case StateSlot:
		if in.Kind == InReply && strings.HasPrefix(in.ReplyID, SlotPrefix) {
			if label, ok := offeredSlot(in.ReplyID, c.now()); ok {
				return c.checkout(ctx, sh, s, in, in.ReplyID, label, act)
			}
		}
		if in.Kind == InOrder {
			return c.cart(ctx, s, in.Lines, act)
		}
		return []Reply{slotReply(c.now())}, nil
	case StateRouting:
		return c.routingWait(ctx, s, act)
	case StatePayment:
		if in.Kind == InOrder {
			return []Reply{{Kind: ReplyText, Body: "You have an order waiting for payment. Pay for it, or say \"cancel\" first."}}, nil
		}
		return []Reply{{Kind: ReplyText, Body: "Waiting for your payment: tap \"Review and pay\" above. Say \"cancel\" to cancel the order."}}, nil
	}
	s.State = StateBrowsing
	return c.catalog(ctx, act, "")
}

// notice handles a shopper who has not accepted the privacy notice.
func (c *Conversation) notice(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, error) {
	switch in.ReplyID {
	case IDConsentAccept:
		again := sh.Consent.Notice
		sh.Consent.Notice, sh.NoticeSHA = true, c.noticeFor(sh.Lang).SHA256
		if err := act.SetConsent(ctx, sh.Consent); err != nil {
			return nil, err
		}
		if again && s.Resume != "" {
			s.State, s.Resume = s.Resume, ""
			return []Reply{{Kind: ReplyText, Body: "Thank you. You can say \"help\" at any time."}}, nil
		}
		s.State = StateOptIn
		return []Reply{{Kind: ReplyText, Body: "Thank you. You can say \"help\" at any time."}, optInReply()}, nil
	case IDConsentDecline:
		if err := act.Erase(ctx); err != nil {
			return nil, err
		}
		*s = Session{}
		return []Reply{{Kind: ReplyText, Body: "Understood: we have not kept anything about you. Say \"Hi\" if you change your mind."}}, nil
	}
	s.State = StateNotice
	return []Reply{c.noticeReply(sh.Lang)}, nil
}

// noticeReply is the privacy notice's chat summary in the shopper's
// language (generated from policy data), with accept, decline and the
// language chooser.
func (c *Conversation) noticeReply(lang string) Reply {
	store := c.StoreName
	if store == "" {
		store = "our store"
	}
	n := c.noticeFor(lang)
	ls := c.languages()
	greet := strings.Replace(ls.T(n.Lang, "Namaste! Welcome to {store} on WhatsApp."), "{store}", store, 1)
	body := greet
	for _, sum := range []string{n.Summary, n.Short} {
		if sum != "" {
			body = sum // the notice fits alone (policies checks it)
			if b := greet + "\n\n" + sum; len([]rune(b)) <= 1024 {
				body = b
				break
			}
		}
	}
	return Reply{Kind: ReplyButtons, Header: n.Title, Body: body, Lang: n.Lang, Localized: true,
		Buttons: []Button{{ID: IDConsentAccept, Title: ls.T(n.Lang, "Accept & continue")},
			{ID: IDConsentDecline, Title: ls.T(n.Lang, "Decline")}, {ID: IDLangChoose, Title: "Language / भाषा"}}}
}

func optInReply() Reply {
	return Reply{Kind: ReplyButtons, Body: "Optional: may we send you offers and price drops on WhatsApp? " +
		"You can say \"stop\" at any time.",
		Buttons: []Button{{ID: IDMarketingYes, Title: "Yes, send offers"}, {ID: IDMarketingNo, Title: "No thanks"},
			{ID: IDAgeMinor, Title: "I am under 18"}}}
}

func helpReply() Reply {
	return Reply{Kind: ReplyText, Body: "How to shop: say \"Hi\" for the catalog, send a cart from it (or type " +
		"\"SKU-ATTA-5KG x2\"), confirm, share your address, pick a delivery slot and pay in the chat.\n\n" +
		"Commands: \"help\", \"cancel\", \"my data\", \"delete my data\", \"stop\" (no offers or analytics), " +
		"\"allow analytics\"."}
}

func addressReply() Reply {
	return Reply{Kind: ReplyLocationRequest, Body: "Where should we deliver? Share your location, or type your " +
		"address with its PIN code."}
}

// catalog replies with the product list (sections by category) and a text
// fallback listing SKUs, for clients that cannot show product lists.
func (c *Conversation) catalog(ctx context.Context, act Actions, lead string) ([]Reply, error) {
	products, err := act.Products(ctx)
	if err != nil {
		return nil, err
	}
	var sections []Section
	var text strings.Builder
	if lead != "" {
		text.WriteString(lead + "\n\n")
	}
	text.WriteString("Our catalog (send a cart, or type e.g. \"SKU-ATTA-5KG x2\"):\n")
	shown := 0
	for _, p := range products {
		if p.Stock <= 0 {
			continue
		}
		if shown < 30 {
			i := slices.IndexFunc(sections, func(s Section) bool { return s.Title == p.Category })
			if i < 0 && len(sections) < 10 {
				sections = append(sections, Section{Title: truncate(p.Category, 24)})
				i = len(sections) - 1
			}
			if i >= 0 {
				sections[i].SKUs = append(sections[i].SKUs, p.SKU)
				shown++
			}
		}
		line := fmt.Sprintf("%s — %s — %s\n", p.SKU, p.Name, p.Price.String())
		if text.Len()+len(line) < 4000 {
			text.WriteString(line)
		}
	}
	if len(sections) == 0 {
		return []Reply{{Kind: ReplyText, Body: "Sorry, nothing is in stock right now. Please try again later."}}, nil
	}
	// One chargeable message: the SKU list goes only if the product list
	// cannot be shown (Reply.Fallback).
	return []Reply{
		{Kind: ReplyProductList, Header: "Today's groceries", Body: "Browse, add to cart and send it here.",
			Sections: sections, Fallback: &Reply{Kind: ReplyText, Body: strings.TrimRight(text.String(), "\n")}},
	}, nil
}

// cart builds the cart from the shopper's order lines, at catalog prices.
func (c *Conversation) cart(ctx context.Context, s *Session, lines []CartLine, act Actions) ([]Reply, error) {
	merged := map[string]int{}
	var order []string
	for _, l := range lines {
		sku := strings.ToUpper(strings.TrimSpace(l.SKU))
		if _, seen := merged[sku]; !seen {
			order = append(order, sku)
		}
		// Lines are validated (1..MaxOrderQuantity each), but a cart may
		// repeat a SKU: the sum is checked, never wrapped.
		q, ok := addQuantity(merged[sku], l.Quantity)
		if !ok {
			return []Reply{invalidOrderReply(OrderInvalidQuantity)}, nil
		}
		merged[sku] = q
	}
	if len(order) > MaxCartLines {
		order = order[:MaxCartLines]
	}
	products, err := act.ProductsBySKU(ctx, order)
	if err != nil {
		return nil, err
	}
	var cart []CartLine
	var skipped []string
	for _, sku := range order {
		p, ok := products[sku]
		q := merged[sku]
		switch {
		case !ok:
			skipped = append(skipped, truncate(sku, 40)+" (not in our catalog)")
			continue
		case q <= 0:
			continue
		case p.Stock <= 0:
			skipped = append(skipped, p.Name+" (out of stock)")
			continue
		}
		if q > MaxLineQuantity {
			q = MaxLineQuantity
		}
		if q > p.Stock {
			q = p.Stock
			skipped = append(skipped, fmt.Sprintf("%s (only %d left)", p.Name, p.Stock))
		}
		cart = append(cart, CartLine{SKU: p.SKU, Name: p.Name, Quantity: q, UnitPrice: p.Price.Value})
	}
	if len(cart) == 0 {
		s.State, s.Cart = StateBrowsing, nil
		msg := "Your cart is empty."
		if len(skipped) > 0 {
			msg = "None of those items can be ordered: " + strings.Join(skipped, ", ") + "."
		}
		return c.catalog(ctx, act, msg)
	}
	s.State, s.Cart = StateCart, cart
	r := cartReply(cart)
	if len(skipped) > 0 {
		r.Body += "\n\nNot added: " + strings.Join(skipped, ", ")
	}
	return []Reply{r}, nil
}

func cartReply(cart []CartLine) Reply {
	var b strings.Builder
	b.WriteString("Your cart:\n")
	for _, l := range cart {
		fmt.Fprintf(&b, "%d × %s — %s\n", l.Quantity, l.Name, broker.INR(l.UnitPrice*int64(l.Quantity)).String())
	}
	sub, _, ship, total := Totals(cart)
	fmt.Fprintf(&b, "\nSubtotal %s\nDelivery %s\nTotal %s", broker.INR(sub), broker.INR(ship), broker.INR(total))
	body := b.String()
	if len(body) > 1000 {
		body = body[:strings.LastIndex(body[:990], "\n")] + "\n…"
	}
	return Reply{Kind: ReplyButtons, Header: "Cart", Body: body,
		Buttons: []Button{{ID: IDCartConfirm, Title: "Confirm cart"}, {ID: IDCartEdit, Title: "Edit cart"}}}
}

func (c *Conversation) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// checkout creates the order and asks for payment.
func (c *Conversation) checkout(ctx context.Context, sh *Shopper, s *Session, in Inbound, slotID, label string, act Actions) ([]Reply, error) {
	if len(s.Cart) == 0 || s.Address == nil {
		s.State = StateBrowsing
		return c.catalog(ctx, act, "Let's start again: your cart was empty.")
	}
	if r, ok, err := c.parentGate(ctx, sh, s, act); !ok {
		return r, err
	}
	sub, tax, ship, total := Totals(s.Cart)
	id := broker.NewID("ord")
	o := &Order{ID: id, Subject: sh.Subject, Store: in.Store, Status: StatusPendingPayment,
		PaymentStatus: PaymentPending, ReferenceID: id + "-1", Lines: s.Cart, Subtotal: sub, Tax: tax,
		Shipping: ship, Total: total, Address: *s.Address, PostalCode: PostalCodeOf(s.Address.Address),
		Slot: label, CreatedAt: c.now().UTC()}
	if err := act.CreateOrder(ctx, o); err != nil {
		if broker.ErrorCode(err) == broker.EConflict {
			s.State, s.Cart = StateBrowsing, nil
			return c.catalog(ctx, act, "Sorry, some items just ran out: "+broker.ErrorMessage(err)+". Please send your cart again.")
		}
		return nil, err
	}
	if replies, done, err := c.route(ctx, s, o, slotID, label, act); done || err != nil {
		return replies, err
	}
	s.State, s.SlotID, s.SlotLabel, s.OrderID = StatePayment, slotID, label, o.ID
	return []Reply{{Kind: ReplyOrderDetails, Header: "Your order", Body: fmt.Sprintf("Order %s, delivery %s. "+
		"Tap \"Review and pay\" to pay %s with UPI.", o.ID, label, broker.INR(total)),
		Order: &OrderDetails{ReferenceID: o.ReferenceID, Items: o.Lines, Subtotal: broker.INR(sub),
			Tax: broker.INR(tax), Shipping: broker.INR(ship), Total: broker.INR(total)}}}, nil
}

// payment applies a payment status to the order it names. A capture
// places the order only when it is the shopper's own order's reference, in
// INR, with a successful transaction, for the order's total, and (when
// configured) the payment lookup agrees; any other capture leaves the
// order unplaced, is audited as refused with a reason code, and the
// shopper is told the payment failed. at is when the status was reported.
func (c *Conversation) payment(ctx context.Context, s *Session, p Payment, at time.Time, act Actions) ([]Reply, error) {
	o, err := act.OrderByReference(ctx, p.ReferenceID)
	if broker.IsNotFound(err) {
		if p.Status != PaymentCaptured {
			return nil, nil // not ours, or erased: nothing to say
		}
		// A capture naming no order of this shopper's: another shopper's
		// reference, an erased order, or one never made.
		if err := act.RefusePayment(ctx, nil, PaymentRefusedReference); err != nil {
			return nil, err
		}
		return []Reply{{Kind: ReplyText, Body: "We could not match your payment to an order of yours, so nothing " +
			"was placed. Any amount taken will be refunded."}}, nil
	}
	if err != nil {
		return nil, err
	}
	switch {
	case p.Status == PaymentCaptured && o.Status == StatusPendingPayment:
		reason := CheckCapture(o, p)
		if reason == "" {
			if reason, err = act.ConfirmPayment(ctx, o, p, at); err != nil {
				return nil, err
			}
		}
		if reason != "" {
			if err := act.RefusePayment(ctx, o, reason); err != nil {
				return nil, err
			}
			return []Reply{{Kind: ReplyText, Body: fmt.Sprintf("The payment for %s did not go through, so we have "+
				"not placed the order. Any amount taken will be refunded. Tap \"Review and pay\" to try again, "+
				"or say \"cancel\".", o.ID)}}, nil
		}
		if err := act.OrderPaid(ctx, o, p); err != nil {
			return nil, err
		}
		if s.OrderID == o.ID {
			*s = Session{State: StateBrowsing}
		}
		// One chargeable message: the order_status update (which the
		// order page shows) carries the confirmation; the plain text goes
		// only if it cannot be shown.
		placed := fmt.Sprintf("Thank you! Your order %s is placed: %s, delivery %s. "+
			"We'll keep you posted here.", o.ID, broker.INR(o.Total), o.Slot)
		return []Reply{
			{Kind: ReplyOrderStatus, Body: placed, Template: "order_update",
				Status:   &OrderStatus{ReferenceID: o.ReferenceID, Status: "processing", Description: "Order placed"},
				Fallback: &Reply{Kind: ReplyText, Body: placed}},
		}, nil
	case p.Status == PaymentCaptured && o.Status == StatusCancelled:
		return []Reply{{Kind: ReplyText, Body: fmt.Sprintf("Your payment for the cancelled order %s will be refunded.", o.ID)}}, nil
	case p.Status == PaymentCaptured:
		return nil, nil // a redelivered capture of a placed order
	case p.TxnStatus == "failed" && o.Status == StatusPendingPayment:
		return []Reply{{Kind: ReplyText, Body: fmt.Sprintf("The payment for %s did not go through. Tap \"Review and pay\" "+
			"to try again, or say \"cancel\".", o.ID)}}, nil
	}
	return nil, nil
}

// cancel cancels the order waiting for payment, or the cart.
func (c *Conversation) cancel(ctx context.Context, s *Session, act Actions) ([]Reply, error) {
	if s.OrderID != "" {
		o, err := act.OrderByReference(ctx, s.OrderID+"-1")
		if err != nil && !broker.IsNotFound(err) {
			return nil, err
		}
		if err == nil && (o.Status == StatusPendingPayment || o.Status == StatusRouting) {
			if err := act.CancelOrder(ctx, o, "cancelled by the shopper"); err != nil {
				return nil, err
			}
			*s = Session{State: StateBrowsing}
			return []Reply{{Kind: ReplyText, Body: fmt.Sprintf("Order %s is cancelled. Say \"Hi\" to shop again.", o.ID)}}, nil
		}
	}
	had := len(s.Cart) > 0
	*s = Session{State: StateBrowsing}
	if had {
		return []Reply{{Kind: ReplyText, Body: "Your cart is cleared. Say \"Hi\" to shop again."}}, nil
	}
	return []Reply{{Kind: ReplyText, Body: "There is nothing to cancel. Orders already paid can be cancelled by the store."}}, nil
}

func (c *Conversation) eraseConfirm(ctx context.Context, s *Session, in Inbound, act Actions) ([]Reply, error) {
	if in.ReplyID == IDEraseConfirm || command(in) == "yes" {
		if err := act.Erase(ctx); err != nil {
			return nil, err
		}
		*s = Session{}
		return []Reply{{Kind: ReplyText, Body: "Done: your data has been erased and your open orders cancelled. " +
			"The store and its partners can no longer see anything about you. Say \"Hi\" to start afresh."}}, nil
	}
	s.State, s.Return = s.Return, ""
	return []Reply{{Kind: ReplyText, Body: "Nothing was deleted."}}, nil
}

// command recognises the commands that work at any step.
func command(in Inbound) string {
	if in.Kind == InReply && in.ReplyID == IDOrderCancel {
		return "cancel"
	}
	if in.Kind != InText {
		return ""
	}
	t := strings.ToLower(strings.Join(strings.Fields(in.Text), " "))
	t = strings.Trim(t, ".!?\"' ")
	switch t {
	case "help", "menu help", "?":
		return "help"
	case "cancel", "cancel order":
		return "cancel"
	case "my data", "what data do you have", "show my data":
		return "my data"
	case "delete my data", "erase my data", "forget me":
		return "delete my data"
	case "stop", "unsubscribe", "stop offers":
		return "stop"
	case "allow analytics":
		return "allow analytics"
	case "correct address", "correct my address", "change address", "change my address":
		return "correct address"
	case "language", "bhasha", "भाषा", "change language":
		return "language"
	case "yes":
		return "yes"
	}
	return ""
}

var textOrderRe = regexp.MustCompile(`(?i)\b(SKU-[A-Z0-9-]+)\s*(?:[x×*]\s*)?(\d{1,3})?`)

// TextOrder reads a typed order such as "SKU-ATTA-5KG x2, SKU-MILK-1L 3";
// a SKU without a quantity counts once.
func TextOrder(text string) []CartLine {
	var out []CartLine
	for _, m := range textOrderRe.FindAllStringSubmatch(text, MaxCartLines) {
		q := 1
		if m[2] != "" {
			q, _ = strconv.Atoi(m[2])
		}
		out = append(out, CartLine{SKU: strings.ToUpper(strings.TrimRight(m[1], "-")), Quantity: q})
	}
	return out
}

// addQuantity adds two order quantities; ok is false when the sum leaves
// 0..MaxOrderQuantity (or overflows).
func addQuantity(a, b int) (int, bool) {
	if a < 0 || b < 0 || a > MaxOrderQuantity || b > MaxOrderQuantity-a {
		return 0, false
	}
	return a + b, true
}

// invalidOrderReply tells the shopper why their order message was refused.
func invalidOrderReply(code string) Reply {
	why := "we could not read it"
	switch code {
	case OrderInvalidQuantity:
		why = fmt.Sprintf("each item's quantity must be a whole number from 1 to %d", MaxOrderQuantity)
	case OrderInvalidPrice, OrderInvalidCurrency, OrderInvalidTotal:
		why = "its prices could not be read"
	case OrderInvalidProduct, OrderInvalidEmpty:
		why = "it has no products we can identify"
	}
	return Reply{Kind: ReplyText, Body: "Sorry, we cannot take that order: " + why + ". Nothing has changed; " +
		"please send your cart again from the catalog."}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
