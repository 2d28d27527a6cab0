package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
)

// Partners is the partner registry on a DB (broker.PartnerStore): the
// partners, their secrets and token revocation, their webhooks and default
// couriers (this file), and their legal registry entries and service
// areas (registry.go).
type Partners struct{ db *DB }

// Partners returns the partner registry on db.
func (db *DB) Partners() *Partners { return &Partners{db} }

var _ broker.PartnerStore = (*Partners)(nil)

// partnerCols is the column list every partner query reads, in the order
// scanPartner expects.
const partnerCols = `id, name, kind, scopes, store, webhook_url, disabled, created_at, secret_hash, sealed_secret, not_before,
	role, agreement_ref, to_char(agreement_expires, 'YYYY-MM-DD'), jurisdiction, transfer_basis,
	serves, lat, lon, radius_km, self_delivery, auto_accept`

const (
	sqlInsertPartner = `INSERT INTO partners (id, name, kind, scopes, store, webhook_url, disabled,
	created_at, secret_hash, sealed_secret)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), $7, (array_remove(ARRAY[$8::timestamptz, now()], NULL))[1], $9, $10)`

	sqlGetPartner = `SELECT ` + partnerCols + ` FROM partners WHERE id = $1`

	sqlListPartners = `SELECT ` + partnerCols + ` FROM partners ORDER BY seq`

	// Disabling also revokes the tokens issued so far (not_before), so
	// that enabling again does not bring them back; GREATEST never moves
	// it back (and ignores NULL). now() stays outside CASE and COALESCE
	// here and in the insert (COALESCE($8, now()) spelled with an array):
	// Citus evaluates it on the coordinator, and refuses it in either.
	sqlSetPartnerDisabled = `UPDATE partners SET disabled = $2,
	not_before = GREATEST(not_before, now() + CASE WHEN $2 THEN interval '0' END)
WHERE id = $1`

	sqlRevokePartnerTokens = `UPDATE partners SET not_before = GREATEST(not_before, now()) WHERE id = $1
RETURNING not_before`

	sqlSetPartnerSecret = `UPDATE partners SET secret_hash = $2, sealed_secret = $3 WHERE id = $1`

	// The retailer bound to the store if there is one, else the first
	// retailer created; disabled ones never. Each branch is one probe of
	// a partial index; rank orders them explicitly, since UNION ALL alone
	// promises no order.
	sqlRetailerForStore = `SELECT ` + partnerCols + ` FROM (
	(SELECT 0 AS rank, * FROM partners
	  WHERE kind = 'retailer' AND NOT disabled AND store = $1 ORDER BY seq LIMIT 1)
	UNION ALL
	(SELECT 1 AS rank, * FROM partners
	  WHERE kind = 'retailer' AND NOT disabled ORDER BY seq LIMIT 1)
) r ORDER BY rank LIMIT 1`
)

// constraintStoreRetailer is the unique index that allows one enabled
// retailer per store.
const constraintStoreRetailer = "partners_store_retailer"

// CreatePartner registers p. A second enabled retailer for the same store
// is a conflict, as is an existing id.
func (st *Partners) CreatePartner(ctx context.Context, p broker.Partner) error {
	var created *time.Time
	if !p.CreatedAt.IsZero() {
		created = &p.CreatedAt
	}
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{} // NOT NULL: no scopes is an empty array
	}
	_, err := st.db.q(ctx).Exec(ctx, sqlInsertPartner, p.ID, p.Name, string(p.Kind), scopes,
		p.Store, p.WebhookURL, p.Disabled, created, p.SecretHash, p.SealedSecret)
	return translateStoreConflict(err)
}

// GetPartner returns the partner with client id id, or ENotFound.
func (st *Partners) GetPartner(ctx context.Context, id string) (broker.Partner, error) {
	p, err := scanPartner(st.db.q(ctx).QueryRow(ctx, sqlGetPartner, id))
	return p, Translate(err)
}

// ListPartners returns every partner, in creation order.
func (st *Partners) ListPartners(ctx context.Context) ([]broker.Partner, error) {
	rows, err := st.db.q(ctx).Query(ctx, sqlListPartners)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broker.Partner, error) {
		return scanPartner(r)
	})
	return out, Translate(err)
}

// SetPartnerDisabled disables or re-enables a partner; ENotFound when there
// is none. Re-enabling a retailer whose store another enabled retailer now
// serves is a conflict.
func (st *Partners) SetPartnerDisabled(ctx context.Context, id string, disabled bool) error {
	tag, err := st.db.q(ctx).Exec(ctx, sqlSetPartnerDisabled, id, disabled)
	if err != nil {
		return translateStoreConflict(err)
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

// SetPartnerSecret replaces a partner's secret hash and sealed secret;
// ENotFound when there is none.
func (st *Partners) SetPartnerSecret(ctx context.Context, id, secretHash string, sealedSecret []byte) error {
	tag, err := st.db.q(ctx).Exec(ctx, sqlSetPartnerSecret, id, secretHash, sealedSecret)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

// RevokePartnerTokens refuses, from now on, every access token of the
// partner issued until now (partners.not_before) and returns that instant;
// ENotFound when there is none.
func (st *Partners) RevokePartnerTokens(ctx context.Context, id string) (time.Time, error) {
	var nb time.Time
	err := st.db.q(ctx).QueryRow(ctx, sqlRevokePartnerTokens, id).Scan(&nb)
	return nb, Translate(err)
}

// RetailerForStore returns the enabled retailer created with that store,
// else the first enabled retailer created; ENotFound when there is none.
func (st *Partners) RetailerForStore(ctx context.Context, store string) (broker.Partner, error) {
	p, err := scanPartner(st.db.q(ctx).QueryRow(ctx, sqlRetailerForStore, store))
	return p, Translate(err)
}

func scanPartner(row pgx.Row) (broker.Partner, error) {
	var p broker.Partner
	var kind string
	var store, webhook *string
	var notBefore *time.Time
	var role, agreement, expires, juris, basis *string
	var lat, lon, radius *float64
	err := row.Scan(&p.ID, &p.Name, &kind, &p.Scopes, &store, &webhook, &p.Disabled, &p.CreatedAt,
		&p.SecretHash, &p.SealedSecret, &notBefore,
		&role, &agreement, &expires, &juris, &basis,
		&p.Area.Serves, &lat, &lon, &radius, &p.Area.SelfDelivery, &p.Area.AutoAccept)
	if err != nil {
		return broker.Partner{}, err
	}
	p.Legal = broker.PartyLegal{Role: deref(role), Agreement: deref(agreement), AgreementExpires: deref(expires),
		Jurisdiction: deref(juris), TransferBasis: deref(basis)}
	if lat != nil && lon != nil {
		p.Area.Lat, p.Area.Lon, p.Area.HasLocation = *lat, *lon, true
	}
	if radius != nil {
		p.Area.RadiusKm = *radius
	}
	p.Kind = broker.PartyKind(kind)
	if store != nil {
		p.Store = *store
	}
	if webhook != nil {
		p.WebhookURL = *webhook
	}
	if notBefore != nil {
		p.NotBefore = *notBefore
	}
	return p, nil
}

// translateStoreConflict names the one conflict an operator can act on;
// everything else goes through Translate.
func translateStoreConflict(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraintStoreRetailer {
		return broker.Wrap(broker.EConflict, err, "another enabled retailer already receives this store's orders")
	}
	return Translate(err)
}

// SetDefaultCourier makes courier (a logistics partner's client id; ""
// for none) the default courier of the retailer id: its orders go to that
// courier when they go out for delivery without an explicit dispatch.
// ENotFound when id is no retailer; EInvalid when courier is not an
// enabled logistics partner.
func (st *Partners) SetDefaultCourier(ctx context.Context, id, courier string) error {
	if courier != "" {
		c, err := st.GetPartner(ctx, courier)
		if broker.IsNotFound(err) || (err == nil && (c.Kind != broker.KindLogistics || c.Disabled)) {
			return broker.Errorf(broker.EInvalid, "the courier must be an enabled logistics partner")
		}
		if err != nil {
			return err
		}
	}
	tag, err := st.db.q(ctx).Exec(ctx, `UPDATE partners SET default_courier = NULLIF($2, '') WHERE id = $1 AND kind = 'retailer'`,
		id, courier)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}

// sqlSetPartnerWebhook sets a partner's webhook URL; an empty one removes it.
const sqlSetPartnerWebhook = `UPDATE partners SET webhook_url = NULLIF($2, '') WHERE id = $1`

// SetPartnerWebhook replaces a partner's webhook URL ("" removes it);
// ENotFound when there is none. The caller validates the URL (brokerctl
// partner update checks it against the webhook address guard).
func (st *Partners) SetPartnerWebhook(ctx context.Context, id, webhookURL string) error {
	tag, err := st.db.q(ctx).Exec(ctx, sqlSetPartnerWebhook, id, webhookURL)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return broker.ErrNotFound
	}
	return nil
}
