package postgres

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

// Nominees keeps the nominations shoppers make of someone to act for them.
type Nominees struct{ *base }

var _ commerce.NominationStore = (*Nominees)(nil)

const nominationCols = `id, subject_id, store, nominee_index, sealed, created_at, confirmed_at, coalesce(event, ''), event_at, coalesce(event_by, '')`

// InsertNomination stores a nomination.
func (db *Nominees) InsertNomination(ctx context.Context, n commerce.Nomination) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO nominations (id, subject_id, store, nominee_index, sealed, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, n.ID, n.Subject, n.Store, n.Index, n.Sealed, n.CreatedAt)
	return Translate(err)
}

// GetNomination reads a nomination.
func (db *Nominees) GetNomination(ctx context.Context, id string) (commerce.Nomination, error) {
	var n commerce.Nomination
	err := db.q(ctx).QueryRow(ctx, `SELECT `+nominationCols+` FROM nominations WHERE id = $1`, id).Scan(&n.ID, &n.Subject,
		&n.Store, &n.Index, &n.Sealed, &n.CreatedAt, &n.ConfirmedAt, &n.Event, &n.EventAt, &n.EventBy)
	return n, Translate(err)
}

// ConfirmNomination records the nominee's confirmation once.
func (db *Nominees) ConfirmNomination(ctx context.Context, id string, at time.Time) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE nominations SET confirmed_at = $2 WHERE id = $1 AND confirmed_at IS NULL`, id, at)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SetNominationEvent records the death or incapacity once.
func (db *Nominees) SetNominationEvent(ctx context.Context, id, event, by string, at time.Time) (bool, error) {
	tag, err := db.q(ctx).Exec(ctx, `UPDATE nominations SET event = $2, event_by = $3, event_at = $4 WHERE id = $1 AND event IS NULL`,
		id, event, by, at)
	if err != nil {
		return false, Translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SubjectWaIndex returns the blind index of a shopper's phone number
// (subject_identifiers, migration 0019); ENotFound when they have none
// (a username user, or after erasure). An index carried over from before
// identifiers had kinds counts, since it was the phone when there was one.
func (db *Nominees) SubjectWaIndex(ctx context.Context, subject string) ([]byte, error) {
	var idx []byte
	err := db.q(ctx).QueryRow(ctx, `SELECT blind_index FROM subject_identifiers
		WHERE subject_id = $1 AND kind IN ('wa', 'unknown') ORDER BY kind = 'wa' DESC LIMIT 1`, subject).Scan(&idx)
	return idx, Translate(err)
}
