package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
)

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// PartnerRegistry is a change to a partner's legal registry entry and
// service area: nil fields are left as they are.
type PartnerRegistry struct {
	Role, Agreement, AgreementExpires, Jurisdiction, TransferBasis *string // "" clears
	Serves                                                         *[]string
	Location                                                       *[2]float64 // nil: unchanged
	ClearLocation                                                  bool
	RadiusKm                                                       *float64 // 0 clears
	SelfDelivery, AutoAccept                                       *bool
}

// sqlUpdateRegistry applies a PartnerRegistry: each $n pair is "change?"
// and the new value, so one statement serves every combination of flags.
const sqlUpdateRegistry = `UPDATE partners SET
	role = CASE WHEN $2 THEN NULLIF($3, '') ELSE role END,
	agreement_ref = CASE WHEN $4 THEN NULLIF($5, '') ELSE agreement_ref END,
	agreement_expires = CASE WHEN $6 THEN $7::date ELSE agreement_expires END,
	jurisdiction = CASE WHEN $8 THEN NULLIF($9, '') ELSE jurisdiction END,
	transfer_basis = CASE WHEN $10 THEN NULLIF($11, '') ELSE transfer_basis END,
	serves = CASE WHEN $12 THEN $13::text[] ELSE serves END,
	lat = CASE WHEN $14 THEN $15 WHEN $16 THEN NULL ELSE lat END,
	lon = CASE WHEN $14 THEN $17 WHEN $16 THEN NULL ELSE lon END,
	radius_km = CASE WHEN $18 THEN NULLIF($19::double precision, 0) ELSE radius_km END,
	self_delivery = CASE WHEN $20 THEN $21 ELSE self_delivery END,
	auto_accept = CASE WHEN $22 THEN $23 ELSE auto_accept END
WHERE id = $1`

// UpdatePartnerRegistry changes a partner's legal registry entry and
// service area; ENotFound when there is none, EInvalid when the result
// breaks a rule of the schema (a service area on a non-retailer, a bad
// country code).
func (st *Partners) UpdatePartnerRegistry(ctx context.Context, id string, r PartnerRegistry) error {
	str := func(p *string) (bool, string) {
		if p == nil {
			return false, ""
		}
		return true, *p
	}
	roleSet, role := str(r.Role)
	agrSet, agr := str(r.Agreement)
	expSet, exp := str(r.AgreementExpires)
	// A date parameter rather than text cast to date in the statement: the
	// cast is STABLE, which Citus refuses inside CASE. '' clears it.
	var expArg any
	if exp != "" {
		expArg = exp
	}
	jurSet, jur := str(r.Jurisdiction)
	basisSet, basis := str(r.TransferBasis)
	var serves []string
	if r.Serves != nil {
		serves = *r.Serves
		if serves == nil {
			serves = []string{}
		}
	}
	var lat, lon float64
	if r.Location != nil {
		lat, lon = r.Location[0], r.Location[1]
	}
	var radius float64
	if r.RadiusKm != nil {
		radius = *r.RadiusKm
	}
	b := func(p *bool) (bool, bool) {
		if p == nil {
			return false, false
		}
		return true, *p
	}
	sdSet, sd := b(r.SelfDelivery)
	aaSet, aa := b(r.AutoAccept)
	tag, err := st.db.q(ctx).Exec(ctx, sqlUpdateRegistry, id, roleSet, role, agrSet, agr, expSet, expArg, jurSet, jur,
		basisSet, basis, r.Serves != nil, serves, r.Location != nil, lat, r.ClearLocation, lon,
		r.RadiusKm != nil, radius, sdSet, sd, aaSet, aa)
	if err != nil {
		return Translate(err) // a broken rule of the schema is EInvalid
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

// RoutingStores returns the enabled retailers with a service area, in
// creation order (the partners_areas index).
func (st *Partners) RoutingStores(ctx context.Context) ([]broker.Partner, error) {
	rows, err := st.db.q(ctx).Query(ctx, `SELECT `+partnerCols+` FROM partners
		WHERE kind = 'retailer' AND NOT disabled AND (serves <> '{}' OR radius_km IS NOT NULL) ORDER BY seq`)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.Partner, error) { return scanPartner(r) })
	return out, Translate(err)
}
