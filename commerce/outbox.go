package commerce

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// outMessage is a sealed outbox payload for WhatsApp.
type outMessage struct {
	Store string `json:"store"`
	To    string `json:"to"`
	Reply Reply  `json:"reply"`
	// InboundAt is when the shopper's message this answers was sent (zero
	// for messages that answer none). The customer service window is
	// counted from the later of it and the shopper's last inbound message
	// as the sender reads it: on Citus the sender may read the shopper's
	// row before the turn's update of it shows on that row's worker (a
	// two-phase commit is not a distributed snapshot), and a reply to a
	// message just received must not be refused for it.
	InboundAt time.Time `json:"inbound_at,omitzero"`
}

// sealReply seals a reply as an outbox item: under the shopper's key, or
// under the vault when the shopper has just been erased (the last words).
func (s *Service) sealReply(ctx context.Context, subject, store, to string, r Reply, vault bool) (OutboxItem, error) {
	return s.sealAnswer(ctx, subject, store, to, r, vault, time.Time{})
}

// sealAnswer is sealReply for a reply to the shopper's message sent at
// inbound (see outMessage.InboundAt).
func (s *Service) sealAnswer(ctx context.Context, subject, store, to string, r Reply, vault bool, inbound time.Time) (OutboxItem, error) {
	if to == "" {
		return OutboxItem{}, nil
	}
	ref := broker.NewID("msg")
	b, _ := json.Marshal(outMessage{Store: store, To: to, Reply: r, InboundAt: inbound})
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
	_, err = s.Outbox.Enqueue(ctx, item)
	return err
}

// SendToShopper enqueues a reply to a shopper outside a conversation turn
// (status updates, relayed partner messages).
func (s *Service) SendToShopper(ctx context.Context, subject, store string, r Reply) error {
	row, err := s.Subjects.GetSubject(ctx, subject)
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

// sender is the Service's outbox sender: one goroutine per lane claims
// due messages, delivers them to the Send API or a partner's webhook, and
// records the outcome. A view of the Service.
type sender struct{ *Service }

// RunSender delivers the outbox until ctx ends, in senderLanes lanes that
// run concurrently: a lane waits for its slowest send before claiming
// more, and the lanes keep the others busy meanwhile.
func (s *Service) RunSender(ctx context.Context) error { return sender{s}.run(ctx) }

// run is RunSender.
func (s sender) run(ctx context.Context) error {
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

func (s sender) runSenderLane(ctx context.Context, lane OutboxLane, wake <-chan struct{}) {
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
func (s sender) sendDue(ctx context.Context, lane OutboxLane) (int, error) {
	items, err := s.Outbox.ClaimOutbox(ctx, 64, outboxLease, lane)
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
		if r.windows, err = s.Outbox.SubjectWindows(ctx, subjects); err != nil {
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
		if err := s.Outbox.ApplyMessageStatuses(ctx, r.statuses); err != nil {
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

func (s sender) deliver(ctx context.Context, it OutboxItem, r *sendRound) {
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
		if e := s.Outbox.OutboxDead(ctx, it.ID, reason); e != nil {
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
		if e := s.Outbox.OutboxRetry(ctx, it.ID, next, errText(err)); e != nil {
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
func (s sender) markSent(ctx context.Context, id int64, providerID string) error {
	give := time.Now().Add(outboxLease / 2)
	wait := 100 * time.Millisecond
	for {
		err := s.Outbox.OutboxSent(ctx, id, providerID)
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

func (s sender) deliverOne(ctx context.Context, it OutboxItem, r *sendRound, providerID *string) error {
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
		if m.InboundAt.After(lastInbound) {
			lastInbound = m.InboundAt
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
