package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Subjects keeps the shoppers: their rows, the blind indexes of their
// identifiers, their consent flags and the partners' references to them.
type Subjects struct{ *base }

var _ commerce.SubjectStore = (*Subjects)(nil)

const subjectCols = `id, sealed_identity, consent_notice, consent_marketing, consent_analytics,
	coalesce(last_inbound_at, 'epoch'), last_interaction_at, created_at, erased_at IS NOT NULL,
	consent_child, lang, notice_sha256, restricted_at IS NOT NULL, coalesce(jurisdiction, '')`

func scanSubject(row pgx.Row) (commerce.SubjectRow, error) {
	var s commerce.SubjectRow
	err := row.Scan(&s.ID, &s.SealedIdentity, &s.Consent.Notice, &s.Consent.Marketing, &s.Consent.Analytics,
		&s.LastInbound, &s.LastInteraction, &s.CreatedAt, &s.Erased, &s.Consent.Child, &s.Lang, &s.NoticeSHA, &s.Restricted, &s.Jurisdiction)
	return s, Translate(err)
}

const (
	sqlSubjectByIndex = `SELECT ` + subjectCols + ` FROM subjects WHERE id =
		(SELECT subject_id FROM subject_identifiers WHERE blind_index = $1)`
	sqlSubjectByID = `SELECT ` + subjectCols + ` FROM subjects WHERE id = $1`
	// sqlCreateSubject inserts a shopper and all its identifiers in one
	// statement, or nothing when one of them is already taken (a racing
	// insert of the same identifier fails the statement: unique_violation).
	sqlCreateSubject = `WITH ids AS (SELECT * FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)),
		s AS (INSERT INTO subjects (id) SELECT $1
			WHERE NOT EXISTS (SELECT 1 FROM subject_identifiers WHERE blind_index IN (SELECT ix FROM ids))
			RETURNING ` + subjectCols + `),
		i AS (INSERT INTO subject_identifiers (blind_index, subject_id, kind) SELECT ids.ix, s.id, ids.kind FROM ids, s)
		SELECT * FROM s`
	// sqlCreateSealedSubject is sqlCreateSubject with the rest of what a
	// new shopper starts with, the sealed identity, the jurisdiction and the
	// wrapped data key: a new shopper's first message costs one statement
	// and one commit. subject_keys has no foreign key to subjects (keys
	// outlive nothing: erasure deletes them), so the order of the CTEs is
	// free; all or nothing is written.
	sqlCreateSealedSubject = `WITH ids AS (SELECT * FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)),
		s AS (INSERT INTO subjects (id, sealed_identity, jurisdiction) SELECT $1, $4, NULLIF($5, '')
			WHERE NOT EXISTS (SELECT 1 FROM subject_identifiers WHERE blind_index IN (SELECT ix FROM ids))
			RETURNING id),
		i AS (INSERT INTO subject_identifiers (blind_index, subject_id, kind) SELECT ids.ix, s.id, ids.kind FROM ids, s),
		k AS (INSERT INTO subject_keys (subject_id, key_id, wrapped) SELECT s.id, $6, $7 FROM s)
		SELECT count(*) FROM s`
	sqlSubjectsByIndexes = `SELECT blind_index, subject_id FROM subject_identifiers WHERE blind_index = ANY($1)`
	sqlLinkIdentifiers   = `INSERT INTO subject_identifiers (blind_index, subject_id, kind)
		SELECT t.ix, $1, t.kind FROM unnest($2::bytea[], $3::text[]) AS t(ix, kind)
		WHERE EXISTS (SELECT 1 FROM subjects WHERE id = $1 AND erased_at IS NULL)
		ON CONFLICT (blind_index) DO NOTHING`
	sqlUnlinkIdentifiers = `DELETE FROM subject_identifiers WHERE subject_id = $1 AND blind_index = ANY($2)`
)

// EnsureSubject returns the shopper with the blind index, creating it
// with that one identifier (of kind unknown).
func (db *Subjects) EnsureSubject(ctx context.Context, index []byte, newID string) (commerce.SubjectRow, bool, error) {
	for attempt := 0; ; attempt++ {
		s, err := db.SubjectByIndex(ctx, index)
		if !broker.IsNotFound(err) {
			return s, false, err
		}
		s, err = db.CreateSubject(ctx, newID, []commerce.IdentifierIndex{{Kind: "unknown", Index: index}})
		if broker.ErrorCode(err) == broker.EConflict && attempt < 2 {
			continue
		}
		return s, err == nil, err
	}
}

// CreateSubject creates a shopper with all its identifiers; EConflict
// when one of them already belongs to a shopper (nothing is written).
func (db *Subjects) CreateSubject(ctx context.Context, id string, ids []commerce.IdentifierIndex) (commerce.SubjectRow, error) {
	ix, kinds := identifierColumns(ids)
	s, err := scanSubject(db.q(ctx).QueryRow(ctx, sqlCreateSubject, id, ix, kinds))
	if broker.IsNotFound(err) {
		return s, broker.Errorf(broker.EConflict, "identifier already indexed")
	}
	return s, err
}

// CreateSealedSubject creates a shopper with its identifiers, wrapped data
// key, sealed identity and jurisdiction in one statement; EConflict when one
// of the identifiers already belongs to a shopper (nothing is written).
func (db *Subjects) CreateSealedSubject(ctx context.Context, n commerce.NewSubject) error {
	if n.Key.Subject != n.ID || n.Key.KeyID == "" || len(n.Key.Wrapped) == 0 {
		return broker.Errorf(broker.EInternal, "a new shopper's key must be theirs and wrapped")
	}
	ix, kinds := identifierColumns(n.Identifiers)
	var created int
	if err := db.q(ctx).QueryRow(ctx, sqlCreateSealedSubject, n.ID, ix, kinds, n.SealedIdentity, n.Jurisdiction,
		n.Key.KeyID, n.Key.Wrapped).Scan(&created); err != nil {
		return Translate(err)
	}
	if created == 0 {
		return broker.Errorf(broker.EConflict, "identifier already indexed")
	}
	return nil
}

// SubjectsByIndexes maps each known blind index (as a string) to the
// shopper it points to, with one query.
func (db *Subjects) SubjectsByIndexes(ctx context.Context, indexes [][]byte) (map[string]string, error) {
	rows, err := db.q(ctx).Query(ctx, sqlSubjectsByIndexes, indexes)
	if err != nil {
		return nil, Translate(err)
	}
	out := make(map[string]string, len(indexes))
	var ix []byte
	var sub string
	_, err = pgx.ForEachRow(rows, []any{&ix, &sub}, func() error {
		out[string(ix)] = sub
		return nil
	})
	return out, Translate(err)
}

// LinkIdentifiers points the identifiers to the shopper; those already
// pointing anywhere are left as they are. It returns how many it added.
func (db *Subjects) LinkIdentifiers(ctx context.Context, subject string, ids []commerce.IdentifierIndex) (int, error) {
	ix, kinds := identifierColumns(ids)
	tag, err := db.q(ctx).Exec(ctx, sqlLinkIdentifiers, subject, ix, kinds)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// UnlinkIdentifiers removes those of the indexes that point to subject.
func (db *Subjects) UnlinkIdentifiers(ctx context.Context, subject string, indexes [][]byte) (int, error) {
	tag, err := db.q(ctx).Exec(ctx, sqlUnlinkIdentifiers, subject, indexes)
	if err != nil {
		return 0, Translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// CountIdentifiers returns how many identifiers point to the shopper.
func (db *Subjects) CountIdentifiers(ctx context.Context, subject string) (int, error) {
	var n int
	err := db.q(ctx).QueryRow(ctx, `SELECT count(*) FROM subject_identifiers WHERE subject_id = $1`, subject).Scan(&n)
	return n, Translate(err)
}

func identifierColumns(ids []commerce.IdentifierIndex) ([][]byte, []string) {
	ix, kinds := make([][]byte, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		ix[i], kinds[i] = id.Index, id.Kind
	}
	return ix, kinds
}

// SubjectByIndex finds a shopper by blind index.
func (db *Subjects) SubjectByIndex(ctx context.Context, index []byte) (commerce.SubjectRow, error) {
	return scanSubject(db.q(ctx).QueryRow(ctx, sqlSubjectByIndex, index))
}

// GetSubject finds a shopper by id.
func (db *Subjects) GetSubject(ctx context.Context, id string) (commerce.SubjectRow, error) {
	return scanSubject(db.q(ctx).QueryRow(ctx, sqlSubjectByID, id))
}

// SetSubjectIdentity stores the shopper's sealed identity.
func (db *Subjects) SetSubjectIdentity(ctx context.Context, id string, sealed []byte) error {
	return db.exec1(ctx, `UPDATE subjects SET sealed_identity = $2 WHERE id = $1 AND erased_at IS NULL`, id, sealed)
}

// SetRestricted pauses (on) or resumes (off) the processing of the
// shopper's data (GDPR Art. 18).
func (db *Subjects) SetRestricted(ctx context.Context, id string, on bool) error {
	// COALESCE keeps the first restriction's time; the CASE makes it NULL
	// when resuming. The time is a parameter, not now(): Citus refuses a
	// STABLE function beside a column reference in an UPDATE.
	return db.exec1(ctx, `UPDATE subjects SET restricted_at = CASE WHEN $2 THEN coalesce(restricted_at, $3::timestamptz) END
		WHERE id = $1 AND erased_at IS NULL`, id, on, time.Now())
}

// SetConsent stores the shopper's consent state.
func (db *Subjects) SetConsent(ctx context.Context, id string, c broker.Consent) error {
	return db.exec1(ctx, `UPDATE subjects SET consent_notice = $2, consent_marketing = $3, consent_analytics = $4,
		consent_updated_at = now() WHERE id = $1 AND erased_at IS NULL`, id, c.Notice, c.Marketing, c.Analytics)
}

// RememberPartnerRef records that partner knows subject as ref.
func (db *Subjects) RememberPartnerRef(ctx context.Context, partner, ref, subject string) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO partner_refs (partner_id, ref, subject_id) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, partner, ref, subject)
	return Translate(err)
}

// SubjectOfPartnerRef resolves a partner's customer_ref.
func (db *Subjects) SubjectOfPartnerRef(ctx context.Context, partner, ref string) (string, error) {
	var s string
	err := db.q(ctx).QueryRow(ctx, `SELECT subject_id FROM partner_refs WHERE partner_id = $1 AND ref = $2`,
		partner, ref).Scan(&s)
	return s, Translate(err)
}

// SetSubjectIdentityJurisdiction stores a new shopper's sealed identity
// with their jurisdiction in one statement (see bpg.DB).
func (db *Subjects) SetSubjectIdentityJurisdiction(ctx context.Context, id string, sealed []byte, country string) error {
	return db.exec1(ctx, `UPDATE subjects SET sealed_identity = $2, jurisdiction = $3 WHERE id = $1 AND erased_at IS NULL`,
		id, sealed, country)
}
