package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// Inbox is the shop's inbox: the inbound events stored (group-committed)
// before a webhook is acknowledged, until a worker has processed them,
// and the one-time conversion of the provider ids stored in them before
// migration 0010.
type Inbox struct {
	*base

	// The group committer of InsertInbox, made on first use.
	groupsOnce sync.Once
	groupsV    *bpg.GroupCommit[[]commerce.InboxItem, int]
}

var _ commerce.InboxStore = (*Inbox)(nil)

func (db *Inbox) groups() *bpg.GroupCommit[[]commerce.InboxItem, int] {
	db.groupsOnce.Do(func() {
		db.groupsV = &bpg.GroupCommit[[]commerce.InboxItem, int]{
			MaxFlushers: 8, MaxBatch: 2000,
			Size:  func(items []commerce.InboxItem) int { return len(items) },
			Write: db.writeInboxBatch,
			Wait:  10 * time.Second,
		}
	})
	return db.groupsV
}

const sqlInsertInboxReturning = sqlInsertInbox + ` RETURNING dedup_key`

// insertInboxGrouped group-commits inbox rows with those of concurrent
// webhook requests, so an acknowledged webhook is always durable.
func (db *Inbox) insertInboxGrouped(ctx context.Context, items []commerce.InboxItem) (int, error) {
	return db.groups().Do(ctx, items, "inbox write")
}

func (db *Inbox) writeInboxBatch(reqs [][]commerce.InboxItem) ([]int, error) {
	all := slices.Concat(reqs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inserted := map[string]bool{}
	rs, err := db.pool.Query(ctx, sqlInsertInboxReturning, inboxColumns(all)...)
	if err == nil {
		for rs.Next() {
			var k string
			if err = rs.Scan(&k); err != nil {
				break
			}
			inserted[k] = true
		}
		rs.Close()
		if err == nil {
			err = rs.Err()
		}
	}
	if err != nil {
		return nil, Translate(err)
	}
	out := make([]int, len(reqs))
	for i, items := range reqs {
		for _, it := range items {
			if inserted[it.DedupKey] {
				out[i]++
			}
		}
	}
	return out, nil
}

const sqlInsertInbox = `INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
	ON CONFLICT (subject_id, dedup_key) DO NOTHING`

// InsertInbox stores inbound events, skipping known dedup keys.
//
// Outside a transaction the rows are group-committed with those of
// concurrent callers; either way they are durable when it returns.
func (db *Inbox) InsertInbox(ctx context.Context, items []commerce.InboxItem) (int, error) {
	if _, ok := bpg.TxFrom(ctx); !ok {
		return db.insertInboxGrouped(ctx, items)
	}
	tag, err := db.q(ctx).Exec(ctx, sqlInsertInbox, inboxColumns(items)...)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// PendingSubjects lists shoppers with unprocessed events, oldest first.
func (db *Inbox) PendingSubjects(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT subject_id FROM inbox WHERE processed_at IS NULL
		GROUP BY subject_id ORDER BY min(id) LIMIT $1`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, Translate(err)
}

// PendingInbox returns a shopper's unprocessed events in arrival order.
func (db *Inbox) PendingInbox(ctx context.Context, subject string, limit int) ([]commerce.InboxItem, error) {
	rows, err := db.q(ctx).Query(ctx, `SELECT id, dedup_key, subject_id, kind, store, sealed, received_at, attempts
		FROM inbox WHERE subject_id = $1 AND processed_at IS NULL ORDER BY id LIMIT $2`, subject, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.InboxItem, error) {
		var it commerce.InboxItem
		err := r.Scan(&it.ID, &it.DedupKey, &it.Subject, &it.Kind, &it.Store, &it.Sealed, &it.Received, &it.Attempts)
		return it, err
	})
	return out, Translate(err)
}

// MarkInbox marks an event processed; errText, when set, records why it
// could not be (it is then not retried).
func (db *Inbox) MarkInbox(ctx context.Context, id int64, errText string) error {
	_, err := db.q(ctx).Exec(ctx, `UPDATE inbox SET processed_at = now(), attempts = attempts + 1,
		last_error = nullif($2, '') WHERE id = $1`, id, errText)
	return Translate(err)
}

// inboxColumns turns items into the column arrays sqlInsertInbox unnests.
func inboxColumns(items []commerce.InboxItem) []any {
	n := len(items)
	keys, subs, kinds, stores := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sealed := make([][]byte, n)
	for i, it := range items {
		keys[i], subs[i], kinds[i], stores[i], sealed[i] = it.DedupKey, it.Subject, it.Kind, it.Store, it.Sealed
	}
	return []any{keys, subs, kinds, stores, sealed}
}

// MarkInboxMany marks several events processed.
func (db *Inbox) MarkInboxMany(ctx context.Context, ids []int64, errText string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.q(ctx).Exec(ctx, `UPDATE inbox SET processed_at = now(), attempts = attempts + 1,
		last_error = nullif($2, '') WHERE id = ANY($1)`, ids, errText)
	return Translate(err)
}

// ProviderIDUpgrade names the one-time conversion of provider ids stored
// in plaintext before migration 0010 (see UpgradeProviderIDs).
const ProviderIDUpgrade = "0010_provider_ids"

// SQL of the conversion. Legacy values are those without the keyed-hash
// prefix (broker.ProviderKeyPrefix).
const (
	sqlUpgradeLock        = `SELECT pg_advisory_xact_lock(hashtextextended('sieve/upgrade/' || $1, 0))`
	sqlUpgradeDone        = `SELECT EXISTS (SELECT 1 FROM app_upgrades WHERE name = $1)`
	sqlUpgradeRecord      = `INSERT INTO app_upgrades (name) VALUES ($1)`
	sqlLegacyInbox        = `SELECT id, dedup_key, subject_id, processed_at IS NULL, sealed FROM inbox WHERE dedup_key NOT LIKE 'k:%' ORDER BY id`
	sqlUpgradeInbox       = `UPDATE inbox SET dedup_key = t.k, sealed = t.s FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS t(id, k, s) WHERE inbox.id = t.id`
	sqlDropInbox          = `DELETE FROM inbox WHERE id = ANY($1)`
	sqlLegacyStatuses     = `SELECT provider_id, subject_id FROM message_status WHERE provider_id NOT LIKE 'k:%' AND subject_id IS NOT NULL`
	sqlUpgradeStatuses    = `UPDATE message_status SET provider_id = t.n FROM unnest($1::text[], $2::text[]) AS t(o, n) WHERE provider_id = t.o`
	sqlDropLegacyStatuses = `DELETE FROM message_status WHERE provider_id NOT LIKE 'k:%'`
	sqlLegacyOutbox       = `SELECT id, provider_id, subject_id FROM outbox
		WHERE provider_id NOT LIKE 'k:%' AND subject_id IS NOT NULL AND NOT vault_sealed`
	sqlUpgradeOutbox    = `UPDATE outbox SET provider_id = t.n FROM unnest($1::bigint[], $2::text[]) AS t(id, n) WHERE outbox.id = t.id`
	sqlDropLegacyOutbox = `UPDATE outbox SET provider_id = NULL WHERE provider_id NOT LIKE 'k:%'`
)

// UpgradeProviderIDs converts, once, the provider ids stored in plaintext
// before migration 0010 (inbox dedup keys, message_status and outbox
// provider ids: wamids hold the phone number) to their keyed hashes. The
// key is not in the database, so SQL cannot do it: brokerd and brokerctl
// run this after the migrations, in one transaction under an advisory
// lock, and record it in app_upgrades so that it runs once; migration 0010
// records it already when there is nothing to convert.
//
// hash is broker.Pseudonymizer.ProviderKey. The sealed payload of a pending
// inbox row is bound to its dedup key, so reseal re-binds it to the new key
// (nil: the shopper is erased, drop the row); processed rows are never
// opened again and keep theirs. It returns how many values it converted.
func (db *Inbox) UpgradeProviderIDs(ctx context.Context, hash func(subject, id string) string,
	reseal func(ctx context.Context, subject, oldKey, newKey string, sealed []byte) ([]byte, error)) (int, error) {
	var n int
	err := db.InTx(ctx, func(ctx context.Context) error {
		n = 0
		q := db.q(ctx)
		if _, err := q.Exec(ctx, sqlUpgradeLock, ProviderIDUpgrade); err != nil {
			return err
		}
		var done bool
		if err := q.QueryRow(ctx, sqlUpgradeDone, ProviderIDUpgrade).Scan(&done); err != nil || done {
			return err
		}
		type legacyRow struct {
			id           int64
			key, subject string
			pending      bool
			sealed       []byte
		}
		rows, err := q.Query(ctx, sqlLegacyInbox)
		if err != nil {
			return err
		}
		legacy, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (legacyRow, error) {
			var l legacyRow
			err := r.Scan(&l.id, &l.key, &l.subject, &l.pending, &l.sealed)
			return l, err
		})
		if err != nil {
			return err
		}
		var ids, drop []int64
		var keys []string
		var seals [][]byte
		for _, l := range legacy {
			k, s := hash(l.subject, l.key), l.sealed
			if l.pending {
				if s, err = reseal(ctx, l.subject, l.key, k, l.sealed); err != nil {
					return err
				}
				if s == nil {
					drop = append(drop, l.id)
					continue
				}
			}
			ids, keys, seals = append(ids, l.id), append(keys, k), append(seals, s)
		}
		if _, err := q.Exec(ctx, sqlUpgradeInbox, ids, keys, seals); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, sqlDropInbox, drop); err != nil {
			return err
		}
		n += len(ids)

		rows, err = q.Query(ctx, sqlLegacyStatuses)
		if err != nil {
			return err
		}
		var olds, news []string
		var old, subject string
		if _, err := pgx.ForEachRow(rows, []any{&old, &subject}, func() error {
			olds, news = append(olds, old), append(news, hash(subject, old))
			return nil
		}); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, sqlUpgradeStatuses, olds, news); err != nil {
			return err
		}
		// Statuses without a shopper can match nothing: dropped.
		if _, err := q.Exec(ctx, sqlDropLegacyStatuses); err != nil {
			return err
		}
		n += len(olds)

		rows, err = q.Query(ctx, sqlLegacyOutbox)
		if err != nil {
			return err
		}
		var oids []int64
		var id int64
		news = nil
		if _, err := pgx.ForEachRow(rows, []any{&id, &old, &subject}, func() error {
			oids, news = append(oids, id), append(news, hash(subject, old))
			return nil
		}); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, sqlUpgradeOutbox, oids, news); err != nil {
			return err
		}
		// Ids of rows without a shopper (erased, or last words) go.
		if _, err := q.Exec(ctx, sqlDropLegacyOutbox); err != nil {
			return err
		}
		n += len(oids)
		_, err = q.Exec(ctx, sqlUpgradeRecord, ProviderIDUpgrade)
		return err
	})
	return n, err
}
