package postgres_test

import (
	"context"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/postgres"
	"github.com/sieve-broker/sieve/migrations"
)

// TestMigration0019CarriesIndexesOver: on a database an older broker
// filled (one wa_index per shopper), migration 0019 moves every live
// shopper's index into subject_identifiers, so they are all still found,
// keeps none for erased shoppers, and leaves wa_index unused.
func TestMigration0019CarriesIndexesOver(t *testing.T) {
	ctx := context.Background()
	bdb, err := bpg.Open(ctx, pgtest.NewURL(t), bpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db := postgres.New(bdb)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.DB.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := db.DB.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	// Back to before 0019, with what an older broker stored.
	exec(`DROP TABLE subject_identifiers`)
	exec(`ALTER TABLE subjects DROP COLUMN restricted_at`)
	exec(`DELETE FROM schema_migrations WHERE name LIKE '0019_%'`)
	p, err := broker.NewPseudonymizer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	phone, bsuid := p.BlindIndex(commerce.IDPhone, "919811112222"), p.BlindIndex(commerce.IDBSUID, "IN.1410000000000001")
	exec(`INSERT INTO subjects (id, wa_index) VALUES ('shp_phone', $1), ('shp_bsuid', $2)`, phone, bsuid)
	exec(`INSERT INTO subjects (id, erased_at) VALUES ('shp_gone', now())`)

	if _, err := bpg.MigrateFS(ctx, db.DB.Pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	for ix, want := range map[string]string{string(phone): "shp_phone", string(bsuid): "shp_bsuid"} {
		row, err := db.Subjects.SubjectByIndex(ctx, []byte(ix))
		if err != nil || row.ID != want || row.Restricted {
			t.Errorf("after the migration: %q %v, want %s", row.ID, err, want)
		}
	}
	if n := count(`SELECT count(*) FROM subject_identifiers`); n != 2 {
		t.Errorf("%d identifiers, want 2", n)
	}
	if n := count(`SELECT count(*) FROM subjects WHERE wa_index IS NOT NULL`); n != 0 {
		t.Errorf("%d wa_index values left", n)
	}
	// From now on the phone shopper's BSUID joins the same shopper, and
	// an identifier belongs to one shopper only.
	n, err := db.Subjects.LinkIdentifiers(ctx, "shp_phone", []commerce.IdentifierIndex{{Kind: commerce.IDBSUID, Index: p.BlindIndex(commerce.IDBSUID, "IN.1410000000000002")}})
	if err != nil || n != 1 {
		t.Fatalf("link: %d %v", n, err)
	}
	if n, err := db.Subjects.LinkIdentifiers(ctx, "shp_phone", []commerce.IdentifierIndex{{Kind: commerce.IDBSUID, Index: bsuid}}); err != nil || n != 0 {
		t.Errorf("linking another shopper's identifier: %d %v", n, err)
	}
	if _, err := db.Subjects.CreateSubject(ctx, "shp_new", []commerce.IdentifierIndex{{Kind: commerce.IDPhone, Index: phone}}); broker.ErrorCode(err) != broker.EConflict {
		t.Errorf("a shopper created with a taken identifier: %v", err)
	}
	if n := count(`SELECT count(*) FROM subjects WHERE id = 'shp_new'`); n != 0 {
		t.Error("the refused shopper was created anyway")
	}
	if n, err := db.Subjects.LinkIdentifiers(ctx, "shp_gone", []commerce.IdentifierIndex{{Kind: commerce.IDPhone, Index: p.BlindIndex(commerce.IDPhone, "919800000000")}}); err != nil || n != 0 {
		t.Errorf("an identifier linked to an erased shopper: %d %v", n, err)
	}
}

// TestCreateSealedSubject: a new shopper, their identifiers, key, sealed
// identity and jurisdiction are written by one statement, all or nothing.
func TestCreateSealedSubject(t *testing.T) {
	ctx := context.Background()
	db := newStore(t)
	phone := commerce.IdentifierIndex{Kind: commerce.IDPhone, Index: []byte("phone-index-0000000000000000001")}
	bsuid := commerce.IdentifierIndex{Kind: commerce.IDBSUID, Index: []byte("bsuid-index-0000000000000000001")}
	key := broker.WrappedKey{Subject: "shp_a", KeyID: "age-test", Wrapped: []byte("wrapped-a")}
	if err := db.Subjects.CreateSealedSubject(ctx, commerce.NewSubject{ID: "shp_a", Identifiers: []commerce.IdentifierIndex{phone, bsuid},
		Key: key, SealedIdentity: []byte("sealed-a"), Jurisdiction: "GB"}); err != nil {
		t.Fatal(err)
	}
	row, err := db.Subjects.GetSubject(ctx, "shp_a")
	if err != nil {
		t.Fatal(err)
	}
	if string(row.SealedIdentity) != "sealed-a" || row.Jurisdiction != "GB" || row.Erased {
		t.Fatalf("row %+v", row)
	}
	got, err := db.Subjects.SubjectsByIndexes(ctx, [][]byte{phone.Index, bsuid.Index})
	if err != nil || got[string(phone.Index)] != "shp_a" || got[string(bsuid.Index)] != "shp_a" {
		t.Fatalf("indexes %v, %v", got, err)
	}
	if k, err := db.DB.SubjectKeys().GetSubjectKey(ctx, "shp_a"); err != nil || k.KeyID != "age-test" || string(k.Wrapped) != "wrapped-a" {
		t.Fatalf("key %+v, %v", k, err)
	}

	// One identifier taken: a conflict, and not a row of the second shopper.
	other := commerce.IdentifierIndex{Kind: commerce.IDPhone, Index: []byte("phone-index-0000000000000000002")}
	err = db.Subjects.CreateSealedSubject(ctx, commerce.NewSubject{ID: "shp_b", Identifiers: []commerce.IdentifierIndex{other, bsuid},
		Key: broker.WrappedKey{Subject: "shp_b", KeyID: "age-test", Wrapped: []byte("wrapped-b")}, SealedIdentity: []byte("sealed-b")})
	if broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("taken identifier: %v, want EConflict", err)
	}
	if _, err := db.Subjects.GetSubject(ctx, "shp_b"); !broker.IsNotFound(err) {
		t.Fatalf("shopper written on conflict: %v", err)
	}
	if _, err := db.DB.SubjectKeys().GetSubjectKey(ctx, "shp_b"); !broker.IsNotFound(err) {
		t.Fatalf("key written on conflict: %v", err)
	}
	if got, _ := db.Subjects.SubjectsByIndexes(ctx, [][]byte{other.Index}); len(got) != 0 {
		t.Fatalf("identifier written on conflict: %v", got)
	}
	// A key that is not the shopper's is refused before anything is sent.
	err = db.Subjects.CreateSealedSubject(ctx, commerce.NewSubject{ID: "shp_c", Identifiers: []commerce.IdentifierIndex{other},
		Key: key, SealedIdentity: []byte("sealed-c")})
	if err == nil {
		t.Fatal("another shopper's key accepted")
	}
}
