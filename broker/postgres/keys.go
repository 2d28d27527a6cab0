package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
)

// SubjectKeys is the store of wrapped per-shopper data keys on a DB
// (table subject_keys; broker.SubjectKeyStore), and what the Sealer asks
// of it about transactions (TxIdentity, AfterCommit). Every method joins
// the transaction carried by ctx, if any.
type SubjectKeys struct{ db *DB }

// SubjectKeys returns the data-key store on db.
func (db *DB) SubjectKeys() *SubjectKeys { return &SubjectKeys{db} }

var _ broker.SubjectKeyStore = (*SubjectKeys)(nil)

const (
	sqlGetSubjectKey = `SELECT key_id, wrapped FROM subject_keys WHERE subject_id = $1`

	// sqlInsertSubjectKey returns a row only when this call inserted it; on
	// conflict the existing key stays untouched (the first writer wins).
	sqlInsertSubjectKey = `INSERT INTO subject_keys (subject_id, key_id, wrapped)
VALUES ($1, $2, $3)
ON CONFLICT (subject_id) DO NOTHING
RETURNING key_id, wrapped`

	sqlDeleteSubjectKey = `DELETE FROM subject_keys WHERE subject_id = $1`

	// sqlSubjectKeysNotWrappedTo locks the rows it returns (FOR UPDATE) so
	// that a re-wrap running in a transaction cannot race an erasure: a
	// concurrent DELETE waits for the re-wrap to commit, and a key deleted
	// and then recreated cannot be overwritten with the wrapped form of the
	// old one. Outside a transaction the lock ends with the statement.
	sqlSubjectKeysNotWrappedTo = `SELECT subject_id, key_id, wrapped FROM subject_keys
WHERE key_id <> $1 AND subject_id > $2
ORDER BY subject_id
LIMIT $3
FOR UPDATE`

	// sqlReplaceSubjectKeys updates existing rows only: a key deleted since
	// it was read (crypto-shredded) is never brought back.
	sqlReplaceSubjectKeys = `UPDATE subject_keys AS k
SET key_id = v.key_id, wrapped = v.wrapped, rewrapped_at = now()
FROM unnest($1::text[], $2::text[], $3::bytea[]) AS v(subject_id, key_id, wrapped)
WHERE k.subject_id = v.subject_id`

	sqlCountSubjectKeys = `SELECT key_id, count(*) FROM subject_keys GROUP BY key_id`
)

// putSubjectKeyAttempts bounds the insert-then-read loop of PutSubjectKey:
// the read-back finds nothing only when the winning key was deleted between
// the two statements, which takes an erasure racing a first use.
const putSubjectKeyAttempts = 3

// GetSubjectKey returns the subject's wrapped data key, or ENotFound.
func (st *SubjectKeys) GetSubjectKey(ctx context.Context, subject string) (broker.WrappedKey, error) {
	k := broker.WrappedKey{Subject: subject}
	err := st.db.q(ctx).QueryRow(ctx, sqlGetSubjectKey, subject).Scan(&k.KeyID, &k.Wrapped)
	if err != nil {
		return broker.WrappedKey{}, Translate(err)
	}
	return k, nil
}

// PutSubjectKey stores k unless the subject already has a key, and returns
// the key stored afterwards: k itself, or the one another caller (in this
// process or another) stored first. Callers must use the returned key.
func (st *SubjectKeys) PutSubjectKey(ctx context.Context, k broker.WrappedKey) (broker.WrappedKey, error) {
	if err := validWrappedKey(k); err != nil {
		return broker.WrappedKey{}, err
	}
	q := st.db.q(ctx)
	for range putSubjectKeyAttempts {
		won := broker.WrappedKey{Subject: k.Subject}
		err := q.QueryRow(ctx, sqlInsertSubjectKey, k.Subject, k.KeyID, k.Wrapped).Scan(&won.KeyID, &won.Wrapped)
		if err == nil {
			return won, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return broker.WrappedKey{}, Translate(err)
		}
		// Lost the race. Under READ COMMITTED the INSERT waited for the
		// winner to commit, so this new statement sees its row.
		winner, err := st.GetSubjectKey(ctx, k.Subject)
		if err == nil {
			return winner, nil
		}
		if !broker.IsNotFound(err) {
			return broker.WrappedKey{}, err
		}
	}
	return broker.WrappedKey{}, broker.Errorf(broker.EConflict, "data key changed concurrently; retry")
}

// DeleteSubjectKey destroys the subject's wrapped data key. A subject without
// a key is no error, so that erasure can be retried.
func (st *SubjectKeys) DeleteSubjectKey(ctx context.Context, subject string) error {
	_, err := st.db.q(ctx).Exec(ctx, sqlDeleteSubjectKey, subject)
	return Translate(err)
}

// SubjectKeysNotWrappedTo returns up to limit keys whose KeyID is not keyID,
// after the subject `after` in subject order, locking them for the rest of
// the caller's transaction.
func (st *SubjectKeys) SubjectKeysNotWrappedTo(ctx context.Context, keyID, after string, limit int) ([]broker.WrappedKey, error) {
	if limit <= 0 {
		return nil, broker.Errorf(broker.EInvalid, "limit must be positive")
	}
	rows, err := st.db.q(ctx).Query(ctx, sqlSubjectKeysNotWrappedTo, keyID, after, limit)
	if err != nil {
		return nil, Translate(err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.WrappedKey, error) {
		var k broker.WrappedKey
		err := r.Scan(&k.Subject, &k.KeyID, &k.Wrapped)
		return k, err
	})
	return keys, Translate(err)
}

// ReplaceSubjectKeys swaps the wrapped form (and KeyID) of each given key in
// one statement. Keys deleted meanwhile stay deleted.
func (st *SubjectKeys) ReplaceSubjectKeys(ctx context.Context, keys []broker.WrappedKey) error {
	if len(keys) == 0 {
		return nil
	}
	subjects := make([]string, len(keys))
	ids := make([]string, len(keys))
	wrapped := make([][]byte, len(keys))
	seen := make(map[string]struct{}, len(keys))
	for i, k := range keys {
		if err := validWrappedKey(k); err != nil {
			return err
		}
		// With a subject twice, UPDATE … FROM would apply one of the two
		// at random.
		if _, dup := seen[k.Subject]; dup {
			return broker.Errorf(broker.EInvalid, "key %d repeats an earlier subject", i)
		}
		seen[k.Subject] = struct{}{}
		subjects[i], ids[i], wrapped[i] = k.Subject, k.KeyID, k.Wrapped
	}
	_, err := st.db.q(ctx).Exec(ctx, sqlReplaceSubjectKeys, subjects, ids, wrapped)
	return Translate(err)
}

// CountSubjectKeys counts the stored keys by the identity that wraps them.
func (st *SubjectKeys) CountSubjectKeys(ctx context.Context) (map[string]int64, error) {
	rows, err := st.db.q(ctx).Query(ctx, sqlCountSubjectKeys)
	if err != nil {
		return nil, Translate(err)
	}
	defer rows.Close()
	counts := make(map[string]int64)
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, Translate(err)
		}
		counts[id] = n
	}
	return counts, Translate(rows.Err())
}

// TxIdentity returns a comparable value naming the transaction carried by
// ctx, or nil outside one. The seal package uses it to tell a data key that
// may exist only in an uncommitted transaction from a committed one, so that
// it never caches a key that a rollback takes back.
func (st *SubjectKeys) TxIdentity(ctx context.Context) any {
	if tx, ok := TxFrom(ctx); ok {
		return tx
	}
	return nil
}

// AfterCommit is DB.AfterCommit, for the Sealer (seal.CommitNotifier): a
// data key a transaction created is shared once that transaction commits.
func (st *SubjectKeys) AfterCommit(ctx context.Context, fn func()) bool {
	return st.db.AfterCommit(ctx, fn)
}

func validWrappedKey(k broker.WrappedKey) error {
	switch {
	case k.Subject == "":
		return broker.Errorf(broker.EInvalid, "wrapped key without subject")
	case k.KeyID == "":
		return broker.Errorf(broker.EInvalid, "wrapped key without key id")
	case len(k.Wrapped) == 0:
		return broker.Errorf(broker.EInvalid, "wrapped key is empty")
	}
	return nil
}
