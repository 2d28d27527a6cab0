package commerce

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// turnEvents is how many of a shopper's pending events one turn takes.
const turnEvents = 100

// processSubject handles one shopper's pending events, read as st, inside
// the group's transaction (ctx carries it). careful runs each event in its
// own savepoint. It returns the turn's writes for the caller to save (nil
// if there are none).
func (s worker) processSubject(ctx context.Context, subject string, st TurnState, careful bool) (*TurnWrite, error) {
	if !st.Locked || len(st.Items) == 0 {
		return nil, nil // another worker has this shopper, or nothing is pending
	}
	if !st.Found || st.Subject.Erased {
		return nil, s.Inbox.MarkInboxMany(ctx, inboxIDs(st.Items), "subject erased")
	}
	ident, err := s.identity(ctx, st.Subject)
	if err != nil {
		return nil, err
	}
	sess := &Session{}
	if st.Session != nil {
		b, err := s.Sealer.Open(ctx, subject, broker.Binding{Table: "sessions", Column: "sealed", RowID: subject}, st.Session)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, sess); err != nil {
			return nil, err
		}
	}
	sh := &Shopper{Subject: subject, Consent: st.Subject.Consent, Lang: st.Subject.Lang, NoticeSHA: st.Subject.NoticeSHA}
	sh.Restricted = st.Subject.Restricted
	return s.runTurn(ctx, sh, sess, ident, st.Items, careful)
}

// inboxIDs returns the ids of items.
func inboxIDs(items []InboxItem) []int64 {
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// turn collects the writes of one shopper's turn, written together.
type turn struct {
	out         []OutboxItem
	done        []int64
	lastInbound time.Time
}

// runTurn handles the events and returns the turn's writes.
func (s worker) runTurn(ctx context.Context, sh *Shopper, sess *Session, ident Identity, items []InboxItem, careful bool) (*TurnWrite, error) {
	t := &turn{}
	erased := false
	for _, it := range items {
		if erased {
			if err := s.Inbox.MarkInbox(ctx, it.ID, "subject erased"); err != nil {
				return nil, err
			}
			continue
		}
		if !careful {
			e, err := s.handleItem(ctx, sh, sess, ident, it, t)
			if err != nil {
				return nil, err
			}
			erased = e
			t.done = append(t.done, it.ID)
			continue
		}
		mark, snap, shSnap := len(t.out), *sess, *sh
		err := s.Tx.InSavepoint(ctx, func(ctx context.Context) error {
			e, err := s.handleItem(ctx, sh, sess, ident, it, t)
			erased = e
			return err
		})
		if err != nil {
			if broker.ErrorCode(err) == broker.EUnavailable || ctx.Err() != nil {
				return nil, err
			}
			t.out, *sess, *sh = t.out[:mark], snap, shSnap
			s.Log.Error("inbox event failed", "subject", s.Releaser.Pseudonyms().Audit(sh.Subject),
				"kind", it.Kind, "err", err)
			s.inc("sieve_inbox_failed_total")
			if err := s.Inbox.MarkInbox(ctx, it.ID, "processing failed: "+broker.ErrorCode(err)); err != nil {
				return nil, err
			}
			continue
		}
		t.done = append(t.done, it.ID)
	}
	w := TurnWrite{Subject: sh.Subject, Out: t.out, Done: t.done}
	if !erased {
		w.LastInbound = t.lastInbound
		b, _ := json.Marshal(sess)
		sealed, err := s.Sealer.Seal(ctx, sh.Subject, broker.Binding{Table: "sessions", Column: "sealed", RowID: sh.Subject}, b)
		if err != nil {
			return nil, err
		}
		w.Store, w.State, w.Session = items[len(items)-1].Store, sess.State, sealed
	}
	return &w, nil
}

func (s *Service) identity(ctx context.Context, row SubjectRow) (Identity, error) {
	var id Identity
	if row.SealedIdentity == nil {
		return id, nil
	}
	b, err := s.Sealer.Open(ctx, row.ID, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: row.ID}, row.SealedIdentity)
	if err != nil {
		return id, err
	}
	return id, json.Unmarshal(b, &id)
}

// handleItem applies one event; erased reports that the shopper is gone.
func (s worker) handleItem(ctx context.Context, sh *Shopper, sess *Session, ident Identity, it InboxItem, t *turn) (bool, error) {
	b, err := s.Sealer.Open(ctx, it.Subject, broker.Binding{Table: "inbox", Column: "sealed", RowID: it.DedupKey}, it.Sealed)
	if err != nil {
		return false, err
	}
	var ev storedEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return false, err
	}
	switch it.Kind {
	case EventStatus:
		s.inc("sieve_message_status_total", ev.Status)
		return false, s.Outbox.ApplyMessageStatus(ctx, s.providerKey(it.Subject, ev.StatusID), it.Subject, ev.Status, ev.ErrCode)
	case EventMessage:
		if ev.Time.After(t.lastInbound) {
			t.lastInbound = ev.Time
		}
	}
	act := &actions{s: s.Service, subject: it.Subject, store: it.Store, sh: sh, in: ev.Inbound, ident: ident,
		prev: sh.Consent, prevLang: sh.Lang, prevSHA: sh.NoticeSHA}
	replies, err := s.Conv.Handle(ctx, sh, sess, ev.Inbound, act)
	if err != nil {
		return false, err
	}
	t.out = append(t.out, act.extra...)
	langs := s.Conv.languages()
	for _, r := range replies {
		r = langs.Localize(langOr(sh.Lang), r)
		item, err := s.sealAnswer(ctx, it.Subject, it.Store, ident.Address(), r, act.erased, t.lastInbound)
		if err != nil {
			return false, err
		}
		if item.Sealed != nil {
			t.out = append(t.out, item)
		}
	}
	return act.erased, nil
}
