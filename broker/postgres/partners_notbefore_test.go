package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/migrations"
)

// TestPartnerNotBefore: disabling a partner and revoking its tokens set
// its not-before, which only ever moves forward; enabling leaves it.
func TestPartnerNotBefore(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustCreate(t, db, testPartner("cli_a", broker.KindAnalytics, ""))
	get := func() time.Time {
		t.Helper()
		p, err := db.Partners().GetPartner(ctx, "cli_a")
		if err != nil {
			t.Fatal(err)
		}
		return p.NotBefore
	}
	if nb := get(); !nb.IsZero() {
		t.Fatalf("a new partner has not-before %v, want none", nb)
	}
	before := time.Now().Add(-time.Second)
	if err := db.Partners().SetPartnerDisabled(ctx, "cli_a", true); err != nil {
		t.Fatal(err)
	}
	disabled := get()
	if disabled.Before(before) {
		t.Fatalf("after disable: not-before %v, want about now", disabled)
	}
	if err := db.Partners().SetPartnerDisabled(ctx, "cli_a", false); err != nil {
		t.Fatal(err)
	}
	if nb := get(); !nb.Equal(disabled) {
		t.Errorf("enable moved not-before from %v to %v", disabled, nb)
	}
	revoked, err := db.Partners().RevokePartnerTokens(ctx, "cli_a")
	if err != nil || !revoked.After(disabled) || !get().Equal(revoked) {
		t.Errorf("revoke: %v (stored %v), %v; want after %v", revoked, get(), err, disabled)
	}
	if _, err := db.Partners().RevokePartnerTokens(ctx, "cli_none"); broker.ErrorCode(err) != broker.ENotFound {
		t.Errorf("revoke unknown: %v, want not found", err)
	}
}

// TestMigrationNotBeforeConvertsDisabled: a partner disabled before
// migration 0014 may hold tokens minted before its disable; the migration
// gives it a not-before, so an enable does not bring them back.
func TestMigrationNotBeforeConvertsDisabled(t *testing.T) {
	admin := pgtest.URL(t)
	ctx := context.Background()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("sieve_test_nb_%d", time.Now().UnixNano())
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") }) //nolint:errcheck
	u.Path = "/" + name
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	older := fstest.MapFS{}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	for _, n := range names {
		if n < "0014" {
			b, _ := fs.ReadFile(migrations.FS, n)
			older[n] = &fstest.MapFile{Data: b}
		}
	}
	if _, err := postgres.MigrateFS(ctx, pool, older); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		id       string
		disabled bool
	}{{"cli_on", false}, {"cli_off", true}} {
		if _, err := pool.Exec(ctx, `INSERT INTO partners (id, name, kind, scopes, disabled, secret_hash)
VALUES ($1, 'P', 'analytics', '{}', $2, 'h')`, p.id, p.disabled); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := postgres.MigrateFS(ctx, pool, migrations.FS)
	if err != nil || len(applied) == 0 || !strings.HasPrefix(applied[0], "0014") {
		t.Fatalf("migrating: %v, %v", applied, err)
	}
	var on, off *time.Time
	if err := pool.QueryRow(ctx, `SELECT (SELECT not_before FROM partners WHERE id = 'cli_on'),
       (SELECT not_before FROM partners WHERE id = 'cli_off')`).Scan(&on, &off); err != nil {
		t.Fatal(err)
	}
	if on != nil || off == nil {
		t.Errorf("after 0014: enabled partner not-before %v (want none), disabled %v (want set)", on, off)
	}
}
