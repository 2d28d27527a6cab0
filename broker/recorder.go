package broker

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/audit"
)

// Purposes of the audit entries that record the broker's own actions rather
// than a release. Every purpose an entry carries is a constant of this
// package, so the log's vocabulary is read in one place.
const (
	PurposeIdentity           Purpose = "identity"            // a shopper's identifiers moved
	PurposeGrievance          Purpose = "grievance"           // the grievance desk
	PurposeBreachNotification Purpose = "breach_notification" // breach workbench actions
	PurposeErasure            Purpose = "erasure"             // a shopper erased
	PurposeLogIntegrity       Purpose = "log_integrity"       // the log's own keys
	PurposeRecipientNotice    Purpose = "recipient_notice"    // notices to a shopper's recipients
	PurposeRetention          Purpose = "retention"           // holds, shredding, erasure warnings
	PurposeRectification      Purpose = "rectification"       // a correction
	PurposeParentalConsent    Purpose = "parental_consent"    // a guardian asked for a minor
	PurposeLegalObligation    Purpose = "legal_obligation"    // data held by law (invoices)
	PurposeOfficerAccess      Purpose = "officer_access"      // officer sign-in, sign-out
	PurposeComplianceReview   Purpose = "compliance_review"   // audit log exports
	// PurposeInvalid marks a refused request that named a purpose the
	// thing asked for may not serve.
	PurposeInvalid Purpose = "invalid"
)

// Event is one thing the broker records in the audit log that is not a
// release decision (the Releaser records those): a consent, an erasure, a
// notice, an officer's action. The Recorder fills in what every entry
// needs; an Event names only what happened.
type Event struct {
	Time       time.Time // zero: the recorder's clock
	DecisionID string    // zero: a new id
	Actor      string    // Party.Actor(), or a system actor such as "system:retention"
	Action     string
	Purpose    Purpose
	// Subject is the shopper's id; the entry carries its audit pseudonym.
	// SubjectPseudonym is for callers that hold only the pseudonym.
	Subject          string
	SubjectPseudonym string
	Resource         string
	Outcome          string // zero: audit.OutcomeDone
	Reason           string
	Released         []string // field names
	Withheld         []string // field names
	// The notice version and language a consent was given under.
	NoticeSHA256, Lang string
	// Legal is the recipient's registry entry, on events about a partner.
	Legal PartyLegal
}

// Recorder is the only builder of audit entries: it stamps each with the
// time, a decision id, the subject's pseudonym and the policy revision in
// force, and appends it. A Recorder without a log fails every write.
type Recorder struct {
	log    AuditAppender
	policy PolicyEngine
	pseudo *Pseudonymizer
	now    func() time.Time
}

// NewRecorder returns a recorder appending to log. policy and pseudo may be
// nil when no event carries a subject or needs a revision (tools).
func NewRecorder(log AuditAppender, policy PolicyEngine, pseudo *Pseudonymizer) *Recorder {
	return &Recorder{log: log, policy: policy, pseudo: pseudo, now: time.Now}
}

// Record appends the entry of ev and returns its decision id. An error
// means nothing was recorded: the caller must not go on as if it had been.
func (r *Recorder) Record(ctx context.Context, ev Event) (string, error) {
	if r == nil || r.log == nil {
		return "", Errorf(EInternal, "no audit log to record to")
	}
	e := r.Entry(ev)
	return e.DecisionID, r.log.Append(ctx, e)
}

// Entry builds the audit entry of ev without appending it (for callers that
// append it later, or in another transaction).
func (r *Recorder) Entry(ev Event) audit.Entry {
	e := audit.Entry{
		Time:          ev.Time,
		DecisionID:    ev.DecisionID,
		Actor:         ev.Actor,
		Action:        ev.Action,
		Purpose:       string(ev.Purpose),
		Subject:       ev.SubjectPseudonym,
		Resource:      ev.Resource,
		Released:      ev.Released,
		Withheld:      ev.Withheld,
		Outcome:       ev.Outcome,
		Reason:        ev.Reason,
		NoticeSHA256:  ev.NoticeSHA256,
		Lang:          ev.Lang,
		RecipientRole: ev.Legal.Role,
		Jurisdiction:  ev.Legal.Jurisdiction,
		TransferBasis: ev.Legal.TransferBasis,
	}
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if e.DecisionID == "" {
		e.DecisionID = NewID("dec")
	}
	if ev.Subject != "" && r.pseudo != nil {
		e.Subject = r.pseudo.Audit(ev.Subject)
	}
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeDone
	}
	if r.policy != nil {
		e.PolicyRevision = r.policy.Revision()
	}
	return e
}

// ActionLogKeyAnnounced is the audit action that publishes a new checkpoint
// key in the log itself, before the key signs anything: its resource is the
// new key's note verifier key (no personal data), and the checkpoint that
// first covers it is signed by the previous key too, so a monitor that
// pinned the previous key can pin the new one from the log.
const ActionLogKeyAnnounced = "log.key_announced"

// AnnounceLogKey records that the checkpoint key with the note verifier key
// vkey is about to sign. It must be written before the key signs anything:
// an error means the rotation must not happen (fail closed).
func (r *Recorder) AnnounceLogKey(ctx context.Context, vkey string) error {
	if vkey == "" {
		return Errorf(EInvalid, "no verifier key to announce")
	}
	actor := Party{Kind: KindSystem, ID: "keys"}
	if _, err := r.Record(ctx, Event{Actor: actor.Actor(), Action: ActionLogKeyAnnounced,
		Purpose: PurposeLogIntegrity, Resource: vkey, Reason: "rotation"}); err != nil {
		return Wrap(ErrorCode(err), err, "announce the new log key in the audit log")
	}
	return nil
}

// release builds the audit entry of a release decision.
func (r *Recorder) release(req Request, d Decision) audit.Entry {
	action := req.Action
	if action == "" {
		action = "release"
	}
	released := make([]string, 0, len(d.Released))
	for f := range d.Released {
		released = append(released, f)
	}
	subject := ""
	if req.Subject != "" {
		subject = r.pseudo.Audit(req.Subject)
	}
	return audit.Entry{
		Time:           d.Time,
		DecisionID:     d.ID,
		Actor:          req.Party.Actor(),
		Action:         action,
		Purpose:        string(req.Purpose),
		Subject:        subject,
		Resource:       req.Resource,
		Released:       released,
		Withheld:       d.WithheldFields(),
		Outcome:        d.Outcome,
		Reason:         d.Reason,
		PolicyRevision: d.PolicyRevision,
		RetainUntil:    d.RetainUntil,
		RecipientRole:  req.Party.Legal.Role,
		Jurisdiction:   req.Party.Legal.Jurisdiction,
		TransferBasis:  req.Party.Legal.TransferBasis,
	}
}
