package commerce

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

// fakeActions is the conversation's effects over maps: the inner ring's
// port, ten lines of state.
type fakeActions struct {
	products []Product
	consents []broker.Consent
	orders   map[string]*Order
	guardian string // status
	asked    string // the parent's digits
	answers  []string
	refused  []string
	erased   bool
}

func newFake() *fakeActions {
	return &fakeActions{orders: map[string]*Order{}, products: []Product{
		{SKU: "SKU-ATTA-5KG", Name: "Atta 5 kg", Category: "Staples", Price: broker.INR(28950), Stock: 9},
		{SKU: "SKU-MILK-1L", Name: "Milk 1 L", Category: "Dairy", Price: broker.INR(6800), Stock: 1}}}
}

func (f *fakeActions) Products(context.Context) ([]Product, error) { return f.products, nil }
func (f *fakeActions) ProductsBySKU(_ context.Context, skus []string) (map[string]Product, error) {
	out := map[string]Product{}
	for _, p := range f.products {
		out[p.SKU] = p
	}
	return out, nil
}
func (f *fakeActions) SetConsent(_ context.Context, c broker.Consent) error {
	f.consents = append(f.consents, c)
	return nil
}
func (f *fakeActions) CreateOrder(_ context.Context, o *Order) error {
	f.orders[o.ReferenceID] = o
	return nil
}
func (f *fakeActions) OrderByReference(_ context.Context, ref string) (*Order, error) {
	if o, ok := f.orders[ref]; ok {
		return o, nil
	}
	return nil, broker.ErrNotFound
}
func (f *fakeActions) OrderPaid(_ context.Context, o *Order, _ Payment) error {
	o.Status = StatusPlaced
	return nil
}
func (f *fakeActions) ConfirmPayment(context.Context, *Order, Payment, time.Time) (string, error) {
	return "", nil
}
func (f *fakeActions) RefusePayment(_ context.Context, _ *Order, reason string) error {
	f.refused = append(f.refused, reason)
	return nil
}
func (f *fakeActions) CancelOrder(_ context.Context, o *Order, _ string) error {
	o.Status = StatusCancelled
	return nil
}
func (f *fakeActions) DataSummary(context.Context) (string, error) {
	return "What we hold about you:\n• your WhatsApp number and profile name (encrypted)\n" +
		"• 1 order(s) with their items and delivery address (encrypted)\n• consents: offers no, analytics yes\n\n" +
		"Nobody outside the store's chat has received your data.\n\nSay \"delete my data\" to erase it all.", nil
}
func (f *fakeActions) Erase(context.Context) error { f.erased = true; return nil }
func (f *fakeActions) GuardianStatus(context.Context) (string, error) {
	return f.guardian, nil
}
func (f *fakeActions) AskParent(_ context.Context, digits, _ string) error {
	f.asked, f.guardian = digits, GuardianPending
	return nil
}
func (f *fakeActions) ParentAnswer(_ context.Context, id, status string) error {
	f.answers = append(f.answers, id+"="+status)
	return nil
}

type fixedNotices struct{}

func (fixedNotices) Notice(lang string) NoticeInfo {
	if lang == "hi" {
		return NoticeInfo{Lang: "hi", SHA256: "h2", Title: "गोपनीयता सूचना", Summary: "हम आपका WhatsApp नंबर…"}
	}
	return NoticeInfo{Lang: "en", SHA256: "e2", Title: "Privacy notice", Summary: "We use your WhatsApp number…"}
}

// chat drives a conversation and keeps every reply.
type chat struct {
	t    *testing.T
	c    *Conversation
	sh   *Shopper
	s    *Session
	act  *fakeActions
	seen []Reply
}

func newChat(t *testing.T) *chat {
	t.Helper()
	ls, err := ShippedLanguages()
	if err != nil {
		t.Fatal(err)
	}
	c := &Conversation{StoreName: "Kirana", Notices: fixedNotices{}, Langs: ls, Contact: "dpo@shop.example",
		Now: func() time.Time { return time.Date(2026, 12, 4, 9, 0, 0, 0, ist) }}
	return &chat{t: t, c: c, sh: &Shopper{Subject: "shp_1"}, s: &Session{}, act: newFake()}
}

func (ch *chat) send(in Inbound) []Reply {
	ch.t.Helper()
	r, err := ch.c.Handle(context.Background(), ch.sh, ch.s, in, ch.act)
	if err != nil {
		ch.t.Fatalf("Handle(%+v): %v", in, err)
	}
	ch.seen = append(ch.seen, r...)
	return r
}

func (ch *chat) text(s string) []Reply { return ch.send(Inbound{ID: "w", Kind: InText, Text: s}) }
func (ch *chat) reply(id string) []Reply {
	return ch.send(Inbound{ID: "w", Kind: InReply, ReplyID: id})
}

// purchase runs a whole purchase: notice, opt-in, cart, address, slot, pay.
func (ch *chat) purchase() {
	ch.text("Hi")
	ch.reply(IDConsentAccept)
	ch.reply(IDMarketingNo)
	ch.send(Inbound{Kind: InOrder, Lines: []CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 1}, {SKU: "SKU-MILK-1L", Quantity: 3},
		{SKU: "SKU-NOPE", Quantity: 1}}})
	ch.reply(IDCartConfirm)
	ch.text("12 MG Road, Bengaluru 560001")
	ch.reply(Slots(ch.c.now())[0].ID)
	for ref, o := range ch.act.orders {
		ch.send(Inbound{Kind: InPayment, Payment: &Payment{ReferenceID: ref, Status: PaymentCaptured, TxnStatus: "success",
			Amount: o.Total, Currency: "INR", TxnID: "t1"}})
	}
}

// TestChatStringsAllTranslated: every string a whole purchase and the
// rights, language and children steps write is in the catalogue, and in
// Hindi each has a translation that fits the Cloud API's limits. A string
// added to the chat without an entry fails here.
func TestChatStringsAllTranslated(t *testing.T) {
	ch := newChat(t)
	ch.purchase()
	ch.text("help")
	ch.text("my data")
	ch.text("stop")
	ch.text("allow analytics")
	ch.text("cancel")
	ch.text("SKU-ATTA-5KG x2")
	ch.reply(IDCartEdit)
	ch.text("delete my data")
	ch.reply(IDEraseCancel)
	ch.send(Inbound{Kind: InOrder, Invalid: OrderInvalidQuantity})
	ch.text("language")
	// Restriction, objection and the export (GDPR Art. 18, 21, 20).
	ch.text("pause my data")
	ch.text("SKU-ATTA-5KG x2")
	ch.text("resume")
	ch.text("object")
	ch.reply(IDObjectMarketing)
	ch.text("export my data")
	// A minor's path, in a second chat.
	kid := newChat(t)
	kid.text("Hi")
	kid.reply(IDConsentAccept)
	kid.reply(IDAgeMinor)
	kid.reply(IDMarketingYes)
	kid.send(Inbound{Kind: InOrder, Lines: []CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 2}}})
	kid.reply(IDCartConfirm)
	kid.text("12 MG Road, Bengaluru 560001")
	kid.reply(Slots(kid.c.now())[0].ID)
	kid.text("not a number")
	kid.text("+91 98765 43210")
	kid.reply(Slots(kid.c.now())[0].ID)
	kid.reply(ParentPrefix + "approve:gdn_x")
	kid.reply(ParentPrefix + "withdraw:gdn_x")
	// Status updates and relays from partners.
	o := &Order{ID: "ord_abc", ReferenceID: "ord_abc-1", PaymentStatus: PaymentCaptured}
	var extra []Reply
	for _, st := range []string{StatusAccepted, StatusPacked, StatusOutForDelivery, StatusDelivered, StatusCancelled} {
		extra = append(extra, statusReply(o, broker.Record{"status": st, "eta": "6 pm"}))
	}
	extra = append(extra, statusReply(o, broker.Record{"status": StatusPacked}))

	ls := ch.c.languages()
	all := append(append(ch.seen, kid.seen...), extra...)
	for _, r := range all {
		if r.Localized {
			continue
		}
		for _, s := range replyTexts(r) {
			for _, line := range strings.Split(s, "\n") {
				if !ls.Known(line) && !strings.Contains(line, "dpo@shop.example") {
					t.Errorf("no catalogue entry for %q", line)
				}
			}
		}
	}
	for _, r := range all {
		hi := ls.Localize("hi", r)
		checkLimits(t, hi)
	}
	if m := ls.Misses()["hi"]; len(m) > 0 {
		t.Errorf("strings sent in English to a Hindi shopper: %q", m)
	}
}

// replyTexts lists every text of a reply a shopper reads.
func replyTexts(r Reply) []string {
	out := []string{r.Header, r.Body, r.Footer, r.Button}
	for _, b := range r.Buttons {
		out = append(out, b.Title)
	}
	for _, s := range r.Sections {
		if r.Kind != ReplyProductList {
			out = append(out, s.Title)
		}
		for _, row := range s.Rows {
			out = append(out, row.Title, row.Description)
		}
	}
	if r.Status != nil {
		out = append(out, r.Status.Description)
	}
	return out
}

// checkLimits checks the Cloud API's limits on a reply.
func checkLimits(t *testing.T, r Reply) {
	t.Helper()
	n := utf8.RuneCountInString
	for _, b := range r.Buttons {
		if n(b.Title) > 20 {
			t.Errorf("button title %q: %d characters, over 20", b.Title, n(b.Title))
		}
	}
	if n(r.Header) > 60 || n(r.Footer) > 60 || n(r.Button) > 20 {
		t.Errorf("header/footer/list button over the limit: %q %q %q", r.Header, r.Footer, r.Button)
	}
	if r.Kind == ReplyButtons && n(r.Body) > 1024 {
		t.Errorf("button body over 1024: %d", n(r.Body))
	}
	for _, s := range r.Sections {
		if n(s.Title) > 24 {
			t.Errorf("section title %q over 24", s.Title)
		}
		for _, row := range s.Rows {
			if n(row.Title) > 24 || n(row.Description) > 72 {
				t.Errorf("row %q / %q over the limit", row.Title, row.Description)
			}
		}
	}
}

// TestHindiShopper: after choosing Hindi, the notice, buttons, cart, slot
// list and the order's status all reach the shopper in Hindi.
func TestHindiShopper(t *testing.T) {
	ch := newChat(t)
	r := ch.text("Hi")
	if len(r) != 1 || r[0].Buttons[2].ID != IDLangChoose {
		t.Fatalf("notice = %+v; want accept, decline and lang:choose", r)
	}
	r = ch.reply(IDLangChoose)
	if r[0].Kind != ReplyList || r[0].Sections[0].Rows[1].ID != "lang:hi" || r[0].Sections[0].Rows[1].Title != "हिन्दी" {
		t.Fatalf("chooser = %+v", r)
	}
	r = ch.reply("lang:hi")
	if ch.sh.Lang != "hi" || r[0].Header != "गोपनीयता सूचना" || !strings.Contains(r[0].Body, "नमस्ते") ||
		r[0].Buttons[0].Title != "स्वीकार करें" {
		t.Fatalf("notice after choosing Hindi = %+v", r)
	}
	ls := ch.c.languages()
	hi := func(r Reply) Reply { return ls.Localize(ch.sh.Lang, r) }
	ch.reply(IDConsentAccept)
	if ch.sh.NoticeSHA != "h2" {
		t.Errorf("accepted notice version %q; want the Hindi notice's", ch.sh.NoticeSHA)
	}
	ch.reply(IDMarketingNo)
	r = ch.send(Inbound{Kind: InOrder, Lines: []CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 2}}})
	cart := hi(r[0])
	if !strings.HasPrefix(cart.Body, "आपका कार्ट:\n2 × Atta 5 kg — ₹579.00") || cart.Buttons[0].Title != "कार्ट की पुष्टि करें" {
		t.Errorf("cart in Hindi = %q %+v", cart.Body, cart.Buttons)
	}
	ch.reply(IDCartConfirm)
	r = ch.text("12 MG Road, Bengaluru 560001")
	slots := hi(r[0])
	if slots.Body != "डिलीवरी कब करें?" || !strings.Contains(slots.Sections[0].Rows[0].Title, "बजे") ||
		!strings.HasPrefix(slots.Sections[0].Rows[0].Description, "शुक्र ") {
		t.Errorf("slot list in Hindi = %+v", slots)
	}
	st := hi(statusReply(&Order{ID: "ord_abc"}, broker.Record{"status": StatusOutForDelivery}))
	if st.Body != "ऑर्डर ord_abc डिलीवरी के लिए निकल चुका है।" {
		t.Errorf("status in Hindi = %q", st.Body)
	}
	if m := ls.Misses()["hi"]; len(m) > 0 {
		t.Errorf("untranslated: %q", m)
	}
}

// TestNoticeVersionReasks: a shopper who accepted an older notice is
// asked again at their next message and then carries on where they were.
func TestNoticeVersionReasks(t *testing.T) {
	ch := newChat(t)
	ch.sh.Consent = broker.Consent{Notice: true, Marketing: true}
	ch.sh.NoticeSHA = "old"
	ch.s.State = StateCart
	ch.s.Cart = []CartLine{{SKU: "SKU-ATTA-5KG", Name: "Atta", Quantity: 1, UnitPrice: 100}}
	if r := ch.text("my data"); !strings.HasPrefix(r[0].Body, "What we hold about you") {
		t.Fatalf("a rights request met the notice instead of an answer: %+v", r)
	}
	r := ch.text("hello")
	if len(r) != 1 || r[0].Buttons[0].ID != IDConsentAccept || ch.s.State != StateNotice {
		t.Fatalf("a changed notice was not asked again: %+v", r)
	}
	ch.reply(IDConsentAccept)
	if ch.s.State != StateCart || ch.sh.NoticeSHA != "e2" || !ch.sh.Consent.Marketing {
		t.Errorf("after accepting: state %q, version %q, consent %+v", ch.s.State, ch.sh.NoticeSHA, ch.sh.Consent)
	}
}

// TestMinorCannotOptInOrPayWithoutParent: age:minor locks offers and
// analytics off, checkout waits for a parent, a capture without approval
// is refused.
func TestMinorCannotOptInOrPayWithoutParent(t *testing.T) {
	kid := newChat(t)
	kid.text("Hi")
	r := kid.reply(IDConsentAccept)
	if b := r[len(r)-1].Buttons; len(b) != 3 || b[2].ID != IDAgeMinor {
		t.Fatalf("opt-in step lacks age:minor: %+v", b)
	}
	kid.reply(IDAgeMinor)
	kid.reply(IDMarketingYes)
	kid.text("allow analytics")
	if c := kid.sh.Consent; !c.Child || c.Marketing || c.Analytics {
		t.Fatalf("minor's consent = %+v", c)
	}
	kid.send(Inbound{Kind: InOrder, Lines: []CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 2}}})
	kid.reply(IDCartConfirm)
	kid.text("12 MG Road, Bengaluru 560001")
	slot := Slots(kid.c.now())[0].ID
	kid.reply(slot)
	if kid.s.State != StateParentWait || len(kid.act.orders) != 0 {
		t.Fatalf("checkout did not wait for a parent: state %q, %d orders", kid.s.State, len(kid.act.orders))
	}
	if r := kid.text("my data"); !strings.HasPrefix(r[0].Body, "What we hold about you") || kid.s.State != StateParentWait {
		t.Fatalf("my data while asked for a parent's number: %+v (state %q)", r, kid.s.State)
	}
	kid.text("98765 43210")
	if kid.act.asked != "919876543210" || kid.s.State != StateSlot {
		t.Fatalf("parent asked %q, state %q", kid.act.asked, kid.s.State)
	}
	kid.reply(slot)
	if len(kid.act.orders) != 0 {
		t.Fatal("an order was made while the parent's approval is pending")
	}
	kid.act.guardian = GuardianApproved
	kid.reply(slot)
	if len(kid.act.orders) != 1 {
		t.Fatal("no order after the parent approved")
	}
	// The parent withdraws before the payment arrives: it is refused.
	kid.act.guardian = GuardianWithdrawn
	for ref, o := range kid.act.orders {
		kid.send(Inbound{Kind: InPayment, Payment: &Payment{ReferenceID: ref, Status: PaymentCaptured, TxnStatus: "success",
			Amount: o.Total, Currency: "INR", TxnID: "t"}})
		if o.Status == StatusPlaced || len(kid.act.refused) != 1 || kid.act.refused[0] != PaymentRefusedNoParent {
			t.Errorf("minor paid without approval: status %q, refused %v", o.Status, kid.act.refused)
		}
	}
}

// TestRightsAnswersCarryContact: every answer to a rights request names
// the DPO (DPDP Rules 2025, Rule 9); other replies do not.
func TestRightsAnswersCarryContact(t *testing.T) {
	ch := newChat(t)
	ch.text("Hi")
	ch.reply(IDConsentAccept)
	ch.reply(IDMarketingYes)
	for _, step := range []func() []Reply{
		func() []Reply { return ch.text("my data") },
		func() []Reply { return ch.text("stop") },
		func() []Reply { return ch.text("delete my data") },
		func() []Reply { return ch.reply(IDEraseCancel) },
		func() []Reply { return ch.text("delete my data") },
		func() []Reply { return ch.reply(IDEraseConfirm) },
	} {
		r := step()
		if last := r[len(r)-1]; !strings.HasSuffix(last.Body, "Data Protection Officer: dpo@shop.example") {
			t.Errorf("rights answer without the contact: %q", last.Body)
		}
	}
	ch2 := newChat(t)
	if r := ch2.text("Hi"); strings.Contains(r[0].Body, "Data Protection Officer: dpo@") {
		t.Error("the contact line was added to a non-rights reply (the notice carries its own)")
	}
}

// TestLanguageFileGaps: a language file that misses a message, has one the
// English catalogue lacks, or drops a placeholder does not load; a new
// language is a new file.
func TestLanguageFileGaps(t *testing.T) {
	en := `{"lang":"en","name":"English","messages":{"Hello":"Hello","Order {order} is cancelled.":"Order {order} is cancelled."}}`
	for name, hi := range map[string]string{
		"missing":     `{"lang":"hi","name":"हिन्दी","messages":{"Hello":"नमस्ते"}}`,
		"extra":       `{"lang":"hi","name":"हिन्दी","messages":{"Hello":"नमस्ते","Order {order} is cancelled.":"ऑर्डर {order} रद्द।","Bye":"अलविदा"}}`,
		"placeholder": `{"lang":"hi","name":"हिन्दी","messages":{"Hello":"नमस्ते","Order {order} is cancelled.":"ऑर्डर रद्द।"}}`,
	} {
		_, err := LoadLanguages(fstest.MapFS{"i18n/en.json": {Data: []byte(en)}, "i18n/hi.json": {Data: []byte(hi)}})
		if err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	ls, err := LoadLanguages(fstest.MapFS{"i18n/en.json": {Data: []byte(en)}, "i18n/mr.json": {Data: []byte(
		`{"lang":"mr","name":"मराठी","messages":{"Hello":"नमस्कार","Order {order} is cancelled.":"ऑर्डर {order} रद्द झाली."}}`)}})
	if err != nil || !ls.Has("mr") || ls.Localize("mr", Reply{Body: "Order ord_x1 is cancelled."}).Body != "ऑर्डर ord_x1 रद्द झाली." {
		t.Errorf("a third language: %v", err)
	}
}

func (f *fakeActions) SetRestricted(context.Context, bool) error { return nil }
func (f *fakeActions) Object(_ context.Context, c broker.Consent, _ string) error {
	f.consents = append(f.consents, c)
	return nil
}
func (f *fakeActions) ExportData(context.Context) ([]byte, error) { return []byte("{}"), nil }
