package postgres_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce/postgres"
	"github.com/sieve-broker/sieve/migrations"
)

// TestMigration0010ConvertsPlaintextProviderIDs: on a database an older
// broker filled (0010 not applied, wamids in plaintext), migration 0010
// drops what needs no key, and the one-time conversion hashes the rest,
// re-binding pending inbox rows, exactly once.
func TestMigration0010ConvertsPlaintextProviderIDs(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	if count(`SELECT count(*) FROM app_upgrades WHERE name = $1`, postgres.ProviderIDUpgrade) != 1 {
		t.Fatal("a new database must record the conversion as done")
	}
	// Back to before 0010, with what an older broker stored.
	exec(`DROP TABLE app_upgrades`)
	exec(`DELETE FROM schema_migrations WHERE name LIKE '0010_%'`)
	const (
		wamidOld     = "wamid.HBgMOTE5ODExMTEyMjIyFQIAEhgUM0FBREQzNkIyM0E0RUEwRkI2QTMA"
		wamidRecent  = "wamid.HBgMOTE5ODExMTEyMjIyFQIAEhgUNEFBREQzNkIyM0E0RUEwRkI2QTMA"
		wamidPending = "wamid.HBgMOTE5ODExMTEyMjIyFQIAEhgUNUFBREQzNkIyM0E0RUEwRkI2QTMA"
		wamidGone    = "wamid.HBgMOTE5ODExMTMzMzMzFQIAEhgUNkFBREQzNkIyM0E0RUEwRkI2QTMA"
		wamidSent    = "wamid.HBgMOTE5ODExMTEyMjIyFQIAERgSMEFFOTM1MkYyMDIzMzNBOTc4AA=="
	)
	exec(`INSERT INTO subjects (id) VALUES ('shp_live')`)
	exec(`INSERT INTO subjects (id, erased_at) VALUES ('shp_gone', now())`)
	exec(`INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed, received_at, processed_at) VALUES
		($1, 'shp_live', 'message', '1', '\x01', now() - interval '8 days', now() - interval '8 days'),
		($2, 'shp_live', 'message', '1', '\x02', now() - interval '1 day', now() - interval '1 day')`,
		"m:"+wamidOld, "m:"+wamidRecent)
	exec(`INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed) VALUES
		($1, 'shp_live', 'message', '1', '\x03'), ($2, 'shp_gone', 'message', '1', '\x04')`,
		"m:"+wamidPending, "m:"+wamidGone)
	exec(`INSERT INTO message_status (provider_id, subject_id, status) VALUES
		($1, 'shp_live', 'read'), ($2, 'shp_gone', 'sent'), ('wamid.orphan', NULL, 'sent')`, wamidSent, wamidGone)
	exec(`INSERT INTO outbox (ref, kind, subject_id, status, provider_id, vault_sealed) VALUES
		('msg_live', 'whatsapp', 'shp_live', 'sent', $1, false),
		('msg_gone', 'whatsapp', 'shp_gone', 'sent', $2, false),
		('msg_last', 'whatsapp', 'shp_live', 'sent', $3, true)`, wamidSent, wamidGone, wamidRecent)

	if _, err := bpg.MigrateFS(ctx, pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	// What needed no key is done.
	if n := count(`SELECT count(*) FROM inbox WHERE dedup_key = $1`, "m:"+wamidOld); n != 0 {
		t.Error("a processed event older than 7 days kept its plaintext key")
	}
	if n := count(`SELECT count(*) FROM message_status WHERE subject_id IS NULL OR subject_id = 'shp_gone'`); n != 0 {
		t.Errorf("%d statuses of nobody or of an erased shopper left", n)
	}
	if n := count(`SELECT count(*) FROM outbox WHERE ref IN ('msg_gone', 'msg_last') AND (provider_id IS NOT NULL OR subject_id IS NOT NULL)`); n != 0 {
		t.Errorf("%d outbox rows of an erased shopper or last words keep ids", n)
	}
	if n := count(`SELECT count(*) FROM app_upgrades`); n != 0 {
		t.Fatal("the conversion was recorded as done with plaintext ids left")
	}

	p, err := broker.NewPseudonymizer(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := bpg.Open(ctx, url, bpg.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db := postgres.New(bdb)
	resealed := map[string]string{}
	reseal := func(_ context.Context, subject, oldKey, newKey string, sealed []byte) ([]byte, error) {
		if subject == "shp_gone" {
			return nil, nil // erased: its key is shredded
		}
		resealed[oldKey] = newKey
		return append([]byte("resealed:"), sealed...), nil
	}
	n, err := db.Inbox.UpgradeProviderIDs(ctx, p.ProviderKey, reseal)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("converted %d, want 4 (two inbox keys, a status, an outbox id)", n)
	}
	for _, q := range []string{`SELECT count(*) FROM inbox WHERE dedup_key NOT LIKE 'k:%'`,
		`SELECT count(*) FROM message_status WHERE provider_id NOT LIKE 'k:%'`,
		`SELECT count(*) FROM outbox WHERE provider_id NOT LIKE 'k:%'`} {
		if n := count(q); n != 0 {
			t.Errorf("%s: %d", q, n)
		}
	}
	if n := count(`SELECT count(*) FROM inbox WHERE dedup_key = $1 AND sealed = '\x02'`, p.ProviderKey("shp_live", "m:"+wamidRecent)); n != 1 {
		t.Error("the processed event's key was not hashed (or its payload was touched)")
	}
	if n := count(`SELECT count(*) FROM inbox WHERE dedup_key = $1 AND sealed = $2`, p.ProviderKey("shp_live", "m:"+wamidPending),
		[]byte("resealed:\x03")); n != 1 || resealed["m:"+wamidPending] != p.ProviderKey("shp_live", "m:"+wamidPending) {
		t.Error("the pending event was not re-bound to its new key")
	}
	if n := count(`SELECT count(*) FROM inbox WHERE subject_id = 'shp_gone'`); n != 0 {
		t.Error("the erased shopper's pending event was kept")
	}
	if n := count(`SELECT count(*) FROM message_status WHERE provider_id = $1`, p.ProviderKey("shp_live", wamidSent)); n != 1 {
		t.Error("the status was not hashed")
	}
	if n := count(`SELECT count(*) FROM outbox WHERE ref = 'msg_live' AND provider_id = $1`, p.ProviderKey("shp_live", wamidSent)); n != 1 {
		t.Error("the outbox id was not hashed")
	}
	var dump strings.Builder
	rows, _ := pool.Query(ctx, `SELECT dedup_key FROM inbox UNION ALL SELECT provider_id FROM message_status
		UNION ALL SELECT coalesce(provider_id, '') FROM outbox`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		dump.WriteString(s + "\n")
	}
	rows.Close()
	if strings.Contains(dump.String(), "wamid.") {
		t.Errorf("plaintext ids left:\n%s", dump.String())
	}
	// Once only.
	if n, err := db.Inbox.UpgradeProviderIDs(ctx, p.ProviderKey, reseal); err != nil || n != 0 {
		t.Errorf("second run: %d, %v", n, err)
	}
	if n := count(`SELECT count(*) FROM app_upgrades WHERE name = $1`, postgres.ProviderIDUpgrade); n != 1 {
		t.Errorf("recorded %d times", n)
	}
}
