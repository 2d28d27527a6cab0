package commerce

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Ports are the service's own stores; Service and Stores embed them.
type Ports struct {
	// Tx opens the transactions the stores below join.
	Tx TxRunner
	// Catalog and Stock are the products and their stock.
	Catalog Catalog
	Stock   Inventory
	// Subjects, Inbox, Turns, Orders and Outbox keep the shoppers, the
	// inbound events, the workers' turns, the orders and the messages to
	// send.
	Subjects SubjectStore
	Inbox    InboxStore
	Turns    TurnStore
	Orders   OrderStore
	Outbox   OutboxStore
	// Offers keeps the marketplace's offers and per-store stock; nil:
	// there is no marketplace and the retailer serves every order.
	Offers MarketStore
	// Consents keeps consent artefacts, languages and guardians; nil keeps
	// the consent flags alone (inner-ring tests).
	Consents ConsentStore
}

// Stores are the shop's ports, one per noun: the service's and its desks'
// (commerce/postgres.Stores provides every one of them).
type Stores struct {
	Ports
	Notices   NoticeStore
	Holds     HoldStore
	Rights    RightsStore
	Desk      GrievanceStore
	Nominees  NominationStore
	Breaches  BreachStore
	Warnings  WarningStore
	Retention RetentionStore
}

// Deps is what the shop is built from: its stores, the broker's core, the
// clients of the outside world and the settings of its desks.
type Deps struct {
	Stores Stores
	Clients

	// OfferTTL is how long a candidate store has to take an offer
	// (DefaultOfferTTL when zero); NoticeDeadline how long a recipient has
	// to acknowledge a notice (DefaultNoticeDeadline when zero).
	OfferTTL       time.Duration
	NoticeDeadline time.Duration
	// Held names the data-key categories an erasure keeps, each for its
	// legal minimum (an invoice's); nil holds none.
	Held map[string]time.Duration
	// RetentionBases names each policy data retention category's legal
	// basis in words, for the officers' list of holds.
	RetentionBases map[string]string
	// Contact is the grievance officer's published contact; AckWithin and
	// ResolveWithin the desk's service levels (defaults when zero).
	Contact                  string
	AckWithin, ResolveWithin time.Duration
	// PhoneNumberID is the WhatsApp number shoppers wrote to, for breach
	// notices and erasure warnings of shoppers with no store of record.
	PhoneNumberID string
	// VerifyLog verifies the audit log and returns its size; a breach is
	// opened over a verified log only.
	VerifyLog func(ctx context.Context) (uint64, error)
	// Categorize maps a released field to its data category;
	// CategoryNames lists the categories, for the breach workbench.
	Categorize    func(field string) (string, bool)
	CategoryNames []string
	// RetentionPeriods are the policy data's periods per category;
	// ErasureWarning is how long before an erasure the shopper is warned.
	RetentionPeriods map[string]time.Duration
	ErasureWarning   time.Duration
}

// Clients are the broker's core and the outside world's clients the
// service uses; Deps and Service share them.
type Clients struct {
	// Sealer seals records under a shopper's data keys (a category sealer,
	// so an erasure can hold some keys and shred others); Vault opens and
	// shreds them.
	Sealer   broker.Sealer
	Vault    broker.Vault
	Releaser *broker.Releaser
	Partners broker.PartnerStore
	Sender   Sender
	Hooks    PartnerHooks
	// Payments confirms every capture with the provider; nil: the checked
	// webhook alone.
	Payments PaymentLookup
	Conv     *Conversation
	Log      *slog.Logger
}

// Shop is the shop assembled: the core service and the desks around it,
// each wired to the others once, here, rather than by whoever builds it.
type Shop struct {
	Service   *Service
	Market    *Market
	Orders    *Orders
	Notices   *Notices
	Holds     *Holds
	Rights    *Rights
	Desk      *Desk
	Nominees  *Nominees
	Breaches  *Workbench
	Warnings  *Warnings
	Retention *Retention
}

// New builds the shop from d. The service and its desks refer to one
// another (an erasure is asked for in the chat and run by Rights, which
// tells the recipients through Notices; the release pipeline asks Notices
// whether a partner has overdue notices), so they are built together.
func New(d Deps) (*Shop, error) {
	st := d.Stores
	if st.Tx == nil || st.Subjects == nil || st.Inbox == nil || st.Orders == nil || st.Outbox == nil || st.Rights == nil {
		return nil, errors.New("commerce: the transaction runner and the subject, inbox, order, outbox and rights stores are required")
	}
	if d.Releaser == nil || d.Sealer == nil || d.Vault == nil {
		return nil, errors.New("commerce: a releaser, a sealer and a vault are required")
	}
	s := &Service{Ports: st.Ports, Clients: d.Clients, OfferTTL: d.OfferTTL}
	shop := &Shop{Service: s, Market: &Market{Service: s}, Orders: &Orders{Service: s}}
	shop.Rights = &Rights{Service: s, Store: st.Rights}
	s.rights = shop.Rights
	if st.Notices != nil {
		shop.Notices = &Notices{Service: s, Store: st.Notices, Deadline: d.NoticeDeadline}
		s.notices = shop.Notices
		d.Releaser.SetGate(shop.Notices.Gate)
	}
	if st.Holds != nil {
		shop.Holds = &Holds{Service: s, Store: st.Holds, Held: maps.Clone(d.Held), Bases: maps.Clone(d.RetentionBases)}
		s.holds = shop.Holds
	}
	if st.Desk != nil {
		shop.Desk = &Desk{Service: s, Store: st.Desk, Contact: d.Contact, AckWithin: d.AckWithin, ResolveWithin: d.ResolveWithin}
		s.desk = shop.Desk
	}
	if st.Nominees != nil {
		shop.Nominees = &Nominees{Service: s, Rights: shop.Rights, Store: st.Nominees}
		s.nominees = shop.Nominees
	}
	if st.Breaches != nil {
		shop.Breaches = &Workbench{Service: s, Store: st.Breaches, Contact: d.Contact, PhoneNumberID: d.PhoneNumberID,
			Verify: d.VerifyLog, Categorize: d.Categorize, CategoryNames: d.CategoryNames}
	}
	if st.Retention != nil {
		r, err := NewRetention(st.Retention, shop.Rights.Erase, d.RetentionPeriods, 0)
		if err != nil {
			return nil, err
		}
		shop.Retention = r
		if st.Warnings != nil {
			shop.Warnings = &Warnings{Service: s, Store: st.Warnings, Lead: d.ErasureWarning,
				Period: r.ShopperPeriod(), DefaultStore: d.PhoneNumberID}
			r.SetWarnings(shop.Warnings)
		}
	}
	return shop, nil
}
