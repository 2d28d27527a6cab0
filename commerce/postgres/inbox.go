package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// groupCommits are a DB handle's group committers.
type groupCommits struct {
	inbox    *bpg.GroupCommit[[]commerce.InboxItem, int]
	sent     *bpg.GroupCommit[sentMark, struct{}]
	statuses *bpg.GroupCommit[[]commerce.MessageStatus, struct{}]
}

func (db *Store) groups() *groupCommits {
	db.groupsOnce.Do(func() { db.groupsV = db.newGroupCommits() })
	return db.groupsV
}

func (db *Store) newGroupCommits() *groupCommits {
	return &groupCommits{
		inbox: &bpg.GroupCommit[[]commerce.InboxItem, int]{
			MaxFlushers: 8, MaxBatch: 2000,
			Size:  func(items []commerce.InboxItem) int { return len(items) },
			Write: db.writeInboxBatch,
			Wait:  10 * time.Second,
		},
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

const sqlInsertInboxReturning = sqlInsertInbox + ` RETURNING dedup_key`

// insertInboxGrouped group-commits inbox rows with those of concurrent
// webhook requests, so an acknowledged webhook is always durable.
func (db *Store) insertInboxGrouped(ctx context.Context, items []commerce.InboxItem) (int, error) {
	return db.groups().inbox.Do(ctx, items, "inbox write")
}

func (db *Store) writeInboxBatch(reqs [][]commerce.InboxItem) ([]int, error) {
	all := slices.Concat(reqs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inserted := map[string]bool{}
	rs, err := db.Pool.Query(ctx, sqlInsertInboxReturning, inboxColumns(all)...)
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
func (db *Store) OutboxSent(ctx context.Context, id int64, providerID string) error {
	if _, ok := bpg.TxFrom(ctx); !ok {
		_, err := db.groups().sent.Do(ctx, sentMark{id, providerID}, "outbox sent mark")
		return err
	}
	_, err := db.Q(ctx).Exec(ctx, sqlOutboxSent, []int64{id}, []string{providerID})
	return Translate(err)
}

func (db *Store) writeSentBatch(marks []sentMark) ([]struct{}, error) {
	ids := make([]int64, len(marks))
	pids := make([]string, len(marks))
	for i, m := range marks {
		ids[i], pids[i] = m.id, m.providerID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.Pool.Exec(ctx, sqlOutboxSent, ids, pids); err != nil {
		return nil, Translate(err)
	}
	return make([]struct{}, len(marks)), nil
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
func (db *Store) UpgradeProviderIDs(ctx context.Context, hash func(subject, id string) string,
	reseal func(ctx context.Context, subject, oldKey, newKey string, sealed []byte) ([]byte, error)) (int, error) {
	var n int
	err := db.InTx(ctx, func(ctx context.Context) error {
		n = 0
		q := db.Q(ctx)
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
