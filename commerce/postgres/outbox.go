package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// Outbox is the shop's outbox: the durable messages to send, to shoppers
// and to partners, their sent marks (group-committed outside a
// transaction), the delivery statuses WhatsApp reports for them, and the
// shoppers' windows the sender checks.
type Outbox struct {
	*base

	// The group committers of OutboxSent and ApplyMessageStatuses, made
	// on first use.
	groupsOnce sync.Once
	groupsV    *outboxCommits
}

var _ commerce.OutboxStore = (*Outbox)(nil)

// Enqueue adds a message to the outbox.
func (db *Outbox) Enqueue(ctx context.Context, it commerce.OutboxItem) (int64, error) {
	var id int64
	err := db.q(ctx).QueryRow(ctx, `INSERT INTO outbox (ref, kind, subject_id, partner_id, vault_sealed, sealed)
		VALUES ($1, $2, nullif($3, ''), nullif($4, ''), $5, $6) RETURNING id`,
		it.Ref, it.Kind, it.Subject, it.Partner, it.VaultSealed, it.Sealed).Scan(&id)
	return id, Translate(err)
}

// sqlEnqueueMany adds outbox items in slice order (SaveTurns): WITH
// ORDINALITY keeps their ids in the order the conversation wrote them.
const sqlEnqueueMany = `INSERT INTO outbox (ref, kind, subject_id, partner_id, vault_sealed, sealed)
	SELECT r, k, nullif(s, ''), nullif(p, ''), v, b
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bytea[])
		WITH ORDINALITY AS t(r, k, s, p, v, b, n) ORDER BY n`

// ClaimOutbox leases due items: they are not offered again until the lease
// ends, so several senders (processes) never send one item at once.
//
// A lane is chosen by hashtext of "subject|partner" (the pair whose order
// the sender keeps), masked to be non-negative.
func (db *Outbox) ClaimOutbox(ctx context.Context, limit int, lease time.Duration, lane commerce.OutboxLane) ([]commerce.OutboxItem, error) {
	of, index := max(lane.Of, 1), lane.Index
	if index < 0 || index >= of {
		return nil, broker.Errorf(broker.EInvalid, "outbox lane %d of %d", index, of)
	}
	rows, err := db.q(ctx).Query(ctx, `UPDATE outbox SET next_attempt_at = now() + $2::interval, attempts = attempts + 1
		WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()
			AND ($3 = 1 OR (hashtext(coalesce(subject_id, '') || '|' || coalesce(partner_id, '')) & 2147483647) % $3 = $4)
			ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, ref, kind, coalesce(subject_id, ''), coalesce(partner_id, ''), vault_sealed, sealed, attempts, created_at`,
		limit, lease, of, index)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.OutboxItem, error) {
		var it commerce.OutboxItem
		err := r.Scan(&it.ID, &it.Ref, &it.Kind, &it.Subject, &it.Partner, &it.VaultSealed, &it.Sealed, &it.Attempts, &it.CreatedAt)
		return it, err
	})
	if err != nil {
		return nil, Translate(err)
	}
	return out, nil
}

// OutboxRetry schedules another attempt.
func (db *Outbox) OutboxRetry(ctx context.Context, id int64, at time.Time, reason string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1`, id, at, reason)
	return Translate(err)
}

// OutboxDead gives up on an item, recording why.
func (db *Outbox) OutboxDead(ctx context.Context, id int64, reason string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE outbox SET status = 'dead', last_error = $2,
		sealed = CASE WHEN vault_sealed THEN NULL ELSE sealed END WHERE id = $1`, id, reason)
	return Translate(err)
}

// ApplyMessageStatus records a delivery status, never moving backwards:
// sent < delivered < read, and failed is final.
func (db *Outbox) ApplyMessageStatus(ctx context.Context, providerID, subject, status string, errCode int) error {
	return applyStatuses(ctx, db.pg.Bookkeeping(ctx),
		[]commerce.MessageStatus{{ProviderID: providerID, Subject: subject, Status: status, ErrCode: errCode}})
}

// sqlApplyStatuses upserts in provider_id order: concurrent batches that
// share messages then lock their rows in the same order and cannot
// deadlock. Statuses of an erased shopper (a send in flight during the
// erasure, a stale subject cache) are dropped: erasure removed every
// provider id of theirs and none may come back.
const sqlApplyStatuses = `INSERT INTO message_status AS m (provider_id, subject_id, status, error_code)
	SELECT p, nullif(s, ''), st, nullif(c, 0) FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS t(p, s, st, c)
	WHERE NOT (coalesce(t.s, '') = ANY (ARRAY(SELECT id FROM subjects WHERE id = ANY($2::text[]) AND erased_at IS NOT NULL)))
	ORDER BY p
	ON CONFLICT (provider_id) DO UPDATE SET status = EXCLUDED.status, error_code = EXCLUDED.error_code, updated_at = EXCLUDED.updated_at
	WHERE m.status <> 'failed' AND (EXCLUDED.status = 'failed' OR
		(CASE EXCLUDED.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 4 ELSE 0 END) >
		(CASE m.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 4 ELSE 0 END))`

// ApplyMessageStatuses records delivery statuses with one statement. Outside
// a transaction they are group-committed with those of concurrent callers
// (webhook requests carry few statuses each, and they are most of the
// traffic); either way they are durable when it returns.
func (db *Outbox) ApplyMessageStatuses(ctx context.Context, sts []commerce.MessageStatus) error {
	if len(sts) == 0 {
		return nil
	}
	if _, ok := bpg.TxFrom(ctx); !ok {
		_, err := db.groups().statuses.Do(ctx, sts, "message status write")
		return err
	}
	return applyStatuses(ctx, db.q(ctx), sts)
}

func (db *Outbox) writeStatusBatch(reqs [][]commerce.MessageStatus) ([]struct{}, error) {
	all := slices.Concat(reqs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := applyStatuses(ctx, db.pool, all); err != nil {
		return nil, err
	}
	return make([]struct{}, len(reqs)), nil
}

// applyStatuses writes statuses with one statement. Several statuses of one
// message are folded to the highest first: one statement may not update a
// row twice.
func applyStatuses(ctx context.Context, q bpg.Querier, sts []commerce.MessageStatus) error {
	best := make(map[string]commerce.MessageStatus, len(sts))
	for _, st := range sts {
		cur, ok := best[st.ProviderID]
		if st.ProviderID != "" && (!ok || commerce.StatusRank(st.Status) > commerce.StatusRank(cur.Status)) {
			best[st.ProviderID] = st
		}
	}
	if len(best) == 0 {
		return nil
	}
	// The statement orders the rows itself (see sqlApplyStatuses).
	ids, subs, states := make([]string, 0, len(best)), make([]string, 0, len(best)), make([]string, 0, len(best))
	codes := make([]int32, 0, len(best))
	for id, st := range best {
		ids, subs, states = append(ids, id), append(subs, st.Subject), append(states, st.Status)
		codes = append(codes, int32(st.ErrCode))
	}
	_, err := q.Exec(ctx, sqlApplyStatuses, ids, subs, states, codes)
	return Translate(err)
}

// SubjectWindows returns the window of each existing shopper among ids;
// absent shoppers are left out of the map.
func (db *Outbox) SubjectWindows(ctx context.Context, ids []string) (map[string]commerce.Window, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id, coalesce(last_inbound_at, 'epoch'), erased_at IS NOT NULL
		FROM subjects WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, Translate(err)
	}
	out := make(map[string]commerce.Window, len(ids))
	var id string
	var w commerce.Window
	_, err = pgx.ForEachRow(rows, []any{&id, &w.LastInbound, &w.Erased}, func() error {
		out[id] = w
		return nil
	})
	return out, Translate(err)
}

// outboxCommits are the outbox's group committers.
type outboxCommits struct {
	sent     *bpg.GroupCommit[sentMark, struct{}]
	statuses *bpg.GroupCommit[[]commerce.MessageStatus, struct{}]
}

func (db *Outbox) groups() *outboxCommits {
	db.groupsOnce.Do(func() { db.groupsV = db.newGroupCommits() })
	return db.groupsV
}

func (db *Outbox) newGroupCommits() *outboxCommits {
	return &outboxCommits{
		sent: &bpg.GroupCommit[sentMark, struct{}]{
			MaxFlushers: 4, MaxBatch: 1000,
			Size:  func(sentMark) int { return 1 },
			Write: db.writeSentBatch,
			Wait:  10 * time.Second,
		},
		statuses: &bpg.GroupCommit[[]commerce.MessageStatus, struct{}]{
			MaxFlushers: 4, MaxBatch: 2000,
			Size:  func(sts []commerce.MessageStatus) int { return len(sts) },
			Write: db.writeStatusBatch,
			Wait:  10 * time.Second,
		},
	}
}

// sentMark is one outbox item marked sent.
type sentMark struct {
	id         int64
	providerID string
}

// An item whose shopper was erased while it was being sent (subject_id
// cleared) keeps no provider id.
const sqlOutboxSent = `UPDATE outbox SET status = 'sent', sent_at = now(),
	provider_id = CASE WHEN outbox.subject_id IS NULL THEN NULL ELSE nullif(t.pid, '') END,
	sealed = CASE WHEN vault_sealed THEN NULL ELSE sealed END
	FROM unnest($1::bigint[], $2::text[]) AS t(id, pid) WHERE outbox.id = t.id`

// OutboxSent marks an item sent; vault-sealed items lose their payload.
// Outside a transaction the mark is group-committed with those of
// concurrent senders; either way it is durable when it returns, so what a
// crash can send twice stays what it was with a statement per mark.
func (db *Outbox) OutboxSent(ctx context.Context, id int64, providerID string) error {
	if _, ok := bpg.TxFrom(ctx); !ok {
		_, err := db.groups().sent.Do(ctx, sentMark{id, providerID}, "outbox sent mark")
		return err
	}
	_, err := db.q(ctx).Exec(ctx, sqlOutboxSent, []int64{id}, []string{providerID})
	return Translate(err)
}

func (db *Outbox) writeSentBatch(marks []sentMark) ([]struct{}, error) {
	ids := make([]int64, len(marks))
	pids := make([]string, len(marks))
	for i, m := range marks {
		ids[i], pids[i] = m.id, m.providerID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.pool.Exec(ctx, sqlOutboxSent, ids, pids); err != nil {
		return nil, Translate(err)
	}
	return make([]struct{}, len(marks)), nil
}
