package commerce

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// InboxItem is one inbound event stored before the webhook is acknowledged.
type InboxItem struct {
	ID       int64
	DedupKey string // "m:<wamid>", "s:<id>:<status>", "p:<id>:<status>:<txn status>"
	Subject  string
	Kind     string // message | status | payment
	Store    string
	Sealed   []byte // the Inbound event (and identity hints) sealed under the subject's key
	Received time.Time
	Attempts int
}

// SubjectRow is a shopper as stored: identifiers only as a blind index and
// sealed; consent in plaintext so policy input needs no unsealing.
type SubjectRow struct {
	ID              string
	Consent         broker.Consent
	SealedIdentity  []byte
	LastInbound     time.Time
	LastInteraction time.Time
	CreatedAt       time.Time
	Erased          bool
	// Lang is the shopper's language; NoticeSHA the notice version they
	// accepted ("" for none, or the unversioned one before migration 0020).
	Lang      string
	NoticeSHA string
	// Restricted: the shopper paused processing ("pause my data", GDPR
	// Art. 18); only legal_obligation releases pass.
	Restricted bool
	// Jurisdiction is the shopper's country from the phone's calling code
	// (ISO 3166-1 alpha-2); "" when unknown (ShopperJurisdiction applies
	// the store's).
	Jurisdiction string
}

// IdentifierIndex is the blind index of one of a shopper's identifiers.
// NewSubject is a shopper created with everything it starts with, in one
// statement: its identifiers, its wrapped data key, its sealed identity
// and its jurisdiction ("" when unknown).
type NewSubject struct {
	ID             string
	Identifiers    []IdentifierIndex
	Key            broker.WrappedKey
	SealedIdentity []byte
	Jurisdiction   string
}

// sealedSubjectCreator is implemented by subject stores that create a shopper with
// its key and sealed identity in one statement (PostgreSQL does):
// EConflict, and nothing written, when one of the identifiers is taken.
// Optional, like identityJurisdictionStore: without it a new shopper takes
// the transaction of CreateSubject, the key and the identity.
type sealedSubjectCreator interface {
	CreateSealedSubject(ctx context.Context, s NewSubject) error
}

type IdentifierIndex struct {
	Kind  string // IDPhone | IDBSUID | IDParent | IDOpaque
	Index []byte
}

// The kinds of identifier a shopper is indexed by (SPEC §10 "Identity").
const (
	IDPhone  = "wa"     // the WhatsApp id: phone digits
	IDBSUID  = "bsuid"  // the business-scoped user id
	IDParent = "parent" // the parent BSUID, across the business portfolio
	IDOpaque = "opaque" // an id of neither form, kept as given
)

// Identity is the sealed identity of a shopper.
type Identity struct {
	WaID  string `json:"wa_id,omitempty"` // phone number in digits, when WhatsApp gave one
	BSUID string `json:"bsuid,omitempty"` // business-scoped user id
	// Parent is the parent BSUID; it is never released nor sent to.
	Parent string `json:"parent,omitempty"`
	Name   string `json:"name,omitempty"` // WhatsApp profile name
}

// Address returns where messages to the shopper go: "+<digits>" for a
// phone number, or the BSUID.
func (id Identity) Address() string {
	if id.WaID != "" {
		return "+" + id.WaID
	}
	return id.BSUID
}

// OrderRow is an order as stored, with its private part sealed.
type OrderRow struct {
	Order
	Sealed []byte
	Erased bool
	// LogisticsID is the logistics partner the order is dispatched to; ""
	// for none. Only that partner sees it, and only out for delivery.
	LogisticsID string
}

// OutboxItem is a durable message to send: to a shopper over WhatsApp or
// to a partner's webhook.
type OutboxItem struct {
	ID          int64
	Ref         string // msg_…: the sealed payload is bound to it
	Kind        string // whatsapp | partner
	Subject     string
	Partner     string
	VaultSealed bool
	Sealed      []byte
	Attempts    int
	CreatedAt   time.Time
}

// OrderFilter selects a retailer's orders.
type OrderFilter struct {
	Retailer string
	Status   string
	Since    time.Time
	Cursor   string
	Limit    int
}

// The shopping service persists through the narrow ports below, one per
// job, each a field of Service (openfga's storage: a consumer takes only
// the backend it uses). Every method joins the transaction carried by ctx
// (see TxRunner).

// TxRunner runs work in one database transaction carried by the context
// it passes, and a part of it in a savepoint of that transaction.
type TxRunner interface {
	broker.Transactor
	// InSavepoint runs fn in a savepoint of ctx's transaction.
	InSavepoint(ctx context.Context, fn func(ctx context.Context) error) error
}

// SubjectStore keeps the shoppers: their rows, the blind indexes of their
// identifiers, their consent flags and the partners' references to them.
type SubjectStore interface {
	// EnsureSubject returns the shopper with the blind index, creating it
	// with newID if absent.
	EnsureSubject(ctx context.Context, index []byte, newID string) (s SubjectRow, created bool, err error)
	GetSubject(ctx context.Context, id string) (SubjectRow, error)
	SubjectByIndex(ctx context.Context, index []byte) (SubjectRow, error)
	// CreateSubject creates a shopper with all its identifiers at once;
	// EConflict, writing nothing, when one of them is taken.
	CreateSubject(ctx context.Context, id string, ids []IdentifierIndex) (SubjectRow, error)
	// SubjectsByIndexes maps each known index (as a string) to its shopper.
	SubjectsByIndexes(ctx context.Context, indexes [][]byte) (map[string]string, error)
	// LinkIdentifiers points identifiers that point nowhere to the shopper
	// (unless erased); it returns how many it added.
	LinkIdentifiers(ctx context.Context, subject string, ids []IdentifierIndex) (int, error)
	// UnlinkIdentifiers removes those of the indexes that point to subject.
	UnlinkIdentifiers(ctx context.Context, subject string, indexes [][]byte) (int, error)
	SetSubjectIdentity(ctx context.Context, id string, sealed []byte) error
	SetConsent(ctx context.Context, id string, c broker.Consent) error
	// SetRestricted pauses (on) or resumes the processing of the
	// shopper's data ("pause my data", GDPR Art. 18).
	SetRestricted(ctx context.Context, id string, on bool) error
	RememberPartnerRef(ctx context.Context, partner, ref, subject string) error
	SubjectOfPartnerRef(ctx context.Context, partner, ref string) (string, error)
}

// InboxStore keeps the inbound events stored before a webhook is
// acknowledged, until a worker has processed them.
type InboxStore interface {
	// InsertInbox stores items, skipping those whose dedup key is known;
	// it returns how many were new.
	InsertInbox(ctx context.Context, items []InboxItem) (int, error)
	// PendingSubjects lists shoppers with unprocessed inbox items.
	PendingSubjects(ctx context.Context, limit int) ([]string, error)
	PendingInbox(ctx context.Context, subject string, limit int) ([]InboxItem, error)
	MarkInbox(ctx context.Context, id int64, errText string) error
	// MarkInboxMany marks several events processed with one statement.
	MarkInboxMany(ctx context.Context, ids []int64, errText string) error
}

// OrderStore keeps the shop's orders.
type OrderStore interface {
	CreateOrder(ctx context.Context, o OrderRow) error
	GetOrder(ctx context.Context, id string) (OrderRow, error)
	// GetOrderWithSubject reads an order and its shopper together.
	GetOrderWithSubject(ctx context.Context, id string) (OrderRow, SubjectRow, error)
	OrderByReference(ctx context.Context, ref string) (OrderRow, error)
	UpdateOrderStatus(ctx context.Context, id, status, payment string, sealed []byte) error
	ListOrders(ctx context.Context, f OrderFilter) ([]OrderRow, string, error)
	OrdersOfSubject(ctx context.Context, subject string) ([]OrderRow, error)
	SetOrderRetailer(ctx context.Context, id, retailer string) error
	// SetOrderLogistics dispatches an order to a logistics partner.
	SetOrderLogistics(ctx context.Context, id, logistics string) error
	// BindDefaultCourier dispatches an order not yet dispatched to its
	// retailer's default courier, if it has one.
	BindDefaultCourier(ctx context.Context, id string) error
}

// OutboxStore keeps the durable messages to send, to shoppers and to
// partners, and the delivery statuses WhatsApp reports for them.
type OutboxStore interface {
	Enqueue(ctx context.Context, it OutboxItem) (int64, error)
	// ClaimOutbox leases up to limit due items of lane for lease; others
	// skip them.
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration, lane OutboxLane) ([]OutboxItem, error)
	OutboxSent(ctx context.Context, id int64, providerID string) error
	OutboxRetry(ctx context.Context, id int64, at time.Time, reason string) error
	OutboxDead(ctx context.Context, id int64, reason string) error
	// SubjectWindows returns the window of each existing shopper among ids.
	SubjectWindows(ctx context.Context, ids []string) (map[string]Window, error)
	// ApplyMessageStatuses records delivery statuses monotonically, durably,
	// with one statement.
	ApplyMessageStatuses(ctx context.Context, sts []MessageStatus) error
	// ApplyMessageStatus records a delivery status monotonically.
	ApplyMessageStatus(ctx context.Context, providerID, subject, status string, errCode int) error
}

// MessageStatus is a delivery status of a message the broker sent.
type MessageStatus struct {
	ProviderID string // the wamid
	Subject    string
	Status     string // sent | delivered | read | played | failed
	ErrCode    int
}

// StatusRank orders delivery statuses; failed is final and ranks highest.
func StatusRank(s string) int {
	switch s {
	case "sent":
		return 1
	case "delivered":
		return 2
	case "read":
		return 3
	case "played":
		return 4
	case "failed":
		return 9
	}
	return 0
}

// TurnState is what a worker reads to run a shopper's turn.
type TurnState struct {
	Locked  bool // the shopper's processing lock was taken
	Items   []InboxItem
	Found   bool // the subject row exists
	Subject SubjectRow
	Session []byte // sealed; nil when the shopper has none yet
}

// TurnWrite is everything a turn writes, in one go.
type TurnWrite struct {
	Subject     string
	LastInbound time.Time    // zero: no inbound message in the turn
	Out         []OutboxItem // in order
	Done        []int64      // inbox items processed
	Store       string       // with Session: the business number of the session
	State       string       // with Session: the conversation state, in plaintext for queries
	Session     []byte       // sealed session; nil: not saved (the shopper was erased)
}

// TurnStore reads and writes the turns of a group of shoppers with one
// round trip each, whatever the group's size.
type TurnStore interface {
	// LoadTurns returns a TurnState per subject (distinct), in order:
	// Locked is false for a shopper another worker holds.
	LoadTurns(ctx context.Context, subjects []string, limit int) ([]TurnState, error)
	SaveTurns(ctx context.Context, ws []TurnWrite) error
}

// Window is what the outbox needs of a shopper: the last inbound message
// (the 24-hour customer service window) and whether they were erased.
type Window struct {
	LastInbound time.Time
	Erased      bool
}

// OutboxLane is a share of the outbox: the items whose (shopper, partner)
// hashes to Index modulo Of. Every item of one shopper and partner is in
// one lane, so lanes can be sent concurrently without reordering anybody's
// messages. Of <= 1 is the whole outbox.
type OutboxLane struct {
	Index, Of int
}
