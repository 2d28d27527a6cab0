package commerce

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Event classes: what an inbound event is, and so what the inbox stores it
// as (InboxItem.Kind). Inbound.Kind says what a message carries; the class
// says whether it is a message at all.
const (
	EventMessage  = "message"  // a shopper's message: the conversation answers it
	EventStatus   = "status"   // a delivery status of a message we sent
	EventPayment  = "payment"  // a payment status of an order
	EventIdentity = "identity" // a system message that moves the shopper's identifiers
)

// Event is one decoded inbound event with the identity hints the wire gave.
type Event struct {
	Inbound
	Class string // EventMessage, EventStatus, EventPayment or EventIdentity
	// Who: the shopper's WhatsApp id (phone digits), their BSUID when
	// WhatsApp withheld the number, or an opaque id; Name is the profile name.
	WaID, BSUID, Opaque, Name string
	// ParentBSUID is the parent BSUID (across the business portfolio),
	// when WhatsApp gave one: indexed, never released.
	ParentBSUID string
	// Change, for class EventIdentity, is the system message that moves the
	// shopper's identifiers (IdentityChangedNumber, IdentityChangedUserID):
	// the New* identifiers replace those of their kind, and Prev* are the
	// previous BSUIDs the message names besides the sender's.
	Change                       string
	NewWaID, NewBSUID, NewParent string
	PrevBSUID, PrevParent        string
	// Status events: the message id and status ("sent", "delivered", …).
	StatusID, Status string
	ErrCode          int
}

// DeliveryError tells the outbox how a failed send should be handled.
type DeliveryError struct {
	Permanent  bool
	RetryAfter time.Duration
	Reason     string // a code and a reason; never personal data
}

func (e *DeliveryError) Error() string { return "delivery failed: " + e.Reason }

// Sender sends a reply to a shopper over WhatsApp (the Cloud API adapter).
// Errors should be *DeliveryError; any other error is retried.
type Sender interface {
	SendMessage(ctx context.Context, store, to string, r Reply) (providerID string, err error)
}

// PartnerHooks pushes signed webhooks to partners.
type PartnerHooks interface {
	Deliver(ctx context.Context, p broker.Partner, event string, body []byte) error
}

// Metrics receives counts; nil-safe no-op when unset.
type Metrics interface {
	Inc(name string, labels ...string)
}

// Service runs the shopping side: durable ingest, the conversation worker,
// the outbox, and the partner-facing order operations.
type Service struct {
	Store    Store
	Sealer   broker.Sealer
	Vault    broker.Vault
	Releaser *broker.Releaser
	Partners broker.PartnerStore
	Sender   Sender
	Hooks    PartnerHooks
	// Payments confirms every capture with the provider before an order
	// is placed (BROKER_PAYMENT_LOOKUP); nil: the checked webhook alone.
	Payments PaymentLookup
	Conv     *Conversation
	Log      *slog.Logger
	Metrics  Metrics
	// Erase erases a shopper (the compliance service); required.
	Eraser func(ctx context.Context, subject string, actor broker.Party, reason string) error
	// Summary describes a shopper's data and its disclosures ("my data").
	Summary func(ctx context.Context, subject string) (string, error)
	// Notices tells a shopper's recipients about erasures, withdrawals and
	// corrections (SPEC §5.12); nil sends none (unit tests).
	Notices *Notices
	// Holds keeps invoices through an erasure for their legal minimum;
	// nil: an erasure shreds every key.
	Holds *Holds
	// Desk is the grievance desk (`complaint`); nil: complaints are refused.
	Desk *Desk
	// Nominees runs nominations (`nominate`); nil: refused.
	Nominees *Nominees
	// Consents keeps consent artefacts, languages and guardians; nil keeps
	// the consent flags alone (inner-ring tests).
	Consents ConsentStore
	// Exporter releases a shopper's own data to them as a JSON document
	// ("export my data", Rights.ShopperExport).
	Exporter func(ctx context.Context, subject string) ([]byte, error)
	// OfferTTL is how long a candidate store has to take an offer
	// (BROKER_OFFER_TTL); 0 means DefaultOfferTTL.
	OfferTTL time.Duration

	wakeWorker chan struct{}
	wakeSender chan struct{}
	ready      *readyQueue
	subjects   sync.Map // blind index (string) -> cachedSubject
	refs       refSet   // (partner, customer_ref) pairs already recorded
	catalog    catalogCache
	once       sync.Once
}

type cachedSubject struct {
	id  string
	exp time.Time
}

const subjectCacheTTL = time.Minute

func (s *Service) init() {
	s.once.Do(func() {
		s.wakeWorker = make(chan struct{}, 1)
		s.ready = newReadyQueue()
		s.wakeSender = make(chan struct{}, 1)
		if s.Log == nil {
			s.Log = slog.Default()
		}
	})
}

func (s *Service) inc(name string, labels ...string) {
	if s.Metrics != nil {
		s.Metrics.Inc(name, labels...)
	}
}

// WakeWorker nudges the inbox worker (new events are durable).
func (s *Service) WakeWorker() {
	s.init()
	select {
	case s.wakeWorker <- struct{}{}:
	default:
	}
}

// WakeSender nudges the outbox sender.
func (s *Service) WakeSender() {
	s.init()
	select {
	case s.wakeSender <- struct{}{}:
	default:
	}
}

// ForgetSubject drops cached state of an erased shopper.
func (s *Service) ForgetSubject(subject string) {
	s.subjects.Range(func(k, v any) bool {
		if v.(cachedSubject).id == subject {
			s.subjects.Delete(k)
		}
		return true
	})
	s.Sealer.Forget(subject)
}

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
			if err := s.moveIdentity(ctx, e); err != nil {
				return err
			}
			continue
		}
		subject, err := s.resolveSubject(ctx, e)
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
		if err := s.Store.ApplyMessageStatuses(ctx, statuses); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	n, err := s.Store.InsertInbox(ctx, items)
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

// RunWorkers processes stored events with n workers until ctx ends. One
// loop hands groups of shoppers with pending events to the workers, never
// the same shopper to two at once in this process (other processes are kept
// apart by the per-shopper advisory lock). The workers are latency-bound
// (round trips to the database), so several overlap.
//
// The shoppers come from two places. Events this process stores are queued
// in memory as they commit ([Service.Ingest]), so a busy inbox costs no
// query to find its work. The database is asked too (pending events of
// other processes, of a previous run, of turns that failed or were left
// unfinished): at start, after the memory queue overflowed, while the
// answer fills a page, and otherwise every [pendingPoll].
func (s *Service) RunWorkers(ctx context.Context, n int) error {
	s.init()
	if n < 1 {
		n = 1
	}
	q := s.ready
	jobs := make(chan []string)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range jobs {
				again, err := s.processGroup(ctx, group)
				if err != nil && ctx.Err() == nil {
					s.Log.Warn("inbox worker", "err", err)
				}
				q.release(group, again)
				s.WakeWorker()
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	var lastPoll time.Time
	pollNow := true
	for {
		if pollNow || q.overflowed() || time.Since(lastPoll) >= pendingPoll {
			subjects, err := s.Store.PendingSubjects(ctx, pendingPage)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("inbox worker", "err", err)
			}
			lastPoll = time.Now()
			// A full page may hide more: ask again at once, unless the page
			// held nothing the queue did not know (then the oldest pending
			// shoppers are being served, and the rest come up in time).
			added := q.push(subjects)
			pollNow = err == nil && len(subjects) == pendingPage && added > 0
		}
		fresh := q.take(pendingPage)
		for len(fresh) > 0 {
			group := fresh[:min(len(fresh), subjectsPerTx)]
			fresh = fresh[len(group):]
			select {
			case jobs <- group:
			case <-ctx.Done():
				return nil
			}
		}
		wait := pendingPoll - time.Since(lastPoll)
		if pollNow {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wakeWorker:
		case <-time.After(max(wait, time.Millisecond)):
		}
	}
}

// pendingPoll is how often the workers ask the database for pending events
// that the memory queue does not know of; pendingPage is how many shoppers
// one question (and one hand-out) takes at most.
const (
	pendingPoll = time.Second
	pendingPage = 256
)

// readyQueue holds the shoppers with events to process, in arrival order,
// each once, and the shoppers a worker has now. A shopper queued while a
// worker has it is handed out again when the worker lets it go. It holds at
// most readyQueueMax shoppers; beyond that it drops them and says so, and
// the database is asked instead.
type readyQueue struct {
	mu       sync.Mutex
	order    []string
	queued   map[string]bool
	busy     map[string]bool // handed to a worker; true: queued again meanwhile
	overflow bool
}

const readyQueueMax = 100_000

func newReadyQueue() *readyQueue {
	return &readyQueue{queued: map[string]bool{}, busy: map[string]bool{}}
}

// push queues shoppers (again) and returns how many it did not know (neither
// queued nor busy).
func (q *readyQueue) push(subjects []string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	added := 0
	for _, sub := range subjects {
		if q.pushLocked(sub) {
			added++
		}
	}
	return added
}

func (q *readyQueue) pushLocked(sub string) bool {
	if q.queued[sub] {
		return false
	}
	if _, ok := q.busy[sub]; ok {
		q.busy[sub] = true // after the worker's turn
		return false
	}
	if len(q.queued) >= readyQueueMax {
		q.overflow = true
		return false
	}
	q.queued[sub] = true
	q.order = append(q.order, sub)
	return true
}

// take hands out up to n shoppers, oldest first, and marks them busy.
func (q *readyQueue) take(n int) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(n, len(q.order))
	out := slices.Clone(q.order[:k])
	clear(q.order[:k])
	q.order = q.order[k:]
	if len(q.order) == 0 {
		q.order = nil
	}
	for _, sub := range out {
		delete(q.queued, sub)
		q.busy[sub] = false
	}
	return out
}

// release lets a worker's shoppers go, queueing again those that got events
// meanwhile and those in again.
func (q *readyQueue) release(group, again []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, sub := range group {
		queued := q.busy[sub]
		delete(q.busy, sub)
		if queued || slices.Contains(again, sub) {
			q.pushLocked(sub)
		}
	}
}

// overflowed reports (once) that shoppers were dropped since the last call.
func (q *readyQueue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	o := q.overflow
	q.overflow = false
	return o
}

// subjectsPerTx is how many shoppers one worker transaction serves: their
// effects share one COMMIT (one WAL flush), while a savepoint per shopper
// keeps one shopper's failure from touching the others.
const subjectsPerTx = 16

// processGroup handles several shoppers' pending events in one transaction.
// The fast path uses no savepoints; if any shopper's turn fails for a reason
// other than the database being away, the group is rolled back and run
// carefully: each shopper in a savepoint, each event in a savepoint, and a
// shopper whose turn still fails has its events marked failed (never
// retried forever).
func (s *Service) processGroup(ctx context.Context, subjects []string) (more []string, err error) {
	sent := false
	// serve runs one shopper's turn and notes what the group needs to know
	// of it: whether it has events left over, and whether it queued sends.
	serve := func(ctx context.Context, sub string, st TurnState, careful bool) (*TurnWrite, error) {
		if len(st.Items) == turnEvents {
			more = append(more, sub)
		}
		w, err := s.processSubject(ctx, sub, st, careful)
		if w != nil && len(w.Out) > 0 {
			sent = true
		}
		return w, err
	}
	run := func(careful bool) error {
		return s.Store.InTx(ctx, func(ctx context.Context) error {
			more, sent = more[:0], false
			if !careful {
				// The whole group's turns are read, and written, with one
				// statement per table.
				states, err := s.Store.LoadTurns(ctx, subjects, turnEvents)
				if err != nil {
					return err
				}
				var writes []TurnWrite
				for i, sub := range subjects {
					w, err := serve(ctx, sub, states[i], false)
					if err != nil {
						return err
					}
					if w != nil {
						writes = append(writes, *w)
					}
				}
				return s.Store.SaveTurns(ctx, writes)
			}
			for _, sub := range subjects {
				err := s.Store.InSavepoint(ctx, func(ctx context.Context) error {
					states, err := s.Store.LoadTurns(ctx, []string{sub}, turnEvents)
					if err != nil {
						return err
					}
					w, err := serve(ctx, sub, states[0], true)
					if err != nil || w == nil {
						return err
					}
					return s.Store.SaveTurns(ctx, []TurnWrite{*w})
				})
				if err != nil && broker.ErrorCode(err) != broker.EUnavailable && ctx.Err() == nil {
					err = s.failSubject(ctx, sub, err)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = run(false)
	if err != nil && broker.ErrorCode(err) != broker.EUnavailable && ctx.Err() == nil {
		err = run(true)
	}
	if err != nil {
		return nil, err
	}
	if sent {
		s.WakeSender()
	}
	return more, nil
}

// failSubject marks a shopper's pending events failed after its turn
// failed even event by event (e.g. a record that no longer opens).
func (s *Service) failSubject(ctx context.Context, subject string, cause error) error {
	s.Log.Error("shopper's events set aside", "subject", s.Releaser.Pseudonyms().Audit(subject), "err", cause)
	s.inc("sieve_inbox_failed_total")
	items, err := s.Store.PendingInbox(ctx, subject, turnEvents)
	if err != nil {
		return err
	}
	return s.Store.MarkInboxMany(ctx, inboxIDs(items), "processing failed: "+broker.ErrorCode(cause))
}

// turnEvents is how many of a shopper's pending events one turn takes.
const turnEvents = 100

// processSubject handles one shopper's pending events, read as st, inside
// the group's transaction (ctx carries it). careful runs each event in its
// own savepoint. It returns the turn's writes for the caller to save (nil
// if there are none).
func (s *Service) processSubject(ctx context.Context, subject string, st TurnState, careful bool) (*TurnWrite, error) {
	if !st.Locked || len(st.Items) == 0 {
		return nil, nil // another worker has this shopper, or nothing is pending
	}
	if !st.Found || st.Subject.Erased {
		return nil, s.Store.MarkInboxMany(ctx, inboxIDs(st.Items), "subject erased")
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
func (s *Service) runTurn(ctx context.Context, sh *Shopper, sess *Session, ident Identity, items []InboxItem, careful bool) (*TurnWrite, error) {
	t := &turn{}
	erased := false
	for _, it := range items {
		if erased {
			if err := s.Store.MarkInbox(ctx, it.ID, "subject erased"); err != nil {
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
		err := s.Store.InSavepoint(ctx, func(ctx context.Context) error {
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
			if err := s.Store.MarkInbox(ctx, it.ID, "processing failed: "+broker.ErrorCode(err)); err != nil {
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
func (s *Service) handleItem(ctx context.Context, sh *Shopper, sess *Session, ident Identity, it InboxItem, t *turn) (bool, error) {
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
		return false, s.Store.ApplyMessageStatus(ctx, s.providerKey(it.Subject, ev.StatusID), it.Subject, ev.Status, ev.ErrCode)
	case EventMessage:
		if ev.Time.After(t.lastInbound) {
			t.lastInbound = ev.Time
		}
	}
	act := &actions{s: s, subject: it.Subject, store: it.Store, sh: sh, in: ev.Inbound, ident: ident,
		prev: sh.Consent, prevLang: sh.Lang, prevSHA: sh.NoticeSHA}
	replies, err := s.Conv.Handle(ctx, sh, sess, ev.Inbound, act)
	if err != nil {
		return false, err
	}
	t.out = append(t.out, act.extra...)
	langs := s.Conv.languages()
	for _, r := range replies {
		r = langs.Localize(langOr(sh.Lang), r)
		item, err := s.sealReply(ctx, it.Subject, it.Store, ident.Address(), r, act.erased)
		if err != nil {
			return false, err
		}
		if item.Sealed != nil {
			t.out = append(t.out, item)
		}
	}
	return act.erased, nil
}

// outMessage is a sealed outbox payload for WhatsApp.
type outMessage struct {
	Store string `json:"store"`
	To    string `json:"to"`
	Reply Reply  `json:"reply"`
}

// sealReply seals a reply as an outbox item: under the shopper's key, or
// under the vault when the shopper has just been erased (the last words).
func (s *Service) sealReply(ctx context.Context, subject, store, to string, r Reply, vault bool) (OutboxItem, error) {
	if to == "" {
		return OutboxItem{}, nil
	}
	ref := broker.NewID("msg")
	b, _ := json.Marshal(outMessage{Store: store, To: to, Reply: r})
	var sealed []byte
	var err error
	if vault {
		sealed, err = s.Vault.SealSecret(ctx, "outbox:"+ref, b)
	} else {
		sealed, err = s.Sealer.Seal(ctx, subject, broker.Binding{Table: "outbox", Column: "sealed", RowID: ref}, b)
	}
	if err != nil {
		return OutboxItem{}, err
	}
	if vault {
		// The last words to an erased shopper name nobody: the row must
		// not keep the erased subject id.
		subject = ""
	}
	return OutboxItem{Ref: ref, Kind: "whatsapp", Subject: subject, VaultSealed: vault, Sealed: sealed}, nil
}

// enqueueReply seals a reply into the outbox at once.
func (s *Service) enqueueReply(ctx context.Context, subject, store, to string, r Reply, vault bool) error {
	item, err := s.sealReply(ctx, subject, store, to, r, vault)
	if err != nil || item.Sealed == nil {
		return err
	}
	_, err = s.Store.Enqueue(ctx, item)
	return err
}

// SendToShopper enqueues a reply to a shopper outside a conversation turn
// (status updates, relayed partner messages).
func (s *Service) SendToShopper(ctx context.Context, subject, store string, r Reply) error {
	row, err := s.Store.GetSubject(ctx, subject)
	if err != nil {
		return err
	}
	if row.Erased {
		return broker.ErrNotFound
	}
	ident, err := s.identity(ctx, row)
	if err != nil {
		return err
	}
	r = s.Conv.languages().Localize(langOr(row.Lang), r)
	return s.enqueueReply(ctx, subject, store, ident.Address(), r, false)
}

// actions performs the conversation's effects within the turn's transaction.
type actions struct {
	s       *Service
	subject string
	store   string
	erased  bool
	// The turn's shopper, event and identity, and the consent, language
	// and notice version last stored (what a change is recorded against).
	sh                *Shopper
	in                Inbound
	ident             Identity
	prev              broker.Consent
	prevLang, prevSHA string
	// extra are messages to others than the shopper (a minor's parent).
	extra []OutboxItem
}

func (a *actions) Products(ctx context.Context) ([]Product, error) { return a.s.products(ctx) }

// catalogTTL bounds how stale the catalog message may be; stock is checked
// again, authoritatively, when an order reserves it.
const catalogTTL = 2 * time.Second

type catalogCache struct {
	mu       sync.Mutex
	products []Product
	at       time.Time
}

// products returns the catalog, cached briefly: every "Hi" shows it.
func (s *Service) products(ctx context.Context) ([]Product, error) {
	c := &s.catalog
	c.mu.Lock()
	if time.Since(c.at) < catalogTTL && c.products != nil {
		p := c.products
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := s.Store.Products(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.products, c.at = p, time.Now()
	c.mu.Unlock()
	return p, nil
}

func (a *actions) ProductsBySKU(ctx context.Context, skus []string) (map[string]Product, error) {
	return a.s.Store.ProductsBySKU(ctx, skus)
}

func (a *actions) SetConsent(ctx context.Context, c broker.Consent) error {
	// a.prev is the consent last stored, loaded with the turn: what a
	// withdrawal is told against, without reading the subject again.
	prev := a.prev
	if a.s.Consents != nil && a.sh != nil {
		if err := a.saveConsent(ctx, c); err != nil {
			return err
		}
		return a.s.notifyWithdrawal(ctx, a.subject, prev, c)
	}
	if err := a.s.Store.SetConsent(ctx, a.subject, c); err != nil {
		return err
	}
	a.prev = c
	if err := a.s.notifyWithdrawal(ctx, a.subject, prev, c); err != nil {
		return err
	}
	return a.s.Releaser.Audit().Append(ctx, audit.Entry{Time: time.Now(), DecisionID: broker.NewID("dec"),
		Actor: "shopper:chat", Action: "consent", Purpose: consentPurposes(c),
		Subject: a.s.Releaser.Pseudonyms().Audit(a.subject), Outcome: audit.OutcomeDone,
		Reason: "consent recorded", PolicyRevision: a.s.Releaser.Policy().Revision()})
}

func consentPurposes(c broker.Consent) string {
	out := ""
	add := func(ok bool, p string) {
		if ok {
			if out != "" {
				out += ","
			}
			out += p
		}
	}
	add(c.Notice, "notice")
	add(c.Marketing, "marketing")
	add(c.Analytics, "analytics")
	if out == "" {
		out = "none"
	}
	return out
}

func (a *actions) sealOrder(ctx context.Context, o *Order) ([]byte, error) {
	b, _ := json.Marshal(o.Private())
	return a.s.Sealer.Seal(ctx, o.Subject, broker.Binding{Table: "orders", Column: "sealed", RowID: o.ID}, b)
}

func (a *actions) CreateOrder(ctx context.Context, o *Order) error {
	qty := map[string]int{}
	for _, l := range o.Lines {
		qty[l.SKU] += l.Quantity
	}
	if err := a.s.Store.ReserveStock(ctx, qty); err != nil {
		return err
	}
	sealed, err := a.sealOrder(ctx, o)
	if err != nil {
		return err
	}
	return a.s.Store.CreateOrder(ctx, OrderRow{Order: *o, Sealed: sealed})
}

func (a *actions) OrderByReference(ctx context.Context, ref string) (*Order, error) {
	row, err := a.s.Store.OrderByReference(ctx, ref)
	if err != nil {
		return nil, err
	}
	if row.Subject != a.subject || row.Erased {
		return nil, broker.ErrNotFound
	}
	if err := a.s.OpenOrder(ctx, &row); err != nil {
		return nil, err
	}
	return &row.Order, nil
}

// OpenOrder unseals an order's private part.
func (s *Service) OpenOrder(ctx context.Context, row *OrderRow) error {
	if row.Erased || row.Sealed == nil {
		return broker.ErrNotFound
	}
	b, err := s.Sealer.Open(ctx, row.Subject, broker.Binding{Table: "orders", Column: "sealed", RowID: row.ID}, row.Sealed)
	if err != nil {
		return err
	}
	var p OrderPrivate
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	row.SetPrivate(p)
	return nil
}

func (a *actions) OrderPaid(ctx context.Context, o *Order, p Payment) error {
	return a.s.placeOrder(ctx, o)
}

func (a *actions) CancelOrder(ctx context.Context, o *Order, reason string) error {
	return a.s.cancelOrder(ctx, o, broker.Party{ID: "chat", Kind: broker.KindShopper}, reason)
}

func (a *actions) DataSummary(ctx context.Context) (string, error) {
	if a.s.Summary == nil {
		return "", errors.New("no summary service")
	}
	return a.s.Summary(ctx, a.subject)
}

func (a *actions) Erase(ctx context.Context) error {
	if err := a.s.Eraser(ctx, a.subject, broker.Party{ID: "chat", Kind: broker.KindShopper}, EraseRequest); err != nil {
		return err
	}
	a.erased = true
	return nil
}

// placeOrder marks a paid order placed, assigns its retailer and, when the
// retailer takes webhooks, releases the order to it through the pipeline.
func (s *Service) placeOrder(ctx context.Context, o *Order) error {
	var retailer broker.Partner
	var err error
	if o.RetailerID != "" {
		// Routed (SPEC §9): the store that accepted the offer.
		retailer, err = s.Partners.GetPartner(ctx, o.RetailerID)
	} else {
		retailer, err = s.Partners.RetailerForStore(ctx, o.Store)
	}
	if err != nil && !broker.IsNotFound(err) {
		return err
	}
	o.Status, o.PaymentStatus = StatusPlaced, PaymentCaptured
	if err := s.Store.UpdateOrderStatus(ctx, o.ID, o.Status, o.PaymentStatus, nil); err != nil {
		return err
	}
	if s.Holds != nil {
		if err := s.Holds.SealInvoice(ctx, o, time.Now()); err != nil {
			return err
		}
	}
	s.inc("sieve_orders_total", "placed")
	if retailer.ID == "" {
		s.Log.Warn("order placed with no retailer to receive it")
		return nil
	}
	o.RetailerID = retailer.ID
	if err := s.Store.SetOrderRetailer(ctx, o.ID, retailer.ID); err != nil {
		return err
	}
	return s.pushOrder(ctx, retailer, o, "order.placed")
}

// PartnerParty is the party a partner acts as.
func PartnerParty(p broker.Partner) broker.Party {
	return broker.PartyOf(p, p.Scopes, StoreJurisdiction)
}

// pushOrder releases the order view to a partner's webhook, if it has one.
func (s *Service) pushOrder(ctx context.Context, p broker.Partner, o *Order, event string) error {
	if p.WebhookURL == "" || p.Disabled {
		return nil
	}
	row, err := s.Store.GetSubject(ctx, o.Subject)
	if err != nil {
		return err
	}
	fields := OrderFieldsFor(p)
	if event == "order.cancelled" {
		fields = []string{"order.id", "order.status", "customer.ref"}
	}
	d, err := s.Releaser.Release(ctx, broker.Request{Party: PartnerParty(p), Purpose: broker.PurposeOrderFulfilment,
		Action: "webhook " + event, Subject: o.Subject, Resource: "order:" + o.ID, State: o.Status,
		Consent: row.Consent, Restricted: row.Restricted, Jurisdiction: ShopperJurisdiction(row), Fields: fields, Record: o.Record()})
	if err != nil {
		return err
	}
	if d.Outcome == audit.OutcomeDenied {
		return nil
	}
	if ref, ok := d.Released["customer.ref"].(string); ok {
		if err := s.Store.RememberPartnerRef(ctx, p.ID, ref, o.Subject); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(map[string]any{"type": event, "id": broker.NewID("evt"), "created_at": time.Now().UTC(),
		"data": NewRetailerView(o.ID, d)})
	ref := broker.NewID("msg")
	payload := append([]byte(event+"\n"), body...)
	// A cancellation carries no personal data (order id, status, the
	// partner's own pseudonym), and is often caused by the shopper's
	// erasure, which shreds their key and kills what it sealed in the
	// outbox: it is sealed under the vault so that the retailer still
	// learns that the order is off.
	vault := event == "order.cancelled"
	var sealed []byte
	if vault {
		sealed, err = s.Vault.SealSecret(ctx, "outbox:"+ref, payload)
	} else {
		sealed, err = s.Sealer.Seal(ctx, o.Subject, broker.Binding{Table: "outbox", Column: "sealed", RowID: ref}, payload)
	}
	if err != nil {
		return err
	}
	_, err = s.Store.Enqueue(ctx, OutboxItem{Ref: ref, Kind: "partner", Subject: o.Subject, Partner: p.ID,
		VaultSealed: vault, Sealed: sealed})
	return err
}

// cancelOrder cancels an order, releases its stock and tells the retailer.
func (s *Service) cancelOrder(ctx context.Context, o *Order, by broker.Party, reason string) error {
	prev := o.Status
	o.Status = StatusCancelled
	if err := s.Store.UpdateOrderStatus(ctx, o.ID, StatusCancelled, o.PaymentStatus, nil); err != nil {
		return err
	}
	qty := map[string]int{}
	for _, l := range o.Lines {
		qty[l.SKU] += l.Quantity
	}
	if err := s.Store.ReleaseStock(ctx, qty); err != nil {
		return err
	}
	s.inc("sieve_orders_total", "cancelled")
	if prev == StatusRouting {
		if m, ok := s.market(); ok {
			if err := m.WithdrawOffers(ctx, o.ID); err != nil {
				return err
			}
		}
	}
	if prev == StatusPendingPayment || prev == StatusRouting || o.RetailerID == "" || by.ID == o.RetailerID {
		return nil
	}
	p, err := s.Partners.GetPartner(ctx, o.RetailerID)
	if err != nil {
		return err
	}
	return s.pushOrder(ctx, p, o, "order.cancelled")
}

// RunSender delivers the outbox until ctx ends, in senderLanes lanes that
// run concurrently: a lane waits for its slowest send before claiming
// more, and the lanes keep the others busy meanwhile.
func (s *Service) RunSender(ctx context.Context) error {
	s.init()
	wake := make([]chan struct{}, senderLanes)
	var wg sync.WaitGroup
	for k := range wake {
		wake[k] = make(chan struct{}, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runSenderLane(ctx, OutboxLane{Index: k, Of: senderLanes}, wake[k])
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wakeSender:
			for _, w := range wake {
				select {
				case w <- struct{}{}:
				default:
				}
			}
		}
	}
}

// senderLanes is how many outbox lanes one process sends at once.
const senderLanes = 4

func (s *Service) runSenderLane(ctx context.Context, lane OutboxLane, wake <-chan struct{}) {
	for {
		n, err := s.sendDue(ctx, lane)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("outbox sender", "err", err)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Outbox retry policy: exponential backoff from 1 s, capped at 10 min; a
// message is given up after maxAttempts.
const (
	maxAttempts = 15
	outboxLease = 60 * time.Second
)

// Backoff returns the delay before attempt n+1.
func Backoff(attempts int, retryAfter time.Duration) time.Duration {
	d := time.Second << min(attempts, 10)
	if d > 10*time.Minute {
		d = 10 * time.Minute
	}
	return max(d, retryAfter)
}

// sendDue delivers the due outbox items of lane, concurrently across shoppers and in
// order for each one; it returns how many it attempted.
func (s *Service) sendDue(ctx context.Context, lane OutboxLane) (int, error) {
	items, err := s.Store.ClaimOutbox(ctx, 64, outboxLease, lane)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	// UPDATE … RETURNING has no order: restore creation order so that each
	// shopper's messages go out in the order the conversation wrote them.
	slices.SortFunc(items, func(a, b OutboxItem) int { return cmp.Compare(a.ID, b.ID) })
	bySubject := map[string][]OutboxItem{}
	var keys []string
	for _, it := range items {
		k := it.Subject + "|" + it.Partner
		if _, ok := bySubject[k]; !ok {
			keys = append(keys, k)
		}
		bySubject[k] = append(bySubject[k], it)
	}
	// One read for every shopper's window and erasure state, and one write
	// for the "sent" statuses, instead of one each per message. The sent
	// mark itself stays per message, written as soon as the send returns:
	// delaying it would widen what a crash could send twice.
	var subjects []string
	for _, it := range items {
		if it.Subject != "" && !it.VaultSealed && !slices.Contains(subjects, it.Subject) {
			subjects = append(subjects, it.Subject)
		}
	}
	r := &sendRound{}
	if len(subjects) > 0 {
		if r.windows, err = s.Store.SubjectWindows(ctx, subjects); err != nil {
			return 0, err
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func(list []OutboxItem) {
			defer wg.Done()
			defer func() { <-sem }()
			for _, it := range list {
				s.deliver(ctx, it, r)
			}
		}(bySubject[k])
	}
	wg.Wait()
	if len(r.statuses) > 0 {
		if err := s.Store.ApplyMessageStatuses(ctx, r.statuses); err != nil {
			s.Log.Warn("outbox: record sent statuses", "err", err)
		}
	}
	return len(items), nil
}

// sendRound is what one SendDue round shares between its senders.
type sendRound struct {
	windows  map[string]Window // by subject, read once per round
	mu       sync.Mutex
	statuses []MessageStatus // "sent", written once per round
}

func (s *Service) deliver(ctx context.Context, it OutboxItem, r *sendRound) {
	var providerID string
	err := s.deliverOne(ctx, it, r, &providerID)
	// The wamid holds the phone number: only its keyed hash is stored, and
	// none at all for the last words to an erased shopper (vault-sealed),
	// whose every provider id is gone.
	if it.VaultSealed || it.Subject == "" {
		providerID = ""
	}
	providerID = s.providerKey(it.Subject, providerID)
	var de *DeliveryError
	switch {
	case err == nil:
		if e := s.markSent(ctx, it.ID, providerID); e != nil {
			s.Log.Warn("outbox: mark sent", "err", e)
		}
		if providerID != "" {
			r.mu.Lock()
			r.statuses = append(r.statuses, MessageStatus{ProviderID: providerID, Subject: it.Subject, Status: "sent"})
			r.mu.Unlock()
		}
		s.inc("sieve_outbox_total", it.Kind, "sent")
	case errors.As(err, &de) && de.Permanent, it.Attempts >= maxAttempts:
		reason := "gave up after retries: " + errText(err)
		if de != nil && de.Permanent {
			reason = de.Reason
		}
		if e := s.Store.OutboxDead(ctx, it.ID, reason); e != nil {
			s.Log.Warn("outbox: mark dead", "err", e)
		}
		s.inc("sieve_outbox_total", it.Kind, "dead")
		s.Log.Warn("outbox item given up", "kind", it.Kind, "id", it.ID, "reason", reason)
	default:
		var after time.Duration
		if de != nil {
			after = de.RetryAfter
		}
		next := time.Now().Add(Backoff(it.Attempts, after))
		if e := s.Store.OutboxRetry(ctx, it.ID, next, errText(err)); e != nil {
			s.Log.Warn("outbox: schedule retry", "err", e)
		}
		s.inc("sieve_outbox_total", it.Kind, "retry")
	}
}

// markSent records a delivered item. The message is already out: were the
// record dropped because the database is briefly unreachable, the lease
// would run out and the item be sent a second time. So an unavailable
// database is waited for, within half the lease (the send itself took at
// most its client timeout of it).
func (s *Service) markSent(ctx context.Context, id int64, providerID string) error {
	give := time.Now().Add(outboxLease / 2)
	wait := 100 * time.Millisecond
	for {
		err := s.Store.OutboxSent(ctx, id, providerID)
		if err == nil || broker.ErrorCode(err) != broker.EUnavailable || time.Now().Add(wait).After(give) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func errText(err error) string {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Reason
	}
	var be *broker.Error
	if errors.As(err, &be) {
		return be.Code + ": " + be.Message
	}
	return "transient error"
}

func (s *Service) deliverOne(ctx context.Context, it OutboxItem, r *sendRound, providerID *string) error {
	var b []byte
	var err error
	var lastInbound time.Time
	if it.VaultSealed {
		b, err = s.Vault.OpenSecret(ctx, "outbox:"+it.Ref, it.Sealed)
	} else {
		if it.Subject != "" {
			w, ok := r.windows[it.Subject]
			if !ok || w.Erased {
				return &DeliveryError{Permanent: true, Reason: "subject erased"}
			}
			lastInbound = w.LastInbound
		}
		b, err = s.Sealer.Open(ctx, it.Subject, broker.Binding{Table: "outbox", Column: "sealed", RowID: it.Ref}, it.Sealed)
	}
	if broker.IsNotFound(err) {
		return &DeliveryError{Permanent: true, Reason: "subject erased"}
	}
	if err != nil {
		return err
	}
	switch it.Kind {
	case "whatsapp":
		var m outMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return &DeliveryError{Permanent: true, Reason: "corrupt outbox payload"}
		}
		if !it.VaultSealed && time.Since(lastInbound) > 24*time.Hour {
			switch {
			case m.Reply.Template == "":
				return &DeliveryError{Permanent: true, Reason: "outside the 24-hour customer service window"}
			case m.Reply.Kind != "template":
				// A template already (a minor's parent's approval request)
				// keeps its quick replies; anything else becomes its template.
				m.Reply = Reply{Kind: "template", Template: m.Reply.Template, Body: m.Reply.Body, Status: m.Reply.Status,
					Lang: m.Reply.Lang}
			}
		}
		id, err := s.Sender.SendMessage(ctx, m.Store, m.To, m.Reply)
		if de := (*DeliveryError)(nil); err != nil && m.Reply.Fallback != nil && errors.As(err, &de) && de.Permanent {
			// The message cannot be shown: its plain twin goes instead.
			s.inc("sieve_outbox_fallbacks_total")
			id, err = s.Sender.SendMessage(ctx, m.Store, m.To, *m.Reply.Fallback)
		}
		*providerID = id
		return err
	case "partner":
		p, err := s.Partners.GetPartner(ctx, it.Partner)
		if err != nil {
			return &DeliveryError{Permanent: true, Reason: "partner not found"}
		}
		if p.Disabled || p.WebhookURL == "" {
			return &DeliveryError{Permanent: true, Reason: "partner disabled or without webhook"}
		}
		event, body, ok := cutLine(b)
		if !ok {
			return &DeliveryError{Permanent: true, Reason: "corrupt outbox payload"}
		}
		return s.Hooks.Deliver(ctx, p, event, body)
	}
	return &DeliveryError{Permanent: true, Reason: fmt.Sprintf("unknown outbox kind %q", it.Kind)}
}

func cutLine(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

func (s *Service) now() time.Time { return time.Now() }
