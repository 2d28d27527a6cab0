package faults

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker"
)

// store reads the broker's tables for the test's assertions. It never
// writes: what the tests check is what the brokers did.
type store struct {
	t    *testing.T
	pool *pgxpool.Pool
}

func openStore(t *testing.T, url string) *store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "faults-test"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &store{t: t, pool: pool}
}

func (s *store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// scalar runs a one-value query and fails the test on error.
func scalar[T any](s *store, sql string, args ...any) T {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	var v T
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// rowsOf runs a query and scans each row, by position, into a T.
func rowsOf[T any](s *store, sql string) []T {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, sql)
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// progress is how far the background work is.
type progress struct {
	InboxPending, OutboxPending, OutboxDead, AuditPending int64
	TreeSize, CheckpointSize                              int64
}

func (p progress) String() string {
	return fmt.Sprintf("inbox pending %d, outbox pending %d (dead %d), audit pending %d, tree %d, checkpoint %d",
		p.InboxPending, p.OutboxPending, p.OutboxDead, p.AuditPending, p.TreeSize, p.CheckpointSize)
}

func (s *store) progress() (progress, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var p progress
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM inbox WHERE processed_at IS NULL),
		(SELECT count(*) FROM outbox WHERE status = 'pending'),
		(SELECT count(*) FROM outbox WHERE status = 'dead'),
		(SELECT count(*) FROM audit_pending),
		(SELECT size FROM audit_tree), (SELECT checkpoint_size FROM audit_tree)`).Scan(
		&p.InboxPending, &p.OutboxPending, &p.OutboxDead, &p.AuditPending, &p.TreeSize, &p.CheckpointSize)
	return p, err
}

// waitDrained waits until every stored event is processed, every outbox
// item has left 'pending', and every audit entry is in a signed tree.
func (s *store) waitDrained(what string, timeout time.Duration) time.Duration {
	s.t.Helper()
	return waitFor(s.t, what, timeout, func() (bool, string) {
		p, err := s.progress()
		if err != nil {
			return false, err.Error()
		}
		return p.InboxPending == 0 && p.OutboxPending == 0 && p.AuditPending == 0 && p.CheckpointSize == p.TreeSize, p.String()
	})
}

// inboxRow is one stored inbound event.
type inboxRow struct {
	Kind      string
	Processed bool
	LastError string
}

// providerKeys returns how w's brokers store the provider id id of the
// shopper wa: a keyed hash of their subject id and the id (SPEC §5.8), with
// the brokers' pseudonym key. ok is false while the shopper is unknown.
func (s *store) providerKeys(w *world) func(wa, id string) (string, bool) {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.keys, "pseudonym.key"))
	if err != nil {
		s.t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		s.t.Fatal(err)
	}
	p, err := broker.NewPseudonymizer(key)
	if err != nil {
		s.t.Fatal(err)
	}
	subjects := map[string]string{}
	return func(wa, id string) (string, bool) {
		wa = strings.TrimPrefix(wa, "+")
		sub, ok := subjects[wa]
		if !ok {
			ctx, cancel := s.ctx()
			defer cancel()
			if err := s.pool.QueryRow(ctx, `SELECT subject_id FROM subject_identifiers WHERE blind_index = $1`, p.BlindIndex("wa", wa)).Scan(&sub); err != nil {
				return "", false
			}
			subjects[wa] = sub
		}
		return p.ProviderKey(sub, id), true
	}
}

// inbox returns every stored event by dedup key.
func (s *store) inbox() map[string]inboxRow {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT dedup_key, kind, processed_at IS NOT NULL, coalesce(last_error, '') FROM inbox`)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]inboxRow{}
	var key string
	var r inboxRow
	_, err = pgx.ForEachRow(rows, []any{&key, &r.Kind, &r.Processed, &r.LastError}, func() error {
		out[key] = r
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// outboxRow is one outbox item.
type outboxRow struct {
	ID          int64
	Ref, Kind   string
	Subject     string
	Status      string
	Attempts    int
	NextAttempt time.Time
	ProviderID  string
	LastError   string
}

func (s *store) outbox() []outboxRow {
	s.t.Helper()
	return rowsOf[outboxRow](s, `SELECT id, ref, kind, coalesce(subject_id, ''), status, attempts, next_attempt_at,
		coalesce(provider_id, ''), coalesce(last_error, '') FROM outbox ORDER BY id`)
}

// unrecordedSends counts the messages the Send API accepted whose id no
// outbox item records yet (by its keyed hash).
func (s *store) unrecordedSends(w *world, recs []simRecord) int {
	s.t.Helper()
	keyOf := s.providerKeys(w)
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		if k, ok := keyOf(r.To, r.MessageID); ok {
			ids = append(ids, k)
		}
	}
	have := scalar[int64](s, `SELECT count(DISTINCT provider_id) FROM outbox WHERE provider_id = ANY($1)`, ids)
	return len(ids) - int(have)
}

// orderRow is an order, without its sealed part.
type orderRow struct {
	ID, Subject, Status string
}

func (s *store) orders() []orderRow {
	s.t.Helper()
	return rowsOf[orderRow](s, `SELECT id, subject_id, status FROM orders ORDER BY id`)
}

// auditCounts returns how many times each decision id is in the log.
func (s *store) auditCounts(ids []string) map[string]int {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT decision_id, count(*) FROM audit_entries WHERE decision_id = ANY($1) GROUP BY 1`, ids)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int{}
	var id string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil }); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// ---------------------------------------------------------------------------
// Shared assertions

// some lists up to 5 items of a slice for a failure message.
func some(xs []string) string {
	slices.Sort(xs)
	if len(xs) > 5 {
		return strings.Join(xs[:5], ", ") + fmt.Sprintf(" … (%d in all)", len(xs))
	}
	return strings.Join(xs, ", ")
}

// hiOutcome summarises checkHisOnce.
type hiOutcome struct {
	Acked, Stored, Notices int
}

// checkHisOnce checks the "Hi" messages of the shoppers whose wa_id starts
// with prefix (shoppers that never consent, so each Hi must get exactly one
// privacy notice):
//   - every message a broker acknowledged with 200 is stored and processed
//     without error (nothing acknowledged is lost);
//   - every stored message is one that was sent (nothing invented);
//   - each shopper got exactly as many privacy notices as they have stored
//     Hi messages, and nothing else (each processed once, each reply sent
//     once).
//
// resent counts, per shopper, the messages checkOutboxOnce found sent again
// after a database crash.
func checkHisOnce(t *testing.T, w *world, st *store, hp *hookProxy, prefix string, resent map[string]int) hiOutcome {
	t.Helper()
	acked, fwd, inbox := hp.acked(), hp.forwarded(), st.inbox()
	// Inbox rows are keyed by a keyed hash of the shopper and "m:"+id.
	keyOf := st.providerKeys(w)
	idOf := map[string]string{}
	for id, m := range fwd {
		if k, ok := keyOf(m.From, "m:"+id); ok {
			idOf[k] = id
		}
	}
	var lost, unprocessed, failed, phantom []string
	for id, m := range acked {
		if !strings.HasPrefix(m.From, prefix) {
			continue
		}
		k, _ := keyOf(m.From, "m:"+id)
		r, ok := inbox[k]
		switch {
		case !ok:
			lost = append(lost, id)
		case !r.Processed:
			unprocessed = append(unprocessed, id)
		}
	}
	storedPer := map[string]int{}
	stored := 0
	for key, r := range inbox {
		if r.LastError != "" {
			failed = append(failed, key+" ("+r.LastError+")")
		}
		if r.Kind != "message" {
			continue
		}
		m, sent := fwd[idOf[key]]
		if !sent {
			phantom = append(phantom, key)
			continue
		}
		if strings.HasPrefix(m.From, prefix) {
			storedPer[m.From]++
			stored++
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d messages acknowledged with 200 are not in the inbox (lost): %s", len(lost), some(lost))
	}
	if len(unprocessed) > 0 {
		t.Errorf("%d acknowledged messages were never processed: %s", len(unprocessed), some(unprocessed))
	}
	if len(failed) > 0 {
		t.Errorf("%d inbox events failed processing: %s", len(failed), some(failed))
	}
	if len(phantom) > 0 {
		t.Errorf("%d inbox messages were never sent by the test: %s", len(phantom), some(phantom))
	}
	noticesPer := map[string]int{}
	notices := 0
	var other []string
	for _, r := range w.simRecords() {
		if !strings.HasPrefix(r.To, prefix) {
			continue
		}
		if !r.isPrivacyNotice() {
			other = append(other, fmt.Sprintf("%s to %s", r.Type+"/"+r.InteractiveType, r.To))
			continue
		}
		noticesPer[r.To]++
		notices++
	}
	if len(other) > 0 {
		t.Errorf("shoppers who only said Hi got %d messages other than the privacy notice: %s", len(other), some(other))
	}
	var wrong []string
	for _, who := range sortedKeys(storedPer, noticesPer) {
		if storedPer[who] != noticesPer[who]-resent[who] {
			wrong = append(wrong, fmt.Sprintf("%s: %d Hi stored, %d notices sent (%d resent after a crash)",
				who, storedPer[who], noticesPer[who], resent[who]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("each Hi must get exactly one privacy notice; %d shoppers differ: %s", len(wrong), some(wrong))
	}
	n := 0
	for _, m := range acked {
		if strings.HasPrefix(m.From, prefix) {
			n++
		}
	}
	return hiOutcome{Acked: n, Stored: stored, Notices: notices}
}

func sortedKeys(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkOutboxOnce checks that every WhatsApp outbox item was sent, and
// sent once: the fake Send API accepted exactly one message per sent item,
// and the id it returned is the one the item recorded. A message sent
// twice shows up as an accepted message that no item records.
//
// crashedAt, when set, is when PostgreSQL crashed: a message accepted
// before it whose sent mark was lost with the crash is sent again after
// the lease, as at-least-once delivery allows (the outbox's bookkeeping
// commits without waiting for the WAL flush). Those are returned per
// recipient; any other unrecorded message fails the test.
func checkOutboxOnce(t *testing.T, w *world, st *store, crashedAt time.Time) (sent int, resent map[string]int) {
	t.Helper()
	recs := w.simRecords()
	// Outbox items record the keyed hash of the shopper and the id.
	keyOf := st.providerKeys(w)
	keys := make([]string, len(recs))
	accepted := map[string]simRecord{}
	for i, r := range recs {
		keys[i], _ = keyOf(r.To, r.MessageID)
		accepted[keys[i]] = r
	}
	byProvider := map[string]int{}
	var notSent, unknown []string
	for _, o := range st.outbox() {
		if o.Kind != "whatsapp" {
			continue
		}
		if o.Status != "sent" {
			notSent = append(notSent, fmt.Sprintf("%s %s after %d attempts (%s)", o.Ref, o.Status, o.Attempts, o.LastError))
			continue
		}
		sent++
		byProvider[o.ProviderID]++
		if _, ok := accepted[o.ProviderID]; !ok {
			unknown = append(unknown, o.Ref+" → "+o.ProviderID)
		}
	}
	resent = map[string]int{}
	var twice []string
	for i, r := range recs {
		n := byProvider[keys[i]]
		if n == 0 && !crashedAt.IsZero() && r.Time.Before(crashedAt) {
			resent[r.To]++
			continue
		}
		if n != 1 {
			when := r.Time.Format("15:04:05.000")
			if !crashedAt.IsZero() {
				when = fmt.Sprintf("%+.3fs after the crash", r.Time.Sub(crashedAt).Seconds())
			}
			twice = append(twice, fmt.Sprintf("%s… to %s at %s (recorded by %d outbox items)",
				r.MessageID[:min(len(r.MessageID), 20)], r.To, when, n))
		}
	}
	if len(notSent) > 0 {
		t.Errorf("%d WhatsApp outbox items were not sent: %s", len(notSent), some(notSent))
	}
	if len(unknown) > 0 {
		t.Errorf("%d outbox items record a message id the Send API never returned: %s", len(unknown), some(unknown))
	}
	extra := 0
	for _, n := range resent {
		extra += n
	}
	if len(twice) > 0 || len(recs) != sent+extra {
		t.Errorf("the Send API accepted %d messages for %d sent outbox items (%d resent after the crash); "+
			"%d not matching one outbox item (sent twice): %s", len(recs), sent, extra, len(twice), some(twice))
	}
	return sent, resent
}

// checkOrdersOnce checks that no shopper's purchase made two orders, that
// each placed order reached the retailer's webhook exactly once with a
// valid signature, and that each delivery's decision is in the audit log.
func checkOrdersOnce(t *testing.T, st *store, hook *partnerHook) (placed int) {
	t.Helper()
	perSubject := map[string][]string{}
	placedIDs := map[string]bool{}
	for _, o := range st.orders() {
		perSubject[o.Subject] = append(perSubject[o.Subject], o.ID+" "+o.Status)
		if o.Status == "placed" {
			placedIDs[o.ID] = true
		}
	}
	for subject, list := range perSubject {
		if len(list) > 1 {
			t.Errorf("one shopper's purchase made %d orders (duplicated): %s: %v", len(list), subject, list)
		}
	}
	var decisions []string
	got := hook.delivered()
	for id := range placedIDs {
		d := got["order.placed "+id]
		if len(d) != 1 {
			t.Errorf("order %s: the retailer got %d order.placed deliveries, want exactly 1", id, len(d))
		}
	}
	for key, ds := range got {
		if _, id, _ := strings.Cut(key, " "); !placedIDs[id] && strings.HasPrefix(key, "order.placed ") {
			t.Errorf("the retailer got %s for an order that is not placed", key)
		}
		for _, d := range ds {
			if d.SigErr != nil {
				t.Errorf("%s: bad Sieve-Signature or body: %v", key, d.SigErr)
			}
			decisions = append(decisions, d.DecisionID)
		}
	}
	if len(decisions) > 0 {
		have := st.auditCounts(decisions)
		for _, id := range decisions {
			if have[id] != 1 {
				t.Errorf("decision %s released an order to the retailer but is in the audit log %d times", id, have[id])
			}
		}
	}
	return len(placedIDs)
}

// checkAuditClean checks the log is whole: nothing pending or rejected,
// one entry per decision, and `brokerctl audit verify` accepts it.
func checkAuditClean(t *testing.T, w *world, st *store) uint64 {
	t.Helper()
	size := w.auditVerify()
	n := scalar[int64](st, `SELECT count(*) FROM audit_entries`)
	distinct := scalar[int64](st, `SELECT count(DISTINCT decision_id) FROM audit_entries`)
	rejected := scalar[int64](st, `SELECT count(*) FROM audit_rejected`)
	pending := scalar[int64](st, `SELECT count(*) FROM audit_pending`)
	if uint64(n) != size || distinct != n || rejected != 0 || pending != 0 {
		t.Errorf("audit: verified size %d, %d entries (%d distinct decisions), %d rejected, %d pending",
			size, n, distinct, rejected, pending)
	}
	return size
}

// httpStatus GETs url and returns the status (0 on a network error).
func httpStatus(client *http.Client, url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
