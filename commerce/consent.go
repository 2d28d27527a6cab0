package commerce

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sieve-broker/sieve/broker"
)

// Reply ids and states of the notice, language and children steps (SPEC §10).
const (
	IDLangChoose    = "lang:choose"
	LangPrefix      = "lang:"
	IDAgeMinor      = "age:minor"
	ParentPrefix    = "parent:"       // parent:approve:<gdn_…>, parent:decline:…, parent:withdraw:…
	StateParentWait = "parent_number" // a minor is asked for a parent's WhatsApp number
)

// Consent artefact statuses and methods (consent_artefacts).
const (
	ArtefactGiven     = "given"
	ArtefactWithdrawn = "withdrawn"

	MethodChatReply   = "chat_reply"      // a reply button in the chat
	MethodChatCommand = "chat_command"    // a typed command ("stop", "allow analytics")
	MethodParent      = "parent_whatsapp" // the parent's answer from their own number
)

// Guardian statuses: a minor's parent asked, approved, declined or withdrew.
const (
	GuardianPending   = "pending"
	GuardianApproved  = "approved"
	GuardianDeclined  = "declined"
	GuardianWithdrawn = "withdrawn"
)

// PurposeParentalConsent is the purpose id of a parent's approval in an
// artefact: processing a child's order (DPDP Act s. 9(1)).
const PurposeParentalConsent = broker.PurposeParentalConsent

// PaymentRefusedNoParent refuses a minor's payment without a parent's
// approval in force.
const PaymentRefusedNoParent = "payment_parent_approval_missing"

// ConsentArtefact is one consent given or withdrawn (SPEC §10), the shape
// stored and exported. It holds no personal data: Subject is the internal
// shopper id (exports show a pseudonym), Evidence a keyed hash of the
// WhatsApp message that carried the answer.
type ConsentArtefact struct {
	ID           string    `json:"id"`
	Subject      string    `json:"-"`
	NoticeSHA256 string    `json:"notice_sha256"`
	Lang         string    `json:"lang"`
	Purposes     []string  `json:"purposes"`
	Status       string    `json:"status"`
	At           time.Time `json:"at"`
	Evidence     string    `json:"evidence"`
	Method       string    `json:"method"`
	Reason       string    `json:"reason,omitempty"`
}

// Guardian is a minor's parent: their number blind-indexed and sealed under
// the child's key, never in plaintext.
type Guardian struct {
	ID          string
	Subject     string // the child
	ParentIndex []byte
	Sealed      []byte
	Status      string
}

// ConsentStore keeps consent artefacts, the shopper's language and notice
// version, and minors' guardians.
type ConsentStore interface {
	// SaveConsent stores the consent state, language and accepted notice
	// version of a shopper, with the artefacts recording the change.
	SaveConsent(ctx context.Context, subject string, c broker.Consent, lang, noticeSHA string, arts []ConsentArtefact) error
	// ConsentArtefacts lists a shopper's artefacts, oldest first.
	ConsentArtefacts(ctx context.Context, subject string) ([]ConsentArtefact, error)
	// CreateGuardian stores a pending guardian; a shopper has at most one
	// pending or approved guardian (EConflict otherwise).
	CreateGuardian(ctx context.Context, g Guardian) error
	// OpenGuardian returns the shopper's pending or approved guardian.
	OpenGuardian(ctx context.Context, subject string) (Guardian, error)
	// GuardianByID finds a guardian.
	GuardianByID(ctx context.Context, id string) (Guardian, error)
	// SetGuardianStatus moves a guardian from one of from to status to;
	// ErrNotFound when it is in none of them.
	SetGuardianStatus(ctx context.Context, id string, from []string, to string) error
}

// NoticeInfo is the privacy notice in one language, as the chat shows it.
type NoticeInfo struct {
	Lang    string
	SHA256  string // the notice version
	Title   string
	Summary string // fits a reply-button body
	Short   string // Summary without the legal-basis line
}

// NoticeBook gives the notice in each language (built from policy data).
type NoticeBook interface {
	Notice(lang string) NoticeInfo
}

// consentPurposeIDs are the purposes each consent flag covers, named in
// artefacts (the MeitY consent BRD's purpose ids).
var consentPurposeIDs = map[string][]string{
	"notice":    {string(broker.PurposeOrderFulfilment), string(broker.PurposeDelivery), string(broker.PurposePayment), string(broker.PurposeSupport)},
	"marketing": {string(broker.PurposeMarketing)},
	"analytics": {string(broker.PurposeAnalytics)},
}

func purposesOf(flags ...string) []string {
	var out []string
	for _, f := range flags {
		out = append(out, consentPurposeIDs[f]...)
	}
	slices.Sort(out)
	return out
}

func consentFlags(c broker.Consent) []string {
	var out []string
	if c.Notice {
		out = append(out, "notice")
	}
	if c.Marketing {
		out = append(out, "marketing")
	}
	if c.Analytics {
		out = append(out, "analytics")
	}
	return out
}

// languages is the chat's translations.
func (c *Conversation) languages() *Languages {
	if c.Langs != nil {
		return c.Langs
	}
	ls, _ := ShippedLanguages()
	return ls
}

// noticeFor is the notice in the shopper's language; nil Notices (tests of
// the inner ring) means an unversioned English notice.
func (c *Conversation) noticeFor(lang string) NoticeInfo {
	if c.Notices == nil {
		return NoticeInfo{Lang: "en", Title: "Privacy notice"}
	}
	return c.Notices.Notice(lang)
}

// noticeCurrent reports whether the shopper accepted the notice in force:
// one accepted under an older text (another version) is asked again.
func (c *Conversation) noticeCurrent(sh *Shopper) bool {
	return sh.Consent.Notice && sh.NoticeSHA == c.noticeFor(sh.Lang).SHA256
}

// consentTurn runs the steps of SPEC §10 that come before anything else:
// a parent's answer, the language chooser, a minor's parent's number, and
// the notice (first contact, or a new version). ok is false when the event
// is not one of them.
func (c *Conversation) consentTurn(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, bool, error) {
	cmd := command(in)
	switch {
	case in.Kind == InReply && strings.HasPrefix(in.ReplyID, ParentPrefix):
		r, err := c.parentAnswer(ctx, in.ReplyID, act)
		return r, true, err
	case in.ReplyID == IDLangChoose || cmd == "language":
		return []Reply{languageReply(c.languages(), sh.Lang)}, true, nil
	case in.Kind == InReply && strings.HasPrefix(in.ReplyID, LangPrefix):
		r, err := c.setLanguage(ctx, sh, s, strings.TrimPrefix(in.ReplyID, LangPrefix), act)
		return r, true, err
	case !c.noticeCurrent(sh) && !(sh.Consent.Notice && rightsAnswer(in, s.State)):
		// (A shopper asked again keeps their rights meanwhile: "my data"
		// or "delete my data" is answered, not met with the notice.)
		if sh.Consent.Notice && s.State != StateNotice {
			// A new notice version: ask again, then carry on where the
			// shopper was.
			s.Resume, s.State = s.State, StateNotice
		}
		r, err := c.notice(ctx, sh, s, in, act)
		return r, true, err
	case s.State == StateParentWait && cmd == "":
		// Commands ("cancel", "my data", …) work here as anywhere.
		r, err := c.parentNumber(ctx, sh, s, in, act)
		return r, true, err
	case in.ReplyID == IDAgeMinor:
		r, err := c.minor(ctx, sh, s, act)
		return r, true, err
	case sh.Consent.Child && (in.ReplyID == IDMarketingYes || cmd == "allow analytics"):
		// A child's optional purposes stay off (DPDP Act s. 9(3)).
		if s.State == StateOptIn || s.State == StateNew || s.State == StateNotice {
			s.State = StateBrowsing
		}
		return []Reply{{Kind: ReplyText, Body: "Offers and analytics stay off for shoppers under 18."}}, true, nil
	}
	return nil, false, nil
}

// languageReply offers every chat language that has a notice.
func languageReply(ls *Languages, current string) Reply {
	var rows []Row
	for _, code := range ls.Codes() {
		rows = append(rows, Row{ID: LangPrefix + code, Title: truncate(ls.Name(code), 24)})
	}
	lang := current
	if lang == "" {
		lang = "en"
	}
	return Reply{Kind: ReplyList, Localized: true, Lang: lang, Body: ls.T(lang, "Choose your language."),
		Button: ls.T(lang, "Languages"), Sections: []Section{{Title: ls.T(lang, "Languages"), Rows: rows}}}
}

// setLanguage keeps the shopper's language choice (an artefact when they
// have consented) and answers in it.
func (c *Conversation) setLanguage(ctx context.Context, sh *Shopper, s *Session, lang string, act Actions) ([]Reply, error) {
	if !c.languages().Has(lang) {
		return []Reply{languageReply(c.languages(), sh.Lang)}, nil
	}
	sh.Lang = lang
	if err := act.SetConsent(ctx, sh.Consent); err != nil {
		return nil, err
	}
	if !c.noticeCurrent(sh) {
		if sh.Consent.Notice && s.State != StateNotice {
			s.Resume, s.State = s.State, StateNotice
		}
		if s.State == StateNew {
			s.State = StateNotice
		}
		return []Reply{c.noticeReply(sh.Lang)}, nil
	}
	return []Reply{{Kind: ReplyText, Body: "Language set. Say \"language\" to change it."}}, nil
}

// minor records that the shopper is under 18: optional purposes locked
// off, and checkout will wait for a parent.
func (c *Conversation) minor(ctx context.Context, sh *Shopper, s *Session, act Actions) ([]Reply, error) {
	sh.Consent.Child, sh.Consent.Marketing, sh.Consent.Analytics = true, false, false
	if err := act.SetConsent(ctx, sh.Consent); err != nil {
		return nil, err
	}
	if s.State == StateOptIn || s.State == StateNew || s.State == StateNotice {
		s.State = StateBrowsing
	}
	out := []Reply{{Kind: ReplyText, Body: "Noted: you are under 18. You get no offers and no analytics. " +
		"Before you pay, a parent must approve your order from their own WhatsApp number."}}
	cat, err := c.catalog(ctx, act, "")
	return append(out, cat...), err
}

// parentGate lets a minor's checkout go on only with a parent's approval
// in force; otherwise it asks for the parent's number, or says it waits.
func (c *Conversation) parentGate(ctx context.Context, sh *Shopper, s *Session, act Actions) ([]Reply, bool, error) {
	if !sh.Consent.Child {
		return nil, true, nil
	}
	status, err := act.GuardianStatus(ctx)
	if err != nil {
		return nil, false, err
	}
	switch status {
	case GuardianApproved:
		return nil, true, nil
	case GuardianPending:
		return []Reply{{Kind: ReplyText, Body: "We are waiting for your parent's approval. Once they approve, " +
			"choose your delivery slot again."}}, false, nil
	}
	s.State = StateParentWait
	return []Reply{{Kind: ReplyText, Body: "You are under 18, so a parent must approve this order. Send your " +
		"parent's WhatsApp number with its country code (e.g. +91 98xxxxxxxx)."}}, false, nil
}

// parentNumber takes the parent's number and asks the parent.
func (c *Conversation) parentNumber(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, error) {
	digits, ok := parentDigits(in)
	if !ok {
		return []Reply{{Kind: ReplyText, Body: "Please send your parent's WhatsApp number with its country code, " +
			"e.g. +91 98xxxxxxxx, or say \"cancel\"."}}, nil
	}
	if err := act.AskParent(ctx, digits, sh.Lang); err != nil {
		if broker.ErrorCode(err) == broker.EInvalid {
			return []Reply{{Kind: ReplyText, Body: "That must be your parent's own number, not yours."}}, nil
		}
		return nil, err
	}
	s.State = StateSlot
	return []Reply{{Kind: ReplyText, Body: "We have asked your parent on WhatsApp. Once they approve, choose " +
		"your delivery slot again."}}, nil
}

// parentDigits reads a phone number typed as text: digits with an
// optional + and separators; 10 digits are an Indian mobile number.
func parentDigits(in Inbound) (string, bool) {
	if in.Kind != InText {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.TrimSpace(in.Text) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && b.Len() == 0, r == ' ', r == '-', r == '(', r == ')':
		default:
			return "", false
		}
	}
	d := b.String()
	if len(d) == 10 && d[0] >= '6' {
		d = "91" + d
	}
	if len(d) < 11 || len(d) > 15 || d[0] == '0' {
		return "", false
	}
	return d, true
}

// parentAnswer applies a parent's approve, decline or withdraw, sent from
// the number the child named (the action checks it).
func (c *Conversation) parentAnswer(ctx context.Context, replyID string, act Actions) ([]Reply, error) {
	verb, id, _ := strings.Cut(strings.TrimPrefix(replyID, ParentPrefix), ":")
	status := map[string]string{"approve": GuardianApproved, "decline": GuardianDeclined, "withdraw": GuardianWithdrawn}[verb]
	if status == "" || !strings.HasPrefix(id, "gdn_") {
		return []Reply{{Kind: ReplyText, Body: "This request is no longer open."}}, nil
	}
	err := act.ParentAnswer(ctx, id, status)
	if broker.IsNotFound(err) {
		return []Reply{{Kind: ReplyText, Body: "This request is no longer open."}}, nil
	}
	if err != nil {
		return nil, err
	}
	switch status {
	case GuardianApproved:
		return []Reply{{Kind: ReplyButtons, Body: "Thank you: your approval is recorded. You can withdraw it at " +
			"any time.", Buttons: []Button{{ID: ParentPrefix + "withdraw:" + id, Title: "Withdraw approval"}}}}, nil
	case GuardianDeclined:
		return []Reply{{Kind: ReplyText, Body: "Understood: the order will not go ahead."}}, nil
	}
	return []Reply{{Kind: ReplyText, Body: "Your approval is withdrawn."}}, nil
}

// rightsAnswer reports whether an event is a rights request (or the answer
// to one), whose reply must carry the DPO contact (DPDP Rules 2025, Rule 9).
func rightsAnswer(in Inbound, stateBefore string) bool {
	switch command(in) {
	case "my data", "delete my data", "stop", "pause my data", "resume", "export my data", "object", "correct address":
		return true
	}
	switch in.ReplyID {
	case IDEraseConfirm, IDEraseCancel, IDConsentDecline:
		return true
	}
	return stateBefore == StateEraseConfirm
}

// withContact appends the DPO contact to the last reply's body, in the
// reply's language when it is localized.
func withContact(ls *Languages, contact string, replies []Reply) []Reply {
	if len(replies) == 0 || contact == "" {
		return replies
	}
	last := &replies[len(replies)-1]
	line := "Data Protection Officer: " + contact
	if last.Localized {
		line = ls.T(last.Lang, "Data Protection Officer: {contact}")
		line = strings.Replace(line, "{contact}", contact, 1)
	}
	last.Body = strings.TrimRightFunc(last.Body, unicode.IsSpace) + "\n\n" + line
	return replies
}

// Handle advances the conversation by one inbound event and returns the
// replies to send, in order. The session is updated in place. Every answer
// to a rights request carries the DPO contact (DPDP Rules 2025, Rule 9).
func (c *Conversation) Handle(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, error) {
	before := s.State
	out, err := c.handle(ctx, sh, s, in, act)
	if err == nil && rightsAnswer(in, before) {
		out = withContact(c.languages(), c.Contact, out)
	}
	return out, err
}

// childPayment refuses a minor's capture unless a parent's approval is in
// force (it may have been withdrawn after checkout); stop is false when
// the ordinary payment path should handle the event.
func (c *Conversation) childPayment(ctx context.Context, p Payment, act Actions) ([]Reply, bool, error) {
	if p.Status != PaymentCaptured {
		return nil, false, nil
	}
	st, err := act.GuardianStatus(ctx)
	if err != nil || st == GuardianApproved {
		return nil, err != nil, err
	}
	o, err := act.OrderByReference(ctx, p.ReferenceID)
	if broker.IsNotFound(err) {
		return nil, false, nil // refused on the ordinary path
	}
	if err != nil {
		return nil, true, err
	}
	if o.Status != StatusPendingPayment {
		return nil, false, nil
	}
	if err := act.RefusePayment(ctx, o, PaymentRefusedNoParent); err != nil {
		return nil, true, err
	}
	return []Reply{{Kind: ReplyText, Body: "Your parent has not approved this order, so the payment was not " +
		"accepted. Any amount taken will be refunded."}}, true, nil
}
