package commerce

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Nomination (DPDP Act §14): a shopper names a nominee by WhatsApp number;
// the nominee confirms from that number; after an officer records the
// shopper's death or incapacity, the officer may answer the nominee's
// access or erasure request on the shopper's behalf. The nominee's number
// is sealed under the shopper's key and indexed only by a keyed blind
// index; audit leaves name the shopper by pseudonym and nothing else.

// Nominee reply ids: the template's quick-reply payloads.
const (
	NomineeConfirmPrefix = "nominee:confirm:"
	NomineeDeclinePrefix = "nominee:decline:"
)

// StateNominate waits for the nominee's number after `nominate`.
const StateNominate = "nominate"

// Nomination events an officer records (fixed codes).
var NominationEvents = []string{"death", "incapacity"}

// Nomination is a nominee named by a shopper.
type Nomination struct {
	ID          string
	Subject     string
	Store       string // the business number the shopper nominated on
	Index       []byte // blind index of the nominee's number
	Sealed      []byte // {"wa_id"} under the shopper's key
	CreatedAt   time.Time
	ConfirmedAt *time.Time
	Event       string
	EventAt     *time.Time
	EventBy     string
}

// NominationStore is the persistence of nominations; methods join the
// transaction in ctx.
type NominationStore interface {
	broker.Transactor
	InsertNomination(ctx context.Context, n Nomination) error
	GetNomination(ctx context.Context, id string) (Nomination, error)
	ConfirmNomination(ctx context.Context, id string, at time.Time) (bool, error)
	// SetNominationEvent records the event once; false when one is recorded.
	SetNominationEvent(ctx context.Context, id, event, by string, at time.Time) (bool, error)
	// SubjectWaIndex returns the blind index of a shopper's number.
	SubjectWaIndex(ctx context.Context, subject string) ([]byte, error)
}

// Nominees runs nominations.
type Nominees struct {
	Service *Service
	Rights  *Rights
	Store   NominationStore
	Now     func() time.Time
}

func (n *Nominees) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Nominees) record(ctx context.Context, actor, action, subject, resource, reason string) error {
	s := n.Service
	return s.record(ctx, broker.Event{Time: n.now(), Actor: actor,
		Action: action, Purpose: broker.PurposeDataSubjectRequest, Subject: subject, Resource: resource,
		Outcome: audit.OutcomeDone, Reason: reason})
}

// Nominate records the nominee's number for the shopper and asks the
// nominee, by template (they have no open window), to confirm from that
// number. It returns the reply to the shopper.
func (n *Nominees) Nominate(ctx context.Context, subject, store, number string) (Reply, error) {
	digits := NormalizeWaID(number)
	if digits == "" {
		return Reply{Kind: ReplyText, Body: "That does not look like a WhatsApp number. Send your nominee's number " +
			"with its country code, e.g. \"nominate +91 98xxx xxxxx\"."}, nil
	}
	s := n.Service
	index := s.Releaser.Pseudonyms().BlindIndex("wa", digits)
	own, err := n.Store.SubjectWaIndex(ctx, subject)
	if err != nil && !broker.IsNotFound(err) {
		return Reply{}, err
	}
	if own != nil && bytes.Equal(own, index) {
		return Reply{Kind: ReplyText, Body: "Your nominee must be someone else: send their WhatsApp number."}, nil
	}
	nom := Nomination{ID: broker.NewID("nom"), Subject: subject, Store: store, Index: index, CreatedAt: n.now().UTC()}
	b, _ := json.Marshal(Identity{WaID: digits})
	if nom.Sealed, err = s.Sealer.Seal(ctx, subject, broker.Binding{Table: "nominations", Column: "sealed", RowID: nom.ID}, b); err != nil {
		return Reply{}, err
	}
	if err := n.Store.InsertNomination(ctx, nom); err != nil {
		return Reply{}, err
	}
	if err := n.record(ctx, broker.Party{ID: "chat", Kind: broker.KindShopper}.Actor(), "nominee_nominate", subject, nom.ID, "nominated"); err != nil {
		return Reply{}, err
	}
	ask := Reply{Kind: "template", Template: "nominee_request",
		Body: "A shopper of " + storeLabel(s) + " has named you as their nominee under the DPDP Act: if they die or " +
			"become incapable, you may ask for their data or its erasure on their behalf. Do you accept?",
		Buttons: []Button{{ID: NomineeConfirmPrefix + nom.ID, Title: "I accept"}, {ID: NomineeDeclinePrefix + nom.ID, Title: "Decline"}}}
	item, err := s.sealReply(ctx, subject, store, "+"+digits, ask, false)
	if err != nil {
		return Reply{}, err
	}
	if _, err := s.Outbox.Enqueue(ctx, item); err != nil {
		return Reply{}, err
	}
	return Reply{Kind: ReplyText, Body: fmt.Sprintf("We have asked your nominee to confirm from their own number "+
		"(ref %s). We will tell you when they do.", nom.ID)}, nil
}

func storeLabel(s *Service) string {
	if s.Conv != nil && s.Conv.StoreName != "" {
		return s.Conv.StoreName
	}
	return "our store"
}

// Answer handles the nominee's button from their own number: the sender
// (subject sender) must be the number the shopper named.
func (n *Nominees) Answer(ctx context.Context, sender, replyID string) (Reply, error) {
	accept := strings.HasPrefix(replyID, NomineeConfirmPrefix)
	id := strings.TrimPrefix(strings.TrimPrefix(replyID, NomineeConfirmPrefix), NomineeDeclinePrefix)
	nom, err := n.Store.GetNomination(ctx, id)
	if err != nil && !broker.IsNotFound(err) {
		return Reply{}, err
	}
	idx, ierr := n.Store.SubjectWaIndex(ctx, sender)
	if ierr != nil && !broker.IsNotFound(ierr) {
		return Reply{}, ierr
	}
	unknown := Reply{Kind: ReplyText, Body: "This request is not for this number, or it has expired."}
	if err != nil || idx == nil || !bytes.Equal(idx, nom.Index) {
		return unknown, nil
	}
	if !accept {
		if err := n.record(ctx, "nominee:"+nom.ID, "nominee_decline", nom.Subject, nom.ID, "declined"); err != nil {
			return Reply{}, err
		}
		return Reply{Kind: ReplyText, Body: "Understood: you are not a nominee."}, nil
	}
	ok, err := n.Store.ConfirmNomination(ctx, nom.ID, n.now().UTC())
	if err != nil {
		return Reply{}, err
	}
	if !ok {
		return Reply{Kind: ReplyText, Body: "You had already confirmed. Thank you."}, nil
	}
	if err := n.record(ctx, "nominee:"+nom.ID, "nominee_confirm", nom.Subject, nom.ID, "confirmed_from_nominee_number"); err != nil {
		return Reply{}, err
	}
	err = n.Service.SendToShopper(ctx, nom.Subject, nom.Store, Reply{Kind: ReplyText, Template: "nominee_update",
		Body: fmt.Sprintf("Your nominee has confirmed (ref %s).", nom.ID)})
	if err != nil && !broker.IsNotFound(err) {
		return Reply{}, err
	}
	return Reply{Kind: ReplyText, Body: "Thank you: you are now the nominee (ref " + nom.ID + "). To act for them " +
		"later, contact the grievance officer with this reference."}, nil
}

// RecordEvent records the shopper's death or incapacity (an officer's act,
// after seeing evidence), which lets the nominee act.
func (n *Nominees) RecordEvent(ctx context.Context, id, event string, actor broker.Party) error {
	if !slices.Contains(NominationEvents, event) {
		return broker.Errorf(broker.EInvalid, "event must be one of %s", strings.Join(NominationEvents, ", "))
	}
	return n.Store.InTx(ctx, func(ctx context.Context) error {
		nom, err := n.Store.GetNomination(ctx, id)
		if err != nil {
			return err
		}
		if nom.ConfirmedAt == nil {
			return broker.Errorf(broker.EConflict, "the nominee has not confirmed")
		}
		ok, err := n.Store.SetNominationEvent(ctx, id, event, actor.Actor(), n.now().UTC())
		if err != nil {
			return err
		}
		if !ok {
			return broker.Errorf(broker.EConflict, "an event is already recorded for %s", id)
		}
		return n.record(ctx, actor.Actor(), "nominee_event", nom.Subject, id, event)
	})
}

// authorise checks that the nomination may be acted on by the nominee at
// number: confirmed, an event recorded, and the number the one named.
func (n *Nominees) authorise(ctx context.Context, id, number string) (Nomination, error) {
	nom, err := n.Store.GetNomination(ctx, id)
	if err != nil {
		return nom, err
	}
	digits := NormalizeWaID(number)
	if digits == "" || !bytes.Equal(n.Service.Releaser.Pseudonyms().BlindIndex("wa", digits), nom.Index) {
		return nom, broker.Errorf(broker.EDenied, "that number is not the nominee of %s", id)
	}
	if nom.ConfirmedAt == nil {
		return nom, broker.Errorf(broker.EDenied, "the nominee has not confirmed")
	}
	if nom.Event == "" {
		return nom, broker.Errorf(broker.EDenied, "no death or incapacity is recorded: the nominee cannot act yet")
	}
	return nom, nil
}

// Access answers the nominee's access request on the shopper's behalf: the
// export is a release to the officer through the pipeline (audited and in
// the shopper's disclosures), with the nominee request audited first.
func (n *Nominees) Access(ctx context.Context, id, nomineeNumber string, actor broker.Party) (Export, error) {
	nom, err := n.authorise(ctx, id, nomineeNumber)
	if err != nil {
		return Export{}, err
	}
	if err := n.record(ctx, actor.Actor(), "nominee_request", nom.Subject, id, "access"); err != nil {
		return Export{}, err
	}
	ex, _, err := n.Rights.ReleaseExport(ctx, nom.Subject, actor)
	return ex, err
}

// Erase answers the nominee's erasure request on the shopper's behalf.
func (n *Nominees) Erase(ctx context.Context, id, nomineeNumber string, actor broker.Party) error {
	nom, err := n.authorise(ctx, id, nomineeNumber)
	if err != nil {
		return err
	}
	if err := n.record(ctx, actor.Actor(), "nominee_request", nom.Subject, id, "erasure"); err != nil {
		return err
	}
	return n.Rights.Erase(ctx, nom.Subject, actor, EraseRequest)
}

// NominationActions is what the conversation needs for `nominate` and the
// nominee's answer.
type NominationActions interface {
	Nominate(ctx context.Context, number string) (Reply, error)
	AnswerNomination(ctx context.Context, replyID string) (Reply, error)
}

// Nominate implements NominationActions.
func (a *actions) Nominate(ctx context.Context, number string) (Reply, error) {
	if a.s.nominees == nil {
		return Reply{}, broker.Errorf(broker.EUnavailable, "no nominations")
	}
	return a.s.nominees.Nominate(ctx, a.subject, a.store, number)
}

// AnswerNomination implements NominationActions.
func (a *actions) AnswerNomination(ctx context.Context, replyID string) (Reply, error) {
	if a.s.nominees == nil {
		return Reply{}, broker.Errorf(broker.EUnavailable, "no nominations")
	}
	return a.s.nominees.Answer(ctx, a.subject, replyID)
}

// nominate handles `nominate` (with the number after the word, or in the
// next message) and the nominee's answer (before the consent gate: the
// nominee need not be a shopper); ok is false for any other event.
func (c *Conversation) nominate(ctx context.Context, s *Session, in Inbound, act Actions) ([]Reply, bool, error) {
	na, _ := act.(NominationActions)
	if in.Kind == InReply && (strings.HasPrefix(in.ReplyID, NomineeConfirmPrefix) || strings.HasPrefix(in.ReplyID, NomineeDeclinePrefix)) {
		if na == nil {
			return nil, true, broker.Errorf(broker.EUnavailable, "no nominations")
		}
		r, err := na.AnswerNomination(ctx, in.ReplyID)
		return []Reply{r}, true, err
	}
	return nil, false, nil
}

// nominateCommand handles `nominate` for a shopper who accepted the notice.
func (c *Conversation) nominateCommand(ctx context.Context, s *Session, in Inbound, act Actions) ([]Reply, bool, error) {
	number := ""
	switch {
	case s.State == StateNominate:
		s.State, s.Return = s.Return, ""
		if in.Kind != InText || command(in) == "cancel" {
			return []Reply{{Kind: ReplyText, Body: "No nominee was named."}}, true, nil
		}
		number = in.Text
	case in.Kind == InText:
		t := strings.TrimSpace(in.Text)
		first, rest, _ := strings.Cut(t, " ")
		if !strings.EqualFold(first, "nominate") {
			return nil, false, nil
		}
		if strings.TrimSpace(rest) == "" {
			s.Return, s.State = s.State, StateNominate
			return []Reply{{Kind: ReplyText, Body: "Who should act for you if you die or become incapable? Send their " +
				"WhatsApp number with its country code. We will ask them to confirm from that number."}}, true, nil
		}
		number = rest
	default:
		return nil, false, nil
	}
	na, ok := act.(NominationActions)
	if !ok {
		return nil, true, broker.Errorf(broker.EUnavailable, "no nominations")
	}
	r, err := na.Nominate(ctx, number)
	return []Reply{r}, true, err
}

// Get reads a nomination (for the officer's page: no number is unsealed).
func (n *Nominees) Get(ctx context.Context, id string) (Nomination, error) {
	return n.Store.GetNomination(ctx, id)
}
