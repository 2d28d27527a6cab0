package commerce

import (
	"context"
	"slices"
	"strings"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The service side of consent: artefacts stored and audited with each
// change, a minor's parent asked and answered, the compliance export.

// evidence is the keyed hash of the message that carried an answer.
func (a *actions) evidence() string {
	if a.in.ID == "" {
		return ""
	}
	return a.s.providerKey(a.subject, a.in.ID)
}

// method is how the current answer was given.
func (a *actions) method() string {
	if a.in.Kind == InReply {
		return MethodChatReply
	}
	return MethodChatCommand
}

// consentArtefacts are the artefacts of a change from prev to c: what was
// withdrawn, what was given, and, when the notice version or the language
// changed, the consents in force given again under it.
func (a *actions) consentArtefacts(prev, c broker.Consent, prevLang, prevSHA string) []ConsentArtefact {
	now := a.s.now().UTC()
	sh := a.sh
	mk := func(status string, flags []string, reason string) ConsentArtefact {
		return ConsentArtefact{ID: broker.NewID("cna"), Subject: a.subject, NoticeSHA256: sh.NoticeSHA, Lang: langOr(sh.Lang),
			Purposes: purposesOf(flags...), Status: status, At: now, Evidence: a.evidence(), Method: a.method(), Reason: reason}
	}
	var withdrawn, given []string
	was, is := consentFlags(prev), consentFlags(c)
	for _, f := range was {
		if !slices.Contains(is, f) {
			withdrawn = append(withdrawn, f)
		}
	}
	for _, f := range is {
		if !slices.Contains(was, f) {
			given = append(given, f)
		}
	}
	var out []ConsentArtefact
	if len(withdrawn) > 0 {
		reason := "withdrawal"
		switch {
		case c.Child && !prev.Child:
			reason = "minor"
		case command(a.in) == "object":
			reason = "objection" // GDPR Art. 21: the "object" command
		}
		out = append(out, mk(ArtefactWithdrawn, withdrawn, reason))
	}
	switch {
	case c.Notice && (prevSHA != sh.NoticeSHA || langOr(prevLang) != langOr(sh.Lang)):
		reason := "notice_version"
		if prevSHA == sh.NoticeSHA {
			reason = "language"
		}
		out = append(out, mk(ArtefactGiven, is, reason))
	case len(given) > 0:
		out = append(out, mk(ArtefactGiven, given, ""))
	case c.Child && !prev.Child:
		out = append(out, mk(ArtefactGiven, nil, "minor"))
	}
	return out
}

func langOr(l string) string {
	if l == "" {
		return "en"
	}
	return l
}

// saveConsent stores the consent, language and notice version, with the
// artefacts, and audits each artefact (no personal data: codes and ids).
func (a *actions) saveConsent(ctx context.Context, c broker.Consent) error {
	prev, prevLang, prevSHA := a.prev, a.prevLang, a.prevSHA
	arts := a.consentArtefacts(prev, c, prevLang, prevSHA)
	if err := a.s.Consents.SaveConsent(ctx, a.subject, c, langOr(a.sh.Lang), a.sh.NoticeSHA, arts); err != nil {
		return err
	}
	a.prev, a.prevLang, a.prevSHA = c, a.sh.Lang, a.sh.NoticeSHA
	if len(arts) == 0 && c == prev {
		return nil
	}
	if len(arts) == 0 {
		arts = []ConsentArtefact{{ID: broker.NewID("cna"), Status: ArtefactGiven}}
	}
	for _, art := range arts {
		if err := a.s.auditArtefact(ctx, a.subject, c, art); err != nil {
			return err
		}
	}
	return nil
}

// auditArtefact appends the audit entry of one artefact.
func (s *Service) auditArtefact(ctx context.Context, subject string, c broker.Consent, art ConsentArtefact) error {
	reason := "consent recorded"
	if art.Status == ArtefactWithdrawn {
		reason = "consent withdrawn"
	}
	if art.Reason != "" {
		reason += ": " + art.Reason
	}
	return s.record(ctx, broker.Event{Time: s.now(), Actor: "shopper:chat", Action: "consent", Purpose: broker.Purpose(consentPurposes(c)),
		Subject: subject, Resource: "consent:" + art.ID, Outcome: audit.OutcomeDone,
		Reason:       reason,
		NoticeSHA256: art.NoticeSHA256, Lang: art.Lang})
}

// GuardianStatus implements Actions.
func (a *actions) GuardianStatus(ctx context.Context) (string, error) {
	g, err := a.s.Consents.OpenGuardian(ctx, a.subject)
	if broker.IsNotFound(err) {
		return "", nil
	}
	return g.Status, err
}

// guardianKind is the blind-index domain of parents' numbers: never the
// shoppers' ("wa"), so the two indexes cannot be joined.
const guardianKind = "guardian"

// AskParent implements Actions: the parent's number is blind-indexed and
// sealed under the child's key, and the parent gets a template (they have
// no open window) with approve and decline quick replies.
func (a *actions) AskParent(ctx context.Context, digits, lang string) error {
	if a.ident.WaID == digits {
		return broker.Errorf(broker.EInvalid, "the parent's number is the shopper's own")
	}
	g := Guardian{ID: broker.NewID("gdn"), Subject: a.subject, Status: GuardianPending,
		ParentIndex: a.s.Releaser.Pseudonyms().BlindIndex(guardianKind, digits)}
	sealed, err := a.s.Sealer.Seal(ctx, a.subject, broker.Binding{Table: "guardians", Column: "sealed", RowID: g.ID},
		[]byte(`{"wa_id":"`+digits+`"}`))
	if err != nil {
		return err
	}
	g.Sealed = sealed
	if err := a.s.Consents.CreateGuardian(ctx, g); err != nil {
		return err
	}
	if err := a.s.record(ctx, broker.Event{Time: a.s.now(), Actor: "shopper:chat", Action: "parental consent requested", Purpose: PurposeParentalConsent,
		Subject: a.subject, Resource: "guardian:" + g.ID, Outcome: audit.OutcomeDone,
		Reason: "minor", Lang: langOr(lang)}); err != nil {
		return err
	}
	store := a.s.Conv.StoreName
	if store == "" {
		store = "our store"
	}
	ls := a.s.Conv.languages()
	body := strings.Replace(ls.T(lang, "Your child asked to order from {store} on WhatsApp and named you as their parent. Do you approve?"),
		"{store}", store, 1)
	r := Reply{Kind: "template", Template: "parental_consent", Body: body, Lang: langOr(lang), Localized: true,
		Buttons: []Button{{ID: ParentPrefix + "approve:" + g.ID, Title: ls.T(lang, "Approve")},
			{ID: ParentPrefix + "decline:" + g.ID, Title: ls.T(lang, "Decline")}}}
	// Sealed under the child's key: the parent's number is the child's data.
	item, err := a.s.sealReply(ctx, a.subject, a.store, "+"+digits, r, false)
	if err != nil {
		return err
	}
	a.extra = append(a.extra, item)
	return nil
}

// ParentAnswer implements Actions: the answer counts only from the number
// the child named (its blind index), and only while the request is open.
func (a *actions) ParentAnswer(ctx context.Context, id, status string) error {
	g, err := a.s.Consents.GuardianByID(ctx, id)
	if err != nil {
		return err
	}
	if a.ident.WaID == "" || string(a.s.Releaser.Pseudonyms().BlindIndex(guardianKind, a.ident.WaID)) != string(g.ParentIndex) {
		return broker.ErrNotFound // not the parent: nothing to learn here
	}
	from := []string{GuardianPending}
	if status == GuardianWithdrawn {
		from = []string{GuardianApproved, GuardianPending}
	}
	if err := a.s.Consents.SetGuardianStatus(ctx, id, from, status); err != nil {
		return err
	}
	child, err := a.s.Subjects.GetSubject(ctx, g.Subject)
	if err != nil {
		return err
	}
	art := ConsentArtefact{ID: broker.NewID("cna"), Subject: g.Subject, NoticeSHA256: child.NoticeSHA, Lang: langOr(child.Lang),
		Purposes: []string{string(PurposeParentalConsent)}, Status: ArtefactGiven, At: a.s.now().UTC(),
		Evidence: a.s.providerKey(g.Subject, a.in.ID), Method: MethodParent}
	if status != GuardianApproved {
		art.Status, art.Reason = ArtefactWithdrawn, "parent_"+status
	}
	if err := a.s.Consents.SaveConsent(ctx, g.Subject, child.Consent, langOr(child.Lang), child.NoticeSHA, []ConsentArtefact{art}); err != nil {
		return err
	}
	if err := a.s.auditArtefact(ctx, g.Subject, child.Consent, art); err != nil {
		return err
	}
	msg := map[string]string{GuardianApproved: "Your parent approved your order. Choose your delivery slot to pay.",
		GuardianDeclined:  "Your parent did not approve the order, so it cannot be paid.",
		GuardianWithdrawn: "Your parent withdrew their approval: orders cannot be paid until they approve again."}[status]
	return a.s.SendToShopper(ctx, g.Subject, a.store, Reply{Kind: ReplyText, Body: msg})
}

// ConsentExport is a shopper's consent artefacts as the compliance API
// exports them (POST /v1/subjects/consents), in the shape of the MeitY
// consent-management BRD: the data principal (a pseudonym), the data
// fiduciary's notice and language, and each artefact with its purposes,
// status, timestamp and evidence.
type ConsentExport struct {
	DataPrincipal string            `json:"data_principal"` // pseudonym
	Lang          string            `json:"language"`
	NoticeSHA256  string            `json:"notice_sha256"` // the notice version in force for them
	Consent       broker.Consent    `json:"consent"`
	Artefacts     []ConsentArtefact `json:"artefacts"`
}

// ConsentsOf exports a shopper's consent artefacts.
func (s *Service) ConsentsOf(ctx context.Context, subject string) (ConsentExport, error) {
	row, err := s.Subjects.GetSubject(ctx, subject)
	if err != nil {
		return ConsentExport{}, err
	}
	arts, err := s.Consents.ConsentArtefacts(ctx, subject)
	if err != nil {
		return ConsentExport{}, err
	}
	if arts == nil {
		arts = []ConsentArtefact{}
	}
	return ConsentExport{DataPrincipal: s.Releaser.Pseudonyms().Audit(subject), Lang: langOr(row.Lang),
		NoticeSHA256: row.NoticeSHA, Consent: row.Consent, Artefacts: arts}, nil
}
