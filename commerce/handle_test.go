package commerce

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// recActions is the Actions port of the conversation, and its optional
// extensions (routing, address correction, grievances, nominations), as a
// recorder: every call is logged by method name, and each answer comes
// from a field the case sets.
type recActions struct {
	calls []string

	products  []Product
	order     *Order // OrderByReference's answer; nil: not found
	createErr error
	confirm   string // ConfirmPayment's refusal reason
	guardian  string
	route     RouteResult
	summary   string
	failWith  error // returned by DataSummary, to show errors are not swallowed
	consent   broker.Consent
	refused   string // RefusePayment's reason
	grievance string // OpenGrievance's text
	nominee   string
	parent    string
	corrected *Location
}

var _ interface {
	Actions
	Router
	AddressCorrector
	GrievanceActions
	NominationActions
} = (*recActions)(nil)

func (f *recActions) call(name string) { f.calls = append(f.calls, name) }

func (f *recActions) Products(context.Context) ([]Product, error) {
	f.call("Products")
	return f.products, nil
}

func (f *recActions) ProductsBySKU(_ context.Context, skus []string) (map[string]Product, error) {
	f.call("ProductsBySKU")
	out := map[string]Product{}
	for _, p := range f.products {
		if slices.Contains(skus, p.SKU) {
			out[p.SKU] = p
		}
	}
	return out, nil
}

func (f *recActions) SetConsent(_ context.Context, c broker.Consent) error {
	f.call("SetConsent")
	f.consent = c
	return nil
}

func (f *recActions) CreateOrder(_ context.Context, o *Order) error {
	f.call("CreateOrder")
	return f.createErr
}

func (f *recActions) OrderByReference(_ context.Context, ref string) (*Order, error) {
	f.call("OrderByReference")
	if f.order == nil || f.order.ReferenceID != ref {
		return nil, broker.Errorf(broker.ENotFound, "no such order")
	}
	return f.order, nil
}

func (f *recActions) OrderPaid(context.Context, *Order, Payment) error {
	f.call("OrderPaid")
	return nil
}

func (f *recActions) ConfirmPayment(context.Context, *Order, Payment, time.Time) (string, error) {
	f.call("ConfirmPayment")
	return f.confirm, nil
}

func (f *recActions) RefusePayment(_ context.Context, _ *Order, reason string) error {
	f.call("RefusePayment")
	f.refused = reason
	return nil
}

func (f *recActions) CancelOrder(context.Context, *Order, string) error {
	f.call("CancelOrder")
	return nil
}

func (f *recActions) DataSummary(context.Context) (string, error) {
	f.call("DataSummary")
	return f.summary, f.failWith
}

func (f *recActions) Erase(context.Context) error { f.call("Erase"); return nil }

func (f *recActions) GuardianStatus(context.Context) (string, error) {
	f.call("GuardianStatus")
	return f.guardian, nil
}

func (f *recActions) AskParent(_ context.Context, digits, _ string) error {
	f.call("AskParent")
	f.parent = digits
	return nil
}

func (f *recActions) ParentAnswer(context.Context, string, string) error {
	f.call("ParentAnswer")
	return nil
}

func (f *recActions) SetRestricted(context.Context, bool) error { f.call("SetRestricted"); return nil }

func (f *recActions) Object(_ context.Context, c broker.Consent, _ string) error {
	f.call("Object")
	f.consent = c
	return nil
}

func (f *recActions) ExportData(context.Context) ([]byte, error) {
	f.call("ExportData")
	return []byte(`{"subject":"shp_1"}`), nil
}

func (f *recActions) RouteOrder(context.Context, *Order) (RouteResult, error) {
	f.call("RouteOrder")
	return f.route, nil
}

func (f *recActions) CorrectAddress(_ context.Context, loc Location) (int, int, error) {
	f.call("CorrectAddress")
	f.corrected = &loc
	return 1, 1, nil
}

func (f *recActions) OpenGrievance(_ context.Context, text string) (Reply, error) {
	f.call("OpenGrievance")
	f.grievance = text
	return Reply{Kind: ReplyText, Body: "Complaint GRV-1 filed."}, nil
}

func (f *recActions) Nominate(_ context.Context, number string) (Reply, error) {
	f.call("Nominate")
	f.nominee = number
	return Reply{Kind: ReplyText, Body: "We asked your nominee."}, nil
}

func (f *recActions) AnswerNomination(context.Context, string) (Reply, error) {
	f.call("AnswerNomination")
	return Reply{Kind: ReplyText, Body: "Thank you."}, nil
}

// TestHandle drives Conversation.Handle through every state with every
// command and the inputs each state expects. Each case names the state it
// starts in and what comes in, and checks the state it ends in, the
// actions it asked for (in order) and what the shopper is told.
func TestHandle(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 10, 0, 0, ist)
	slot := Slots(now)[0]
	atta := Product{SKU: "SKU-ATTA-5KG", Name: "Atta 5 kg", Price: broker.INR(28950), Category: "Staples", Stock: 10}
	milk := Product{SKU: "SKU-MILK-1L", Name: "Milk 1 L", Price: broker.INR(6000), Category: "Dairy", Stock: 0}
	cart := []CartLine{{SKU: atta.SKU, Name: atta.Name, Quantity: 2, UnitPrice: 28950}}
	home := &Location{Address: "12 MG Road, Bengaluru 560001"}
	pending := func(total int64) *Order {
		return &Order{ID: "ord_1", ReferenceID: "ord_1-1", Status: StatusPendingPayment, Total: total, Slot: slot.Label}
	}
	withStatus := func(o *Order, st string) *Order { o.Status = st; return o }
	captured := func(amount int64) Inbound {
		return Inbound{Kind: InPayment, Payment: &Payment{ReferenceID: "ord_1-1", Status: PaymentCaptured,
			TxnStatus: "success", TxnID: "pay_1", Amount: amount, Currency: CurrencyINR}}
	}
	text := func(s string) Inbound { return Inbound{Kind: InText, Text: s} }
	reply := func(id string) Inbound { return Inbound{Kind: InReply, ReplyID: id} }
	accepted := Shopper{Subject: "shp_1", Consent: broker.Consent{Notice: true}}
	fresh := Shopper{Subject: "shp_1"}
	child := Shopper{Subject: "shp_1", Consent: broker.Consent{Notice: true, Child: true}}
	restricted := Shopper{Subject: "shp_1", Consent: broker.Consent{Notice: true}, Restricted: true}

	cases := []struct {
		name    string
		sh      Shopper
		s       Session
		in      Inbound
		setup   func(*recActions)
		state   string   // the state after the turn
		calls   []string // the actions asked for, in order
		says    string   // in some reply's body or fallback
		kind    ReplyKind
		errCode string // the error Handle returns, if any
		check   func(t *testing.T, f *recActions, s Session)
	}{
		// First contact and the notice: consent gates everything.
		{name: "new/hi shows the notice", sh: fresh, in: text("Hi"), state: StateNotice,
			kind: ReplyButtons, says: "Welcome to Sieve Fresh"},
		{name: "new/my data before consent shows the notice", sh: fresh, in: text("my data"), state: StateNotice,
			kind: ReplyButtons},
		{name: "new/order before consent shows the notice", sh: fresh, in: Inbound{Kind: InOrder, Lines: cart},
			state: StateNotice, kind: ReplyButtons},
		{name: "notice/accept", sh: fresh, s: Session{State: StateNotice}, in: reply(IDConsentAccept),
			state: StateOptIn, calls: []string{"SetConsent"}, says: "offers and price drops",
			check: func(t *testing.T, f *recActions, _ Session) {
				if !f.consent.Notice || f.consent.Marketing {
					t.Errorf("consent stored %+v, want the notice alone", f.consent)
				}
			}},
		{name: "notice/decline erases", sh: fresh, s: Session{State: StateNotice}, in: reply(IDConsentDecline),
			state: StateNew, calls: []string{"Erase"}, says: "have not kept anything"},
		{name: "notice/language", sh: fresh, s: Session{State: StateNotice}, in: text("language"),
			state: StateNotice, kind: ReplyList},

		// The marketing opt-in.
		{name: "optin/yes", sh: accepted, s: Session{State: StateOptIn}, in: reply(IDMarketingYes),
			state: StateBrowsing, calls: []string{"SetConsent", "Products"}, kind: ReplyProductList,
			check: func(t *testing.T, f *recActions, _ Session) {
				if !f.consent.Marketing {
					t.Error("marketing not stored")
				}
			}},
		{name: "optin/no", sh: accepted, s: Session{State: StateOptIn}, in: reply(IDMarketingNo),
			state: StateBrowsing, calls: []string{"SetConsent", "Products"}, kind: ReplyProductList},
		{name: "optin/child's yes keeps marketing off", sh: child, s: Session{State: StateOptIn}, in: reply(IDMarketingYes),
			state: StateBrowsing, says: "stay off for shoppers under 18"},
		{name: "optin/other text asks again", sh: accepted, s: Session{State: StateOptIn}, in: text("hello"),
			state: StateOptIn, kind: ReplyButtons, says: "offers and price drops"},
		{name: "optin/a cart skips the question", sh: accepted, s: Session{State: StateOptIn},
			in:    Inbound{Kind: InOrder, Lines: []CartLine{{SKU: atta.SKU, Quantity: 2}}},
			state: StateCart, calls: []string{"ProductsBySKU"}, says: "2 × Atta 5 kg"},
		{name: "new/accepted shopper gets the catalog", sh: accepted, in: text("Hi"),
			state: StateBrowsing, calls: []string{"Products"}, kind: ReplyProductList, says: "SKU-ATTA-5KG"},

		// Browsing.
		{name: "browsing/hi shows the catalog", sh: accepted, s: Session{State: StateBrowsing}, in: text("Hi"),
			state: StateBrowsing, calls: []string{"Products"}, kind: ReplyProductList},
		{name: "browsing/typed order", sh: accepted, s: Session{State: StateBrowsing}, in: text("SKU-ATTA-5KG x2"),
			state: StateCart, calls: []string{"ProductsBySKU"}, kind: ReplyButtons, says: "2 × Atta 5 kg"},
		{name: "browsing/out of stock only", sh: accepted, s: Session{State: StateBrowsing}, in: text("SKU-MILK-1L x1"),
			state: StateBrowsing, calls: []string{"ProductsBySKU", "Products"}, says: "Milk 1 L (out of stock)"},
		{name: "browsing/unknown sku", sh: accepted, s: Session{State: StateBrowsing}, in: text("SKU-NOPE x1"),
			state: StateBrowsing, calls: []string{"ProductsBySKU", "Products"}, says: "not in our catalog"},
		{name: "browsing/refused order changes nothing", sh: accepted, s: Session{State: StateBrowsing},
			in: Inbound{Kind: InOrder, Invalid: OrderInvalidQuantity}, state: StateBrowsing, says: "cannot take that order"},
		{name: "browsing/quantity overflow is refused", sh: accepted, s: Session{State: StateBrowsing},
			in:    Inbound{Kind: InOrder, Lines: []CartLine{{SKU: atta.SKU, Quantity: MaxOrderQuantity}, {SKU: atta.SKU, Quantity: 1}}},
			state: StateBrowsing, says: "cannot take that order"},
		{name: "browsing/nothing in stock", sh: accepted, s: Session{State: StateBrowsing}, in: text("Hi"),
			setup: func(f *recActions) { f.products = []Product{milk} },
			state: StateBrowsing, calls: []string{"Products"}, says: "nothing is in stock"},

		// The cart.
		{name: "cart/confirm asks for the address", sh: accepted, s: Session{State: StateCart, Cart: cart},
			in: reply(IDCartConfirm), state: StateAddress, kind: ReplyLocationRequest},
		{name: "cart/edit empties it", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: reply(IDCartEdit),
			state: StateBrowsing, calls: []string{"Products"}, says: "Send a new cart",
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.Cart != nil {
					t.Errorf("cart kept: %v", s.Cart)
				}
			}},
		{name: "cart/other text shows the cart", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("ok"),
			state: StateCart, kind: ReplyButtons, says: "Your cart"},
		{name: "cart/new cart replaces it", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("SKU-ATTA-5KG 3"),
			state: StateCart, calls: []string{"ProductsBySKU"}, says: "3 × Atta 5 kg"},

		// The address.
		{name: "address/location", sh: accepted, s: Session{State: StateAddress, Cart: cart},
			in: Inbound{Kind: InLocation, Loc: &Location{Lat: 12.97, Long: 77.59}}, state: StateSlot, kind: ReplyList},
		{name: "address/typed with PIN", sh: accepted, s: Session{State: StateAddress, Cart: cart},
			in: text(home.Address), state: StateSlot, kind: ReplyList,
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.Address == nil || s.Address.Address != home.Address {
					t.Errorf("address %+v", s.Address)
				}
			}},
		{name: "address/without PIN asks again", sh: accepted, s: Session{State: StateAddress, Cart: cart},
			in: text("near the temple"), state: StateAddress, says: "6-digit PIN code"},
		{name: "address/sticker asks again", sh: accepted, s: Session{State: StateAddress, Cart: cart},
			in: Inbound{Kind: InOther, Type: "sticker"}, state: StateAddress, kind: ReplyLocationRequest},

		// The slot and checkout.
		{name: "slot/valid creates the order", sh: accepted, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), state: StatePayment, calls: []string{"CreateOrder", "RouteOrder"}, kind: ReplyOrderDetails,
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.OrderID == "" || s.SlotID != slot.ID || s.SlotLabel != slot.Label {
					t.Errorf("session %+v", s)
				}
			}},
		{name: "slot/stock ran out", sh: accepted, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), setup: func(f *recActions) { f.createErr = broker.Errorf(broker.EConflict, "Atta 5 kg is out of stock") },
			state: StateBrowsing, calls: []string{"CreateOrder", "Products"}, says: "some items just ran out"},
		{name: "slot/routed to stores", sh: accepted, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), setup: func(f *recActions) { f.route = RoutePending },
			state: StateRouting, calls: []string{"CreateOrder", "RouteOrder"}},
		{name: "slot/no store serves the address", sh: accepted, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), setup: func(f *recActions) { f.route = RouteUnserved },
			state: StateBrowsing, calls: []string{"CreateOrder", "RouteOrder"}},
		{name: "slot/unknown slot offers them again", sh: accepted, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(SlotPrefix + "20200101T08"), state: StateSlot, kind: ReplyList},
		{name: "slot/minor without approval is asked for a parent", sh: child, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), state: StateParentWait, calls: []string{"GuardianStatus"}, says: "parent must approve"},
		{name: "slot/minor with approval checks out", sh: child, s: Session{State: StateSlot, Cart: cart, Address: home},
			in: reply(slot.ID), setup: func(f *recActions) { f.guardian = GuardianApproved },
			state: StatePayment, calls: []string{"GuardianStatus", "CreateOrder", "RouteOrder"}, kind: ReplyOrderDetails},
		{name: "slot/empty cart starts again", sh: accepted, s: Session{State: StateSlot, Address: home},
			in: reply(slot.ID), state: StateBrowsing, calls: []string{"Products"}, says: "start again"},
		{name: "parent_number/number asks the parent", sh: child, s: Session{State: StateParentWait, Cart: cart, Address: home},
			in: text("+91 98111 22233"), state: StateSlot, calls: []string{"AskParent"}, says: "asked your parent",
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.parent != "919811122233" {
					t.Errorf("parent digits %q", f.parent)
				}
			}},
		{name: "parent_number/not a number", sh: child, s: Session{State: StateParentWait}, in: text("mummy"),
			state: StateParentWait, says: "parent's WhatsApp number"},

		// Waiting for payment, and payment events.
		{name: "payment/text reminds", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"}, in: text("hello"),
			state: StatePayment, says: "Waiting for your payment"},
		{name: "payment/new cart is refused", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: Inbound{Kind: InOrder, Lines: cart}, state: StatePayment, says: "waiting for payment"},
		{name: "payment/capture places the order", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: captured(57900), setup: func(f *recActions) { f.order = pending(57900) },
			state: StateBrowsing, calls: []string{"OrderByReference", "ConfirmPayment", "OrderPaid"}, kind: ReplyOrderStatus,
			says: "is placed"},
		{name: "payment/capture of another amount is refused", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: captured(100), setup: func(f *recActions) { f.order = pending(57900) },
			state: StatePayment, calls: []string{"OrderByReference", "RefusePayment"}, says: "did not go through",
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.refused != PaymentRefusedAmount {
					t.Errorf("refused as %q", f.refused)
				}
			}},
		{name: "payment/lookup disagrees", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: captured(57900), setup: func(f *recActions) { f.order = pending(57900); f.confirm = "lookup_not_captured" },
			state: StatePayment, calls: []string{"OrderByReference", "ConfirmPayment", "RefusePayment"}, says: "did not go through"},
		{name: "payment/capture of no order of ours", sh: accepted, s: Session{State: StateBrowsing},
			in: captured(57900), state: StateBrowsing, calls: []string{"OrderByReference", "RefusePayment"},
			says: "could not match your payment"},
		{name: "payment/pending status of no order says nothing", sh: accepted, s: Session{State: StateBrowsing},
			in:    Inbound{Kind: InPayment, Payment: &Payment{ReferenceID: "ord_9-1", Status: "pending"}},
			state: StateBrowsing, calls: []string{"OrderByReference"}},
		{name: "payment/failed transaction", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in:    Inbound{Kind: InPayment, Payment: &Payment{ReferenceID: "ord_1-1", Status: "pending", TxnStatus: "failed"}},
			setup: func(f *recActions) { f.order = pending(57900) },
			state: StatePayment, calls: []string{"OrderByReference"}, says: "did not go through"},
		{name: "payment/capture of a cancelled order", sh: accepted, s: Session{State: StateBrowsing},
			in: captured(57900), setup: func(f *recActions) { f.order = withStatus(pending(57900), StatusCancelled) },
			state: StateBrowsing, calls: []string{"OrderByReference"}, says: "will be refunded"},
		{name: "payment/minor's capture without approval is refused", sh: child, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: captured(57900), setup: func(f *recActions) { f.order = pending(57900) },
			state: StatePayment, calls: []string{"GuardianStatus", "OrderByReference", "RefusePayment"},
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.refused != PaymentRefusedNoParent {
					t.Errorf("refused as %q", f.refused)
				}
			}},

		// Routing.
		{name: "routing/still with the stores", sh: accepted, s: Session{State: StateRouting, OrderID: "ord_1"}, in: text("?!"),
			setup: func(f *recActions) { f.order = withStatus(pending(57900), StatusRouting) },
			state: StateRouting, calls: []string{"OrderByReference"}, says: "Still finding a store"},
		{name: "routing/a store took it", sh: accepted, s: Session{State: StateRouting, OrderID: "ord_1"}, in: text("ok"),
			setup: func(f *recActions) { f.order = pending(57900) },
			state: StatePayment, calls: []string{"OrderByReference"}, kind: ReplyOrderDetails},
		{name: "routing/order gone", sh: accepted, s: Session{State: StateRouting, OrderID: "ord_1"}, in: text("ok"),
			state: StateBrowsing, calls: []string{"OrderByReference", "Products"}, kind: ReplyProductList},

		// Commands that work at any step.
		{name: "cart/help", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("Help"),
			state: StateCart, says: "How to shop"},
		{name: "payment/cancel cancels the order", sh: accepted, s: Session{State: StatePayment, OrderID: "ord_1"},
			in: text("cancel"), setup: func(f *recActions) { f.order = pending(57900) },
			state: StateBrowsing, calls: []string{"OrderByReference", "CancelOrder"}, says: "Order ord_1 is cancelled"},
		{name: "routing/cancel button cancels the order", sh: accepted, s: Session{State: StateRouting, OrderID: "ord_1"},
			in: reply(IDOrderCancel), setup: func(f *recActions) { f.order = withStatus(pending(57900), StatusRouting) },
			state: StateBrowsing, calls: []string{"OrderByReference", "CancelOrder"}},
		{name: "cart/cancel clears the cart", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("cancel"),
			state: StateBrowsing, says: "cart is cleared"},
		{name: "browsing/cancel with nothing", sh: accepted, s: Session{State: StateBrowsing}, in: text("cancel"),
			state: StateBrowsing, says: "nothing to cancel"},
		{name: "slot/my data", sh: accepted, s: Session{State: StateSlot}, in: text("my data"),
			setup: func(f *recActions) { f.summary = "We hold your orders." },
			state: StateSlot, calls: []string{"DataSummary"}, says: "Data Protection Officer: dpo@example.in"},
		{name: "browsing/my data fails closed", sh: accepted, s: Session{State: StateBrowsing}, in: text("my data"),
			setup: func(f *recActions) { f.failWith = broker.Errorf(broker.EUnavailable, "database unavailable") },
			state: StateBrowsing, calls: []string{"DataSummary"}, errCode: broker.EUnavailable},
		{name: "cart/delete my data asks first", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("forget me"),
			state: StateEraseConfirm, kind: ReplyButtons, says: "cannot be undone",
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.Return != StateCart {
					t.Errorf("return %q", s.Return)
				}
			}},
		{name: "erase_confirm/yes erases", sh: accepted, s: Session{State: StateEraseConfirm, Return: StateCart, Cart: cart},
			in: reply(IDEraseConfirm), state: StateNew, calls: []string{"Erase"}, says: "your data has been erased",
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.Cart != nil {
					t.Errorf("session kept: %+v", s)
				}
			}},
		{name: "erase_confirm/typed yes erases", sh: accepted, s: Session{State: StateEraseConfirm, Return: StateBrowsing},
			in: text("yes"), state: StateNew, calls: []string{"Erase"}},
		{name: "erase_confirm/anything else keeps all", sh: accepted, s: Session{State: StateEraseConfirm, Return: StateCart, Cart: cart},
			in: reply(IDEraseCancel), state: StateCart, says: "Nothing was deleted"},
		{name: "browsing/stop withdraws marketing and analytics", sh: Shopper{Subject: "shp_1", Consent: broker.Consent{Notice: true, Marketing: true, Analytics: true}},
			s: Session{State: StateBrowsing}, in: text("Stop"), state: StateBrowsing, calls: []string{"SetConsent"}, says: "no offers",
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.consent.Marketing || f.consent.Analytics || !f.consent.Notice {
					t.Errorf("consent stored %+v", f.consent)
				}
			}},
		{name: "browsing/allow analytics", sh: accepted, s: Session{State: StateBrowsing}, in: text("allow analytics"),
			state: StateBrowsing, calls: []string{"SetConsent"},
			check: func(t *testing.T, f *recActions, _ Session) {
				if !f.consent.Analytics {
					t.Error("analytics not stored")
				}
			}},
		{name: "browsing/child cannot allow analytics", sh: child, s: Session{State: StateBrowsing}, in: text("allow analytics"),
			state: StateBrowsing, says: "stay off for shoppers under 18", check: func(t *testing.T, f *recActions, _ Session) {
				if f.consent.Analytics {
					t.Error("a child's analytics stored")
				}
			}},
		{name: "cart/language", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("bhasha"),
			state: StateCart, kind: ReplyList},
		{name: "cart/correct address", sh: accepted, s: Session{State: StateCart, Cart: cart}, in: text("change my address"),
			state: StateCorrectAddress, says: "corrected delivery address",
			check: func(t *testing.T, _ *recActions, s Session) {
				if s.Return != StateCart {
					t.Errorf("return %q", s.Return)
				}
			}},
		{name: "correct_address/new address applied", sh: accepted, s: Session{State: StateCorrectAddress, Return: StateBrowsing},
			in: text("14 MG Road, Bengaluru 560001"), state: StateBrowsing, calls: []string{"CorrectAddress"},
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.corrected == nil || f.corrected.Address != "14 MG Road, Bengaluru 560001" {
					t.Errorf("corrected %+v", f.corrected)
				}
			}},
		{name: "correct_address/a command leaves it", sh: accepted, s: Session{State: StateCorrectAddress, Return: StateCart, Cart: cart},
			in: text("help"), state: StateCart, says: "How to shop"},
		{name: "browsing/pause my data", sh: accepted, s: Session{State: StateBrowsing}, in: text("pause my data"),
			state: StateBrowsing, calls: []string{"SetRestricted"}, says: "Paused"},
		{name: "browsing/pause when paused writes nothing", sh: restricted, s: Session{State: StateBrowsing}, in: text("pause"),
			state: StateBrowsing, says: "Paused"},
		{name: "browsing/resume", sh: restricted, s: Session{State: StateBrowsing}, in: text("resume"),
			state: StateBrowsing, calls: []string{"SetRestricted"}, says: "Resumed"},
		{name: "browsing/object offers the purposes", sh: accepted, s: Session{State: StateBrowsing}, in: text("I object"),
			state: StateBrowsing, kind: ReplyButtons, says: "object to"},
		{name: "browsing/export my data", sh: accepted, s: Session{State: StateBrowsing}, in: text("export my data"),
			state: StateBrowsing, calls: []string{"ExportData"}, kind: ReplyDocument},
		{name: "browsing/complaint asks for the text", sh: accepted, s: Session{State: StateBrowsing}, in: text("complaint"),
			state: StateComplaint, says: "describe your complaint"},
		{name: "complaint/text files it", sh: accepted, s: Session{State: StateComplaint, Return: StateBrowsing},
			in: text("the milk was sour"), state: StateBrowsing, calls: []string{"OpenGrievance"}, says: "GRV-1",
			check: func(t *testing.T, f *recActions, _ Session) {
				if f.grievance != "the milk was sour" {
					t.Errorf("grievance %q", f.grievance)
				}
			}},
		{name: "complaint/cancel files nothing", sh: accepted, s: Session{State: StateComplaint, Return: StateCart, Cart: cart},
			in: text("cancel"), state: StateCart, says: "No complaint was filed"},
		{name: "browsing/nominate asks for the number", sh: accepted, s: Session{State: StateBrowsing}, in: text("nominate"),
			state: StateNominate, says: "Who should act for you"},
		{name: "nominate/number names the nominee", sh: accepted, s: Session{State: StateNominate, Return: StateBrowsing},
			in: text("+91 98111 22233"), state: StateBrowsing, calls: []string{"Nominate"}, says: "asked your nominee"},
		{name: "nominate/cancel names no one", sh: accepted, s: Session{State: StateNominate, Return: StateBrowsing},
			in: text("cancel"), state: StateBrowsing, says: "No nominee was named"},
		{name: "new/a nominee's answer needs no consent", sh: fresh, in: reply(NomineeConfirmPrefix + "nom_1"),
			state: StateNew, calls: []string{"AnswerNomination"}, says: "Thank you."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &recActions{products: []Product{atta, milk}}
			if tc.setup != nil {
				tc.setup(f)
			}
			c := &Conversation{StoreName: "Sieve Fresh", Now: func() time.Time { return now }, Contact: "dpo@example.in"}
			sh, s := tc.sh, tc.s
			out, err := c.Handle(context.Background(), &sh, &s, tc.in, f)
			if tc.errCode != "" {
				if broker.ErrorCode(err) != tc.errCode {
					t.Fatalf("error %v, want code %s", err, tc.errCode)
				}
			} else if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if s.State != tc.state {
				t.Errorf("state %q, want %q", s.State, tc.state)
			}
			if !slices.Equal(f.calls, tc.calls) {
				t.Errorf("actions %v, want %v", f.calls, tc.calls)
			}
			if tc.kind != "" && !slices.ContainsFunc(out, func(r Reply) bool { return r.Kind == tc.kind }) {
				t.Errorf("no %s reply in %+v", tc.kind, out)
			}
			if tc.says != "" && !slices.ContainsFunc(out, func(r Reply) bool {
				return strings.Contains(r.Body, tc.says) || (r.Fallback != nil && strings.Contains(r.Fallback.Body, tc.says))
			}) {
				t.Errorf("no reply says %q: %+v", tc.says, out)
			}
			if tc.errCode == "" && len(out) == 0 && tc.calls != nil && !strings.Contains(tc.name, "says nothing") {
				t.Errorf("no reply")
			}
			if tc.check != nil {
				tc.check(t, f, s)
			}
		})
	}
}

// TestHandleCoversEveryState fails when a state constant is added without
// a case in TestHandle's table (named "<state>/…").
func TestHandleCoversEveryState(t *testing.T) {
	states := []string{StateNew, StateNotice, StateOptIn, StateBrowsing, StateCart, StateAddress, StateSlot, StatePayment,
		StateRouting, StateEraseConfirm, StateCorrectAddress, StateComplaint, StateNominate, StateParentWait}
	b, err := os.ReadFile("handle_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, st := range states {
		name := st
		if name == "" {
			name = "new"
		}
		if !strings.Contains(src, `{name: "`+name+`/`) {
			t.Errorf("state %q has no case", name)
		}
	}
}
