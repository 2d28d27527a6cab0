package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

func testPartner(id string, kind broker.PartyKind, store string) broker.Partner {
	return broker.Partner{ID: id, Name: "Partner " + id, Kind: kind,
		Scopes: []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite}, Store: store,
		SecretHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}
}

func mustCreate(t *testing.T, db *postgres.DB, p broker.Partner) {
	t.Helper()
	if err := db.Partners().CreatePartner(context.Background(), p); err != nil {
		t.Fatalf("CreatePartner(%s): %v", p.ID, err)
	}
}

func TestPartnerRoundTrip(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	created := time.Date(2026, 3, 1, 12, 30, 0, 123456000, time.UTC)
	full := broker.Partner{ID: "cli_full", Name: "FreshMart", Kind: broker.KindRetailer,
		Scopes: []string{broker.ScopeOrdersRead, broker.ScopeDeliveryRead}, Store: "1234567890",
		WebhookURL: "https://partner.example/hooks", CreatedAt: created,
		SecretHash: "$argon2id$v=19$m=19456,t=2,p=1$abc$def", SealedSecret: []byte{1, 2, 3}}
	bare := broker.Partner{ID: "cli_bare", Name: "Quick Logistics", Kind: broker.KindLogistics,
		SecretHash: "h"}
	mustCreate(t, db, full)
	before := time.Now()
	mustCreate(t, db, bare)

	got, err := db.Partners().GetPartner(ctx, full.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, created)
	}
	got.CreatedAt = full.CreatedAt
	if !equalPartner(got, full) {
		t.Errorf("GetPartner = %+v, want %+v", got, full)
	}

	got, err = db.Partners().GetPartner(ctx, bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A zero CreatedAt means "now", set by the database.
	if got.CreatedAt.Before(before.Add(-time.Minute)) || got.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("default CreatedAt = %v, want about now", got.CreatedAt)
	}
	if got.Store != "" || got.WebhookURL != "" || got.SealedSecret != nil || len(got.Scopes) != 0 || got.Scopes == nil {
		t.Errorf("bare partner = %+v: want empty store, webhook, sealed secret and a non-nil empty scope list", got)
	}

	list, err := db.Partners().ListPartners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != full.ID || list[1].ID != bare.ID {
		t.Errorf("ListPartners = %v, want [cli_full cli_bare] in creation order", ids(list))
	}
}

func equalPartner(a, b broker.Partner) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Kind == b.Kind && slices.Equal(a.Scopes, b.Scopes) &&
		a.Store == b.Store && a.WebhookURL == b.WebhookURL && a.Disabled == b.Disabled &&
		a.CreatedAt.Equal(b.CreatedAt) && a.SecretHash == b.SecretHash && slices.Equal(a.SealedSecret, b.SealedSecret)
}

func ids(ps []broker.Partner) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestPartnerErrors(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustCreate(t, db, testPartner("cli_a", broker.KindRetailer, "111"))

	tests := []struct {
		name string
		err  error
		code string
	}{
		{"get unknown", func() error { _, err := db.Partners().GetPartner(ctx, "cli_none"); return err }(), broker.ENotFound},
		{"duplicate id", db.Partners().CreatePartner(ctx, testPartner("cli_a", broker.KindLogistics, "")), broker.EConflict},
		{"bad kind", db.Partners().CreatePartner(ctx, testPartner("cli_k", "shopper", "")), broker.EInvalid},
		{"store on a non-retailer", db.Partners().CreatePartner(ctx, testPartner("cli_s", broker.KindLogistics, "111")), broker.EInvalid},
		{"second enabled retailer for a store", db.Partners().CreatePartner(ctx, testPartner("cli_b", broker.KindRetailer, "111")), broker.EConflict},
		{"disable unknown", db.Partners().SetPartnerDisabled(ctx, "cli_none", true), broker.ENotFound},
		{"set secret of unknown", db.Partners().SetPartnerSecret(ctx, "cli_none", "h", nil), broker.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := broker.ErrorCode(tt.err); got != tt.code {
				t.Errorf("error %v: code %q, want %q", tt.err, got, tt.code)
			}
		})
	}
}

func TestPartnerUpdates(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustCreate(t, db, testPartner("cli_a", broker.KindAnalytics, ""))

	if err := db.Partners().SetPartnerDisabled(ctx, "cli_a", true); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Partners().GetPartner(ctx, "cli_a"); err != nil || !p.Disabled {
		t.Fatalf("after disable: %+v, %v", p, err)
	}
	if err := db.Partners().SetPartnerDisabled(ctx, "cli_a", false); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Partners().GetPartner(ctx, "cli_a"); err != nil || p.Disabled {
		t.Fatalf("after enable: %+v, %v", p, err)
	}

	if err := db.Partners().SetPartnerSecret(ctx, "cli_a", "new-hash", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	p, err := db.Partners().GetPartner(ctx, "cli_a")
	if err != nil || p.SecretHash != "new-hash" || string(p.SealedSecret) != "sealed" {
		t.Fatalf("after SetPartnerSecret: hash %q sealed %q, %v", p.SecretHash, p.SealedSecret, err)
	}
}

func TestPartnerWritesJoinTransaction(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.InTx(ctx, func(ctx context.Context) error {
		if err := db.Partners().CreatePartner(ctx, testPartner("cli_tx", broker.KindPayments, "")); err != nil {
			return err
		}
		if _, err := db.Partners().GetPartner(ctx, "cli_tx"); err != nil {
			return err // visible inside its own transaction
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	if _, err := db.Partners().GetPartner(ctx, "cli_tx"); !broker.IsNotFound(err) {
		t.Fatalf("partner created in a rolled-back transaction: GetPartner = %v", err)
	}
}

func TestRetailerForStore(t *testing.T) {
	type step struct {
		create  *broker.Partner
		disable string
	}
	retailer := func(id, store string) step { p := testPartner(id, broker.KindRetailer, store); return step{create: &p} }
	other := func(id string, kind broker.PartyKind) step { p := testPartner(id, kind, ""); return step{create: &p} }
	disable := func(id string) step { return step{disable: id} }

	tests := []struct {
		name  string
		steps []step
		store string
		want  string // "" means ENotFound
	}{
		{"no partners", nil, "111", ""},
		{"no retailers", []step{other("cli_l", broker.KindLogistics), other("cli_p", broker.KindPayments)}, "111", ""},
		{"only retailer is disabled", []step{retailer("cli_r1", "111"), disable("cli_r1")}, "111", ""},
		{"first retailer when none names the store",
			[]step{other("cli_l", broker.KindLogistics), retailer("cli_r1", ""), retailer("cli_r2", "222")}, "111", "cli_r1"},
		{"first retailer even if it names another store",
			[]step{retailer("cli_r1", "222"), retailer("cli_r2", "")}, "111", "cli_r1"},
		{"the store's retailer beats the first",
			[]step{retailer("cli_r1", ""), retailer("cli_r2", "333"), retailer("cli_r3", "111")}, "111", "cli_r3"},
		{"empty store falls back to the first",
			[]step{retailer("cli_r1", ""), retailer("cli_r2", "111")}, "", "cli_r1"},
		{"disabled store retailer falls back to the first enabled",
			[]step{retailer("cli_r1", ""), retailer("cli_r2", "111"), disable("cli_r2")}, "111", "cli_r1"},
		{"disabled first retailer is skipped",
			[]step{retailer("cli_r1", ""), retailer("cli_r2", "222"), disable("cli_r1")}, "111", "cli_r2"},
		{"a disabled store retailer may be replaced",
			[]step{retailer("cli_r1", ""), retailer("cli_r2", "111"), disable("cli_r2"), retailer("cli_r3", "111")}, "111", "cli_r3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			ctx := context.Background()
			for _, s := range tt.steps {
				if s.create != nil {
					mustCreate(t, db, *s.create)
				} else if err := db.Partners().SetPartnerDisabled(ctx, s.disable, true); err != nil {
					t.Fatal(err)
				}
			}
			p, err := db.Partners().RetailerForStore(ctx, tt.store)
			switch {
			case tt.want == "" && !broker.IsNotFound(err):
				t.Fatalf("RetailerForStore = %s, %v; want ENotFound", p.ID, err)
			case tt.want != "" && (err != nil || p.ID != tt.want):
				t.Fatalf("RetailerForStore = %q, %v; want %q", p.ID, err, tt.want)
			}
		})
	}
}

func TestReenablingRetailerForTakenStoreConflicts(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustCreate(t, db, testPartner("cli_r1", broker.KindRetailer, "111"))
	if err := db.Partners().SetPartnerDisabled(ctx, "cli_r1", true); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, testPartner("cli_r2", broker.KindRetailer, "111"))
	if err := db.Partners().SetPartnerDisabled(ctx, "cli_r1", false); broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("re-enable with the store taken = %v, want EConflict", err)
	}
}
