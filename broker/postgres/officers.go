package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
)

const officerCols = `id, name, password_hash, created_at, password_set_at, disabled, password_temporary`

const (
	sqlInsertOfficer = `INSERT INTO officers (id, name, password_hash, password_temporary) VALUES ($1, $2, $3, true)
RETURNING created_at, password_set_at`

	sqlGetOfficer = `SELECT ` + officerCols + ` FROM officers WHERE id = $1`

	sqlOfficerByName = `SELECT ` + officerCols + ` FROM officers WHERE name = $1`

	sqlListOfficers = `SELECT ` + officerCols + ` FROM officers ORDER BY created_at, name`

	sqlSetOfficerPassword = `UPDATE officers SET password_hash = $2, password_set_at = now(), password_temporary = true
 WHERE id = $1`

	sqlChangeOfficerPassword = `UPDATE officers SET password_hash = $2, password_set_at = now(), password_temporary = false
 WHERE id = $1`

	sqlDeleteOtherOfficerSessions = `DELETE FROM officer_sessions WHERE officer_id = $1 AND id_hash <> $2`

	sqlSetOfficerDisabled = `UPDATE officers SET disabled = $2 WHERE id = $1`

	sqlDeleteOfficerSessions = `DELETE FROM officer_sessions WHERE officer_id = $1`

	sqlInsertOfficerSession = `INSERT INTO officer_sessions (id_hash, officer_id, csrf, created_at, last_seen, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)`

	// One round trip per dashboard request: the session and its officer.
	sqlOfficerSession = `SELECT s.id_hash, s.officer_id, s.csrf, s.created_at, s.last_seen, s.expires_at,
       o.id, o.name, o.password_hash, o.created_at, o.password_set_at, o.disabled, o.password_temporary
  FROM officer_sessions s JOIN officers o ON o.id = s.officer_id
 WHERE s.id_hash = $1`

	// GREATEST: a slower process never moves last_seen backwards.
	sqlTouchOfficerSession = `UPDATE officer_sessions SET last_seen = GREATEST(last_seen, $2) WHERE id_hash = $1`

	sqlDeleteOfficerSession = `DELETE FROM officer_sessions WHERE id_hash = $1`

	sqlPruneOfficerSessions = `DELETE FROM officer_sessions WHERE expires_at <= $1 OR last_seen <= $2`

	sqlPruneLoginFailures = `DELETE FROM officer_login_failures WHERE last_failure <= $1`

	sqlLoginFailures = `SELECT failures, last_failure FROM officer_login_failures
 WHERE key = $1 AND last_failure > $2::timestamptz - $3::bigint * interval '1 microsecond'`

	// A failure starts a new run when the window has passed since the
	// last one, else it counts in the current run; atomic, so concurrent
	// guesses all count. GREATEST: a slower process never moves the last
	// failure back.
	sqlRecordLoginFailure = `INSERT INTO officer_login_failures AS f (key, window_start, last_failure, failures) VALUES ($1, $2, $2, 1)
ON CONFLICT (key) DO UPDATE SET
  window_start = CASE WHEN f.last_failure <= $2::timestamptz - $3::bigint * interval '1 microsecond'
                      THEN EXCLUDED.window_start ELSE f.window_start END,
  failures     = CASE WHEN f.last_failure <= $2::timestamptz - $3::bigint * interval '1 microsecond'
                      THEN 1 ELSE f.failures + 1 END,
  last_failure = GREATEST(f.last_failure, EXCLUDED.last_failure)
RETURNING failures, last_failure`

	sqlClearLoginFailures = `DELETE FROM officer_login_failures WHERE key = $1`
)

// Officers is the store of compliance officers, their sessions and their
// failed sign-ins (it implements ui.OfficerStore): a narrow part of the
// database rather than more methods on DB.
type Officers struct{ db *DB }

// Officers returns the officers' store.
func (db *DB) Officers() *Officers { return &Officers{db} }

// constraintOfficerName is the unique constraint on officers.name.
const constraintOfficerName = "officers_name_key"

// Create registers o (ID, Name and PasswordHash, a temporary password
// the officer must change at the first sign-in; the times are set
// by the database and returned in the result). A taken name is EConflict.
func (st *Officers) Create(ctx context.Context, o broker.Officer) (broker.Officer, error) {
	err := st.db.q(ctx).QueryRow(ctx, sqlInsertOfficer, o.ID, o.Name, o.PasswordHash).Scan(&o.CreatedAt, &o.PasswordSetAt)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraintOfficerName {
			return broker.Officer{}, broker.Wrap(broker.EConflict, err, "an officer with that name exists")
		}
		return broker.Officer{}, Translate(err)
	}
	o.Disabled, o.PasswordTemporary = false, true
	return o, nil
}

// Get returns the officer with the given id, or ENotFound.
func (st *Officers) Get(ctx context.Context, id string) (broker.Officer, error) {
	o, err := scanOfficer(st.db.q(ctx).QueryRow(ctx, sqlGetOfficer, id))
	return o, Translate(err)
}

// OfficerByName returns the officer with the given sign-in name, or
// ENotFound.
func (st *Officers) OfficerByName(ctx context.Context, name string) (broker.Officer, error) {
	o, err := scanOfficer(st.db.q(ctx).QueryRow(ctx, sqlOfficerByName, name))
	return o, Translate(err)
}

// List returns every officer, oldest first.
func (st *Officers) List(ctx context.Context) ([]broker.Officer, error) {
	rows, err := st.db.q(ctx).Query(ctx, sqlListOfficers)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.Officer, error) { return scanOfficer(r) })
	return out, Translate(err)
}

// SetPassword replaces an officer's password hash with one the
// operator issued (temporary: the officer must change it at the next
// sign-in) and ends every session of theirs, in one transaction: whoever
// held the old password (or a session opened with it) is out. ENotFound
// when there is no such officer.
func (st *Officers) SetPassword(ctx context.Context, id, passwordHash string) error {
	return st.db.InTx(ctx, func(ctx context.Context) error {
		if err := st.db.exec1(ctx, sqlSetOfficerPassword, id, passwordHash); err != nil {
			return err
		}
		_, err := st.db.q(ctx).Exec(ctx, sqlDeleteOfficerSessions, id)
		return Translate(err)
	})
}

// SetDisabled disables or re-enables an officer; disabling ends
// their sessions at once. ENotFound when there is no such officer.
func (st *Officers) SetDisabled(ctx context.Context, id string, disabled bool) error {
	return st.db.InTx(ctx, func(ctx context.Context) error {
		if err := st.db.exec1(ctx, sqlSetOfficerDisabled, id, disabled); err != nil {
			return err
		}
		if !disabled {
			return nil
		}
		_, err := st.db.q(ctx).Exec(ctx, sqlDeleteOfficerSessions, id)
		return Translate(err)
	})
}

// ChangePassword sets the password an officer chose (no longer
// temporary) and ends every other session of theirs, keeping the one with
// id hash keep (the session that made the change), in one transaction.
// ENotFound when there is no such officer.
func (st *Officers) ChangePassword(ctx context.Context, id, passwordHash string, keep []byte) error {
	return st.db.InTx(ctx, func(ctx context.Context) error {
		if err := st.db.exec1(ctx, sqlChangeOfficerPassword, id, passwordHash); err != nil {
			return err
		}
		_, err := st.db.q(ctx).Exec(ctx, sqlDeleteOtherOfficerSessions, id, keep)
		return Translate(err)
	})
}

// CreateSession stores a new session.
func (st *Officers) CreateSession(ctx context.Context, s broker.OfficerSession) error {
	_, err := st.db.q(ctx).Exec(ctx, sqlInsertOfficerSession, s.IDHash, s.OfficerID, s.CSRF,
		s.CreatedAt, s.LastSeen, s.ExpiresAt)
	return Translate(err)
}

// broker.OfficerSession returns the session with the given id hash and its
// officer, or ENotFound. Whether it is still valid (expiry, idleness, a
// disabled officer) is the caller's judgement, made with its own clock.
func (st *Officers) Session(ctx context.Context, idHash []byte) (broker.OfficerSession, broker.Officer, error) {
	var s broker.OfficerSession
	var o broker.Officer
	err := st.db.q(ctx).QueryRow(ctx, sqlOfficerSession, idHash).Scan(&s.IDHash, &s.OfficerID, &s.CSRF,
		&s.CreatedAt, &s.LastSeen, &s.ExpiresAt,
		&o.ID, &o.Name, &o.PasswordHash, &o.CreatedAt, &o.PasswordSetAt, &o.Disabled, &o.PasswordTemporary)
	if err != nil {
		return broker.OfficerSession{}, broker.Officer{}, Translate(err)
	}
	return s, o, nil
}

// TouchSession records activity on a session at time at (never
// moving it backwards). A session that is gone is no error.
func (st *Officers) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	_, err := st.db.q(ctx).Exec(ctx, sqlTouchOfficerSession, idHash, at)
	return Translate(err)
}

// DeleteSession ends a session (sign-out). A session that is gone
// is no error.
func (st *Officers) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := st.db.q(ctx).Exec(ctx, sqlDeleteOfficerSession, idHash)
	return Translate(err)
}

// Prune deletes the sessions that expired by now or have been
// idle since idleSince, and the runs of sign-in failures whose last failure was at or
// before failuresSince.
func (st *Officers) Prune(ctx context.Context, now, idleSince, failuresSince time.Time) error {
	if _, err := st.db.q(ctx).Exec(ctx, sqlPruneOfficerSessions, now, idleSince); err != nil {
		return Translate(err)
	}
	_, err := st.db.q(ctx).Exec(ctx, sqlPruneLoginFailures, failuresSince)
	return Translate(err)
}

// LoginFailures returns the failed sign-ins of the run counted under key
// (a run lasts until window passes without a failure) and when the last of
// them was (zero when there is none).
func (st *Officers) LoginFailures(ctx context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error) {
	var n int
	var start time.Time
	err := st.db.q(ctx).QueryRow(ctx, sqlLoginFailures, key, now, window.Microseconds()).Scan(&n, &start)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, Translate(err)
	}
	return n, start, nil
}

// RecordLoginFailure counts one failed sign-in under key at now (a new run
// starts when window has passed since the last failure) and returns the
// failures of the run and when the last of them was.
func (st *Officers) RecordLoginFailure(ctx context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error) {
	var n int
	var start time.Time
	err := st.db.q(ctx).QueryRow(ctx, sqlRecordLoginFailure, key, now, window.Microseconds()).Scan(&n, &start)
	if err != nil {
		return 0, time.Time{}, Translate(err)
	}
	return n, start, nil
}

// ClearLoginFailures forgets the failures counted under key (after a
// successful sign-in).
func (st *Officers) ClearLoginFailures(ctx context.Context, key []byte) error {
	_, err := st.db.q(ctx).Exec(ctx, sqlClearLoginFailures, key)
	return Translate(err)
}

func scanOfficer(row pgx.Row) (broker.Officer, error) {
	var o broker.Officer
	err := row.Scan(&o.ID, &o.Name, &o.PasswordHash, &o.CreatedAt, &o.PasswordSetAt, &o.Disabled, &o.PasswordTemporary)
	return o, err
}
