package commerce

import (
	"context"
	"encoding/json"

	"github.com/sieve-broker/sieve/broker"
)

// storedEvent is what the inbox seals: the event without identity hints
// except the profile name (kept to refresh the sealed identity).
type storedEvent struct {
	Inbound
	StatusID string `json:"status_id,omitempty"`
	Status   string `json:"status,omitempty"`
	ErrCode  int    `json:"err_code,omitempty"`
	Name     string `json:"name,omitempty"`
}

// Ingest stores events durably (sealed, deduplicated) and returns once they
// are committed: only then may the webhook be acknowledged. Statuses for
// unknown shoppers are dropped: there is nothing to apply them to.
func (s *Service) Ingest(ctx context.Context, events []Event) error {
	s.init()
	items := make([]InboxItem, 0, len(events))
	var statuses []MessageStatus
	for _, e := range events {
		if e.Class == EventIdentity {
			// Moved here, before the events after it in the same webhook
			// (a message from the new number) are resolved.
			if err := (identities{s}).moveIdentity(ctx, e); err != nil {
				return err
			}
			continue
		}
		subject, err := (identities{s}).resolveSubject(ctx, e)
		if err != nil {
			return err
		}
		if subject == "" {
			continue
		}
		if e.Class == EventStatus {
			// Delivery receipts do not drive the conversation: they are
			// applied here, monotonically and idempotently, instead of
			// queueing behind the shopper's messages (they are most of the
			// webhook traffic: sent, delivered and read per message).
			statuses = append(statuses, MessageStatus{ProviderID: s.providerKey(subject, e.StatusID), Subject: subject,
				Status: e.Status, ErrCode: e.ErrCode})
			s.inc("sieve_message_status_total", e.Status)
			continue
		}
		key := s.providerKey(subject, dedupKey(e))
		b, err := json.Marshal(storedEvent{Inbound: e.Inbound, StatusID: e.StatusID, Status: e.Status,
			ErrCode: e.ErrCode, Name: e.Name})
		if err != nil {
			return err
		}
		sealed, err := s.Sealer.Seal(ctx, subject, broker.Binding{Table: "inbox", Column: "sealed", RowID: key}, b)
		if err != nil {
			return err
		}
		items = append(items, InboxItem{DedupKey: key, Subject: subject, Kind: e.Class, Store: e.Store, Sealed: sealed})
	}
	if len(statuses) > 0 {
		if err := s.Outbox.ApplyMessageStatuses(ctx, statuses); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	n, err := s.Inbox.InsertInbox(ctx, items)
	if err != nil {
		return err
	}
	s.inc("sieve_inbox_events_total", "new")
	if dup := len(items) - n; dup > 0 {
		s.inc("sieve_inbox_events_total", "duplicate")
	}
	if n > 0 {
		subjects := make([]string, len(items))
		for i, it := range items {
			subjects[i] = it.Subject
		}
		s.ready.push(subjects)
		s.WakeWorker()
	}
	return nil
}

// dedupKey is what an event is deduplicated by, before hashing: the wire
// id (a wamid holds the phone number), so it is stored only as
// providerKey(subject, dedupKey(e)) (SPEC §5.8), which also makes
// deduplication per shopper.
func dedupKey(e Event) string {
	switch e.Class {
	case EventStatus:
		return "s:" + e.StatusID + ":" + e.Status
	case EventPayment:
		txn := ""
		if e.Payment != nil {
			txn = e.Payment.Status + ":" + e.Payment.TxnStatus
		}
		return "p:" + e.ID + ":" + txn
	}
	return "m:" + e.ID
}

// providerKey is the keyed hash a provider id of subject is stored as; ""
// stays "" (no id).
func (s *Service) providerKey(subject, id string) string {
	if id == "" {
		return ""
	}
	return s.Releaser.Pseudonyms().ProviderKey(subject, id)
}

// ResealInbox re-binds a pending inbox event's sealed payload from its old
// dedup key to its new one, for the one-time conversion of plaintext
// provider ids (broker/postgres UpgradeProviderIDs). It returns nil, nil
// when the shopper is erased: the event can only be dropped.
func (s *Service) ResealInbox(ctx context.Context, subject, oldKey, newKey string, sealed []byte) ([]byte, error) {
	b, err := s.Sealer.Open(ctx, subject, broker.Binding{Table: "inbox", Column: "sealed", RowID: oldKey}, sealed)
	if broker.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Sealer.Seal(ctx, subject, broker.Binding{Table: "inbox", Column: "sealed", RowID: newKey}, b)
}
