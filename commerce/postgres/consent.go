package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Consents keeps consent artefacts, the consent state, language and
// accepted notice of shoppers, and the guardians of minors.
type Consents struct{ *base }

var _ commerce.ConsentStore = (*Consents)(nil)

const (
	sqlSaveConsent = `UPDATE subjects SET consent_notice = $2, consent_marketing = $3, consent_analytics = $4,
		consent_child = $5, lang = $6, notice_sha256 = $7, consent_updated_at = now()
		WHERE id = $1 AND erased_at IS NULL`
	sqlInsertArtefacts = `INSERT INTO consent_artefacts (id, subject_id, notice_sha256, lang, purposes, status, at,
		evidence, method, reason)
		SELECT a.id, $1, a.notice_sha256, a.lang, string_to_array(a.purposes, ','), a.status, a.at, a.evidence,
			a.method, a.reason
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[],
			$9::text[], $10::text[]) AS a(id, notice_sha256, lang, purposes, status, at, evidence, method, reason)`
	sqlArtefacts = `SELECT id, notice_sha256, lang, purposes, status, at, evidence, method, reason
		FROM consent_artefacts WHERE subject_id = $1 ORDER BY at, id`
	sqlGuardianCols = `id, subject_id, parent_index, sealed, status`
)

// SaveConsent stores a shopper's consent state, language and accepted
// notice version with the artefacts that record the change, in one
// statement each (the caller's transaction makes them one).
func (db *Consents) SaveConsent(ctx context.Context, subject string, c broker.Consent, lang, noticeSHA string, arts []commerce.ConsentArtefact) error {
	if err := db.exec1(ctx, sqlSaveConsent, subject, c.Notice, c.Marketing, c.Analytics, c.Child, lang, noticeSHA); err != nil {
		return err
	}
	if len(arts) == 0 {
		return nil
	}
	n := len(arts)
	ids, shas, langs, purposes, statuses, evidence, methods, reasons :=
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	ats := make([]any, n)
	for i, a := range arts {
		ids[i], shas[i], langs[i], statuses[i], evidence[i], methods[i], reasons[i] =
			a.ID, a.NoticeSHA256, a.Lang, a.Status, a.Evidence, a.Method, a.Reason
		for j, p := range a.Purposes {
			if j > 0 {
				purposes[i] += ","
			}
			purposes[i] += p
		}
		ats[i] = a.At
	}
	_, err := db.q(ctx).Exec(ctx, sqlInsertArtefacts, subject, ids, shas, langs, purposes, statuses, ats, evidence,
		methods, reasons)
	return Translate(err)
}

// ConsentArtefacts lists a shopper's consent artefacts, oldest first.
func (db *Consents) ConsentArtefacts(ctx context.Context, subject string) ([]commerce.ConsentArtefact, error) {
	rows, err := db.q(ctx).Query(ctx, sqlArtefacts, subject)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (commerce.ConsentArtefact, error) {
		a := commerce.ConsentArtefact{Subject: subject}
		err := r.Scan(&a.ID, &a.NoticeSHA256, &a.Lang, &a.Purposes, &a.Status, &a.At, &a.Evidence, &a.Method, &a.Reason)
		a.At = a.At.UTC()
		if a.Purposes == nil {
			a.Purposes = []string{}
		}
		return a, err
	})
	return out, Translate(err)
}

func scanGuardian(row pgx.Row) (commerce.Guardian, error) {
	var g commerce.Guardian
	err := row.Scan(&g.ID, &g.Subject, &g.ParentIndex, &g.Sealed, &g.Status)
	return g, Translate(err)
}

// CreateGuardian stores a minor's pending guardian; a second open one is a
// conflict (unique index guardians_open).
func (db *Consents) CreateGuardian(ctx context.Context, g commerce.Guardian) error {
	_, err := db.q(ctx).Exec(ctx, `INSERT INTO guardians (id, subject_id, parent_index, sealed, status)
		VALUES ($1, $2, $3, $4, $5)`, g.ID, g.Subject, g.ParentIndex, g.Sealed, g.Status)
	return Translate(err)
}

// OpenGuardian returns the shopper's pending or approved guardian.
func (db *Consents) OpenGuardian(ctx context.Context, subject string) (commerce.Guardian, error) {
	return scanGuardian(db.q(ctx).QueryRow(ctx, `SELECT `+sqlGuardianCols+` FROM guardians
		WHERE subject_id = $1 AND status IN ('pending', 'approved')`, subject))
}

// GuardianByID finds a guardian by id.
func (db *Consents) GuardianByID(ctx context.Context, id string) (commerce.Guardian, error) {
	return scanGuardian(db.q(ctx).QueryRow(ctx, `SELECT `+sqlGuardianCols+` FROM guardians WHERE id = $1`, id))
}

// SetGuardianStatus moves a guardian from one of the statuses from to to.
func (db *Consents) SetGuardianStatus(ctx context.Context, id string, from []string, to string) error {
	return db.exec1(ctx, `UPDATE guardians SET status = $3, updated_at = now() WHERE id = $1 AND status = ANY($2)`,
		id, from, to)
}
