package commerce

import (
	"context"
	"log/slog"
	"sync"
	"time"

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
// the outbox, and the partner-facing order operations. New builds it with
// its desks; its fields are not changed once it runs (Metrics aside, set
// before RunWorkers).
type Service struct {
	// Ports are the stores the service reads and writes.
	Ports
	Clients
	Metrics Metrics
	// The desks New wires in: notices tells a shopper's recipients about
	// erasures, withdrawals and corrections (SPEC §5.12), nil sends none;
	// holds keeps invoices through an erasure for their legal minimum, nil
	// shreds every key; desk takes complaints and nominees nominations,
	// nil refuses them.
	notices  *Notices
	holds    *Holds
	desk     *Desk
	nominees *Nominees
	// OfferTTL is how long a candidate store has to take an offer
	// (BROKER_OFFER_TTL); 0 means DefaultOfferTTL.
	OfferTTL time.Duration

	// rights runs the shopper's rights asked for in the chat (erase,
	// "my data", export); set by New.
	rights *Rights

	wakeWorker  chan struct{}
	wakeSender  chan struct{}
	ready       *readyQueue
	subjectIDs  sync.Map     // blind index (string) -> cachedSubject
	refs        refSet       // (partner, customer_ref) pairs already recorded
	catalogMemo catalogCache // the catalog, re-read when it changes
	stores      storesCache  // the marketplace's routing stores
	once        sync.Once
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
	s.subjectIDs.Range(func(k, v any) bool {
		if v.(cachedSubject).id == subject {
			s.subjectIDs.Delete(k)
		}
		return true
	})
	s.Sealer.Forget(subject)
}

func (s *Service) now() time.Time { return time.Now() }

// record appends an audit entry through the broker's Recorder (the only
// builder of audit entries).
func (s *Service) record(ctx context.Context, ev broker.Event) error {
	_, err := s.Releaser.Recorder().Record(ctx, ev)
	return err
}
