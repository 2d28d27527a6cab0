package commerce

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The recipient notices (SPEC §5.12): the events a partner that received a
// shopper's data gets when that shopper exercises a right.
const (
	NoticeErased     = "subject.erased"        // the shopper was erased: delete what you hold
	NoticeWithdrawn  = "consent.withdrawn"     // an optional consent was withdrawn: stop those purposes
	NoticeRestricted = "processing.restricted" // processing is paused (GDPR Art. 18): process nothing
	NoticeCorrected  = "subject.corrected"     // the data you hold was corrected: fetch it again
)

// NoticeTypes lists the recipient notice types.
var NoticeTypes = []string{NoticeErased, NoticeWithdrawn, NoticeRestricted, NoticeCorrected}

// ReasonUnacknowledgedNotice is the denial reason of every release to a
// partner holding a notice past its deadline without acknowledging it.
const ReasonUnacknowledgedNotice = "unacknowledged_notice"

// Audit codes of the notice lifecycle (fixed lists, SPEC §5.4).
const (
	PurposeRecipientNotice = broker.PurposeRecipientNotice // the purpose of the notice entries
	NoticeReasonSent       = "notice_sent"
	NoticeReasonAcked      = "acknowledged"
	NoticeReasonAckSigned  = "acknowledged_signed"
	NoticeReasonOverdue    = "deadline_missed"
)

// DefaultNoticeDeadline is how long a partner has to acknowledge a notice
// when none is configured (BROKER_NOTICE_DEADLINE).
const DefaultNoticeDeadline = 72 * time.Hour

// Notice is one recipient notice to one partner, as stored.
type Notice struct {
	Seq        int64
	ID         string // evt_…
	Partner    string
	Type       string
	Subject    string // the audit pseudonym
	Body       []byte // the event as sent
	OutboxRef  string // the webhook's outbox item, "" without a webhook
	CreatedAt  time.Time
	Deadline   time.Time
	NotifiedAt *time.Time // webhook delivered or first fetched
	AckedAt    *time.Time
	Signed     bool // the acknowledgement carries a verified signature
	OverdueAt  *time.Time
}

// NoticeEvent is the body of a recipient notice, as delivered by webhook
// and served by GET /v1/events.
type NoticeEvent struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	CreatedAt   time.Time `json:"created_at"`
	CustomerRef string    `json:"customer_ref"` // the partner's own pairwise pseudonym
	OrderIDs    []string  `json:"order_ids"`    // the orders of the shopper it received
	Deadline    time.Time `json:"deadline"`     // acknowledge (POST /v1/acks) by then
	// Purposes names the withdrawn purposes of a consent.withdrawn.
	Purposes []string `json:"purposes,omitempty"`
}

// NoticeStore keeps notices and acknowledgements.
type NoticeStore interface {
	InsertNotice(ctx context.Context, n Notice) error
	// PartnerNotices returns the partner's notices after seq, oldest
	// first, marking those never served as fetched at now.
	PartnerNotices(ctx context.Context, partner string, after int64, limit int, now time.Time) ([]Notice, error)
	GetNotice(ctx context.Context, partner, id string) (Notice, error)
	// AckNotice records an acknowledgement; false when already acknowledged.
	AckNotice(ctx context.Context, partner, id string, at time.Time, body, signature []byte) (bool, error)
	NoticeAck(ctx context.Context, id string) (body, signature []byte, err error)
	// MarkOverdue marks and returns the notices newly past their deadline.
	MarkOverdue(ctx context.Context, now time.Time) ([]Notice, error)
	OverduePartners(ctx context.Context, now time.Time) ([]string, error)
	SubjectNotices(ctx context.Context, pseudonym string) ([]Notice, error)
	OpenNotices(ctx context.Context, limit int) ([]Notice, error)
	PartnerAckKey(ctx context.Context, partner string) ([]byte, error)
	SetPartnerAckKey(ctx context.Context, partner string, key []byte) error
	// SubjectReleases returns the releases about a shopper (by audit
	// pseudonym) to partners, integrated or pending.
	SubjectReleases(ctx context.Context, pseudonym string) ([]audit.Entry, error)
	// ResealOrder replaces an order's sealed part (a correction), leaving
	// its status and times alone.
	ResealOrder(ctx context.Context, id string, sealed []byte) error
}

// Notices sends recipient notices, takes acknowledgements and keeps the
// per-partner overdue flag the release pipeline checks (Gate).
type Notices struct {
	Service  *Service
	Store    NoticeStore
	Deadline time.Duration    // DefaultNoticeDeadline when zero
	Now      func() time.Time // time.Now when nil; tests inject a clock

	overdue atomic.Pointer[map[string]bool]
	mu      sync.Mutex // serialises Refresh
}

func (n *Notices) now() time.Time {
	if n.Now != nil {
		return n.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (n *Notices) deadline() time.Duration {
	if n.Deadline > 0 {
		return n.Deadline
	}
	return DefaultNoticeDeadline
}

// Open returns up to limit notices not yet acknowledged, oldest first (the
// officers' list; a notice names its shopper by audit pseudonym only).
func (n *Notices) Open(ctx context.Context, limit int) ([]Notice, error) {
	return n.Store.OpenNotices(ctx, limit)
}

// Recipient is a partner that received a shopper's data.
type Recipient struct {
	Partner string   // client id
	Orders  []string // order ids it received, sorted
	Fields  []string // field names it received, sorted
}

// Recipients returns every partner that received the shopper's data, as
// the audit log records it.
func (n *Notices) Recipients(ctx context.Context, subject string) ([]Recipient, error) {
	entries, err := n.Store.SubjectReleases(ctx, n.Service.Releaser.Pseudonyms().Audit(subject))
	if err != nil {
		return nil, err
	}
	by := map[string]*Recipient{}
	var order []string
	for _, e := range entries {
		if e.Outcome != audit.OutcomeReleased && e.Outcome != audit.OutcomePartial {
			continue
		}
		kind, id, ok := strings.Cut(e.Actor, ":")
		if !ok || !broker.ValidPartnerKind(broker.PartyKind(kind)) {
			continue
		}
		r := by[id]
		if r == nil {
			r = &Recipient{Partner: id}
			by[id] = r
			order = append(order, id)
		}
		if o, ok := strings.CutPrefix(e.Resource, "order:"); ok && orderIDRe.MatchString(o) && !slices.Contains(r.Orders, o) {
			r.Orders = append(r.Orders, o)
		}
		for _, f := range e.Released {
			if !slices.Contains(r.Fields, f) {
				r.Fields = append(r.Fields, f)
			}
		}
	}
	out := make([]Recipient, 0, len(order))
	for _, id := range order {
		r := by[id]
		slices.Sort(r.Orders)
		slices.Sort(r.Fields)
		if r.Orders == nil {
			r.Orders = []string{}
		}
		out = append(out, *r)
	}
	return out, nil
}

// Notify sends a notice of type typ about subject to every recipient of
// their data that only accepts (nil: all of them), in the caller's
// transaction: the notice is stored (GET /v1/events serves it), queued to
// the partner's webhook in the durable outbox (sealed under the vault, so
// that the shopper's erasure does not kill it), and audited. It returns
// how many partners were told. purposes is set for consent.withdrawn.
func (n *Notices) Notify(ctx context.Context, subject, typ string, only func(Recipient) bool, purposes []string) (int, error) {
	if !slices.Contains(NoticeTypes, typ) {
		return 0, broker.Errorf(broker.EInternal, "unknown notice type")
	}
	rs, err := n.Recipients(ctx, subject)
	if err != nil {
		return 0, err
	}
	s := n.Service
	pseudonym := s.Releaser.Pseudonyms().Audit(subject)
	sent := 0
	for _, r := range rs {
		if only != nil && !only(r) {
			continue
		}
		p, err := s.Partners.GetPartner(ctx, r.Partner)
		if broker.IsNotFound(err) {
			continue
		}
		if err != nil {
			return sent, err
		}
		now := n.now()
		ev := NoticeEvent{ID: broker.NewID("evt"), Type: typ, CreatedAt: now,
			CustomerRef: s.Releaser.Pseudonyms().Partner(p.ID, subject), OrderIDs: r.Orders,
			Deadline: now.Add(n.deadline()), Purposes: purposes}
		body, _ := json.Marshal(ev)
		nt := Notice{ID: ev.ID, Partner: p.ID, Type: typ, Subject: pseudonym, Body: body, CreatedAt: now, Deadline: ev.Deadline}
		if p.WebhookURL != "" && !p.Disabled {
			nt.OutboxRef = broker.NewID("msg")
			sealed, err := s.Vault.SealSecret(ctx, "outbox:"+nt.OutboxRef, append([]byte(typ+"\n"), body...))
			if err != nil {
				return sent, err
			}
			if _, err := s.Outbox.Enqueue(ctx, OutboxItem{Ref: nt.OutboxRef, Kind: OutboxPartner, Partner: p.ID,
				VaultSealed: true, Sealed: sealed}); err != nil {
				return sent, err
			}
		}
		if err := n.Store.InsertNotice(ctx, nt); err != nil {
			return sent, err
		}
		if err := s.record(ctx, broker.Event{Time: now, Actor: PartnerParty(p).Actor(), Action: "notice " + typ, Purpose: PurposeRecipientNotice, SubjectPseudonym: pseudonym,
			Resource: "notice:" + ev.ID, Outcome: audit.OutcomeDone, Reason: NoticeReasonSent}); err != nil {
			return sent, broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
		}
		sent++
		s.inc("sieve_notices_total", typ)
	}
	return sent, nil
}

// NotifyRestricted tells every recipient that the shopper paused
// processing (GDPR Art. 18, `pause my data`). It is the sender the pause
// feature calls, in its own transaction.
func (n *Notices) NotifyRestricted(ctx context.Context, subject string) (int, error) {
	return n.Notify(ctx, subject, NoticeRestricted, nil, nil)
}

// CorrectedAddressFields are the fields that carry a shopper's address,
// whole or structured (AddressFields): the recipients of any of them get
// subject.corrected when it is corrected.
var CorrectedAddressFields = append([]string{"delivery.address", "delivery.postal_code", "delivery.location"}, AddressFields...)

// ReceivedAny returns a Recipient filter: the partners that received at
// least one of fields.
func ReceivedAny(fields []string) func(Recipient) bool {
	return func(r Recipient) bool {
		return slices.ContainsFunc(r.Fields, func(f string) bool { return slices.Contains(fields, f) })
	}
}

// Ack is an acknowledgement as a partner posts it to /v1/acks.
type Ack struct {
	EventID   string `json:"event_id"`
	Status    string `json:"status"`
	Signature string `json:"signature,omitempty"` // base64 Ed25519 over AckBytes
}

// AckStatusDone is the one acknowledgement status: the partner did what
// the notice asked (deleted, stopped, corrected).
const AckStatusDone = "done"

// AckBytes are the exact bytes a partner signs for an acknowledgement:
// the canonical body without the signature,
//
//	{"event_id":"evt_…","status":"done"}
//
// with no whitespace, keys in this order (the id's alphabet needs no
// escaping).
func AckBytes(eventID, status string) []byte {
	return []byte(`{"event_id":"` + eventID + `","status":"` + status + `"}`)
}

var eventIDRe = regexp.MustCompile(`^evt_[a-z2-7]{26}$`)

// AckResult is the answer to an acknowledgement.
type AckResult struct {
	EventID        string    `json:"event_id"`
	Status         string    `json:"status"`
	AcknowledgedAt time.Time `json:"acknowledged_at"`
	Signed         bool      `json:"signed"`
	DecisionID     string    `json:"decision_id,omitempty"`
}

// Acknowledge records partner p's acknowledgement of one of its notices.
// With an ack key registered, the signature is required and must verify
// (Ed25519 over AckBytes); it is kept as evidence. A repeated
// acknowledgement answers with the first one. The partner's overdue flag
// is refreshed at once.
func (n *Notices) Acknowledge(ctx context.Context, p broker.Partner, a Ack) (AckResult, error) {
	if !eventIDRe.MatchString(a.EventID) {
		return AckResult{}, broker.Errorf(broker.EInvalid, "event_id must be an evt_… id")
	}
	if a.Status != AckStatusDone {
		return AckResult{}, broker.Errorf(broker.EInvalid, "status must be %q", AckStatusDone)
	}
	s := n.Service
	var res AckResult
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		nt, err := n.Store.GetNotice(ctx, p.ID, a.EventID)
		if broker.IsNotFound(err) {
			return broker.Errorf(broker.ENotFound, "no such event")
		}
		if err != nil {
			return err
		}
		if nt.AckedAt != nil {
			res = AckResult{EventID: nt.ID, Status: AckStatusDone, AcknowledgedAt: *nt.AckedAt, Signed: nt.Signed}
			return nil
		}
		key, err := n.Store.PartnerAckKey(ctx, p.ID)
		if err != nil {
			return err
		}
		body := AckBytes(a.EventID, a.Status)
		var sig []byte
		switch {
		case key == nil && a.Signature != "":
			return broker.Errorf(broker.EInvalid, "signature given, but no ack key is registered for this partner")
		case key != nil && a.Signature == "":
			return broker.Errorf(broker.EInvalid, "this partner registered an ack key: the acknowledgement must be signed")
		case key != nil:
			sig, err = base64.StdEncoding.DecodeString(a.Signature)
			if err != nil || len(sig) != ed25519.SignatureSize || len(key) != ed25519.PublicKeySize ||
				!ed25519.Verify(ed25519.PublicKey(key), body, sig) {
				return broker.Errorf(broker.EInvalid, "signature does not verify (Ed25519 over %s, base64)", body)
			}
		}
		now := n.now()
		ok, err := n.Store.AckNotice(ctx, p.ID, a.EventID, now, body, sig)
		if err != nil {
			return err
		}
		if !ok {
			return broker.Errorf(broker.EConflict, "acknowledged concurrently; ask again")
		}
		reason := NoticeReasonAcked
		if sig != nil {
			reason = NoticeReasonAckSigned
		}
		dec := broker.NewID("dec")
		if err := s.record(ctx, broker.Event{Time: now, DecisionID: dec, Actor: PartnerParty(p).Actor(),
			Action: "ack " + nt.Type, Purpose: PurposeRecipientNotice, SubjectPseudonym: nt.Subject, Resource: "notice:" + nt.ID,
			Outcome: audit.OutcomeDone, Reason: reason}); err != nil {
			return broker.Wrap(broker.EUnavailable, err, "audit log unavailable; nothing was recorded")
		}
		res = AckResult{EventID: nt.ID, Status: AckStatusDone, AcknowledgedAt: now, Signed: sig != nil, DecisionID: dec}
		return nil
	})
	if err != nil {
		return AckResult{}, err
	}
	if err := n.Refresh(ctx); err != nil {
		s.Log.Warn("notices: refresh after an acknowledgement", "err", err)
	}
	return res, nil
}

// Events returns partner p's notices after cursor (oldest first) and the
// next cursor ("" when there are no more).
func (n *Notices) Events(ctx context.Context, p broker.Partner, cursor string, limit int) ([]json.RawMessage, string, error) {
	var after int64
	if cursor != "" {
		v, ok := parseCursor(cursor)
		if !ok {
			return nil, "", broker.Errorf(broker.EInvalid, "invalid cursor")
		}
		after = v
	}
	list, err := n.Store.PartnerNotices(ctx, p.ID, after, limit+1, n.now())
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = formatCursor(list[limit-1].Seq)
	}
	out := make([]json.RawMessage, len(list))
	for i, nt := range list {
		out[i] = json.RawMessage(nt.Body)
	}
	return out, next, nil
}

func parseCursor(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0 && formatCursor(v) == s
}

func formatCursor(v int64) string { return strconv.FormatInt(v, 10) }

// Gate is the release pipeline's check (broker.Releaser.SetGate): a
// partner holding an overdue notice gets every release denied with
// ReasonUnacknowledgedNotice. It reads an in-memory set (Refresh keeps it),
// so it costs a map lookup per release.
func (n *Notices) Gate(p broker.Party) string {
	if m := n.overdue.Load(); m != nil && len(*m) > 0 && (*m)[p.ID] {
		return ReasonUnacknowledgedNotice
	}
	return ""
}

// Refresh audits every notice newly past its deadline (once, whichever
// process finds it) and reloads the set of partners the Gate denies.
func (n *Notices) Refresh(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.Service
	now := n.now()
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		late, err := n.Store.MarkOverdue(ctx, now)
		if err != nil {
			return err
		}
		for _, nt := range late {
			actor := "partner:" + nt.Partner
			if p, err := s.Partners.GetPartner(ctx, nt.Partner); err == nil {
				actor = PartnerParty(p).Actor()
			}
			if err := s.record(ctx, broker.Event{Time: now, Actor: actor,
				Action: "notice overdue", Purpose: PurposeRecipientNotice, SubjectPseudonym: nt.Subject, Resource: "notice:" + nt.ID,
				Outcome: audit.OutcomeFailed, Reason: NoticeReasonOverdue}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ids, err := n.Store.OverduePartners(ctx, now)
	if err != nil {
		return err
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	n.overdue.Store(&m)
	return nil
}

// Run refreshes the overdue set every interval until ctx ends.
func (n *Notices) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.Refresh(ctx); err != nil && ctx.Err() == nil {
			n.Service.Log.Warn("notices: refresh", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RecipientStatus is what a shopper's disclosures show per recipient
// about the notices it was sent.
type RecipientStatus struct {
	Type           string     `json:"type"`
	EventID        string     `json:"event_id"`
	NotifiedAt     *time.Time `json:"notified_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	Deadline       time.Time  `json:"deadline"`
}

// SubjectStatus returns, per partner id, the notices sent about subject.
func (n *Notices) SubjectStatus(ctx context.Context, subject string) (map[string][]RecipientStatus, error) {
	list, err := n.Store.SubjectNotices(ctx, n.Service.Releaser.Pseudonyms().Audit(subject))
	if err != nil {
		return nil, err
	}
	out := map[string][]RecipientStatus{}
	for _, nt := range list {
		out[nt.Partner] = append(out[nt.Partner], RecipientStatus{Type: nt.Type, EventID: nt.ID,
			NotifiedAt: nt.NotifiedAt, AcknowledgedAt: nt.AckedAt, Deadline: nt.Deadline})
	}
	return out, nil
}

// notifyWithdrawal sends consent.withdrawn to every recipient when an
// optional consent went from given to withdrawn (`stop`).
func (s *Service) notifyWithdrawal(ctx context.Context, subject string, before, after broker.Consent) error {
	var withdrawn []string
	if before.Marketing && !after.Marketing {
		withdrawn = append(withdrawn, string(broker.PurposeMarketing))
	}
	if before.Analytics && !after.Analytics {
		withdrawn = append(withdrawn, string(broker.PurposeAnalytics))
	}
	if before.Notice && !after.Notice {
		withdrawn = append(withdrawn, "notice")
	}
	if len(withdrawn) == 0 || s.notices == nil {
		return nil
	}
	_, err := s.notices.Notify(ctx, subject, NoticeWithdrawn, nil, withdrawn)
	return err
}

// noticeLines renders a recipient's notices for "my data": notified at,
// acknowledged at.
func noticeLines(list []RecipientStatus) string {
	var b strings.Builder
	for _, n := range list {
		b.WriteString("  told of your " + strings.ReplaceAll(strings.TrimPrefix(n.Type, "subject."), ".", " ") + ": ")
		if n.NotifiedAt != nil {
			b.WriteString("notified " + n.NotifiedAt.In(ist).Format("2 Jan 2006 15:04"))
		} else {
			b.WriteString("not yet notified")
		}
		if n.AcknowledgedAt != nil {
			b.WriteString(", acknowledged " + n.AcknowledgedAt.In(ist).Format("2 Jan 2006 15:04"))
		} else {
			b.WriteString(", not yet acknowledged")
		}
		b.WriteString("\n")
	}
	return b.String()
}
