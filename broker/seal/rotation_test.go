package seal_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/seal"
)

const day = 24 * time.Hour

func openDB(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// pgTool runs a PostgreSQL client tool (pg_dump, pg_restore), skipping the
// test where they are not installed.
func pgTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// A backup taken before an erasure, restored after the identity that wrapped
// the erased shopper's key is retired, no longer opens that shopper's
// records; until then it does (the bound the documentation states). The
// live database keeps every other shopper readable throughout.
func TestRotationRetiresIdentitiesSoBackupsForgetErasedShoppers(t *testing.T) {
	liveURL := pgtest.NewURL(t)
	db := openDB(t, liveURL)
	kr := newKeyring(t)
	s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	bindE := broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: "shp_erased"}
	bindK := broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: "shp_kept"}
	ptE, ptK := []byte(`{"wa_id":"919845000001","name":"Asha"}`), []byte(`{"wa_id":"919845000002","name":"Ravi"}`)
	sealedE := mustSeal(t, s, "shp_erased", bindE, ptE)
	sealedK := mustSeal(t, s, "shp_kept", bindK, ptK)
	secret, err := s.SealSecret(ctx, "partner:p1", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	first := kr.Current()

	// The nightly backup, taken before the erasure.
	dump := filepath.Join(t.TempDir(), "backup.dump")
	pgTool(t, "pg_dump", "--format=custom", "--file="+dump, liveURL)

	if err := s.Shred(ctx, "shp_erased"); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	now := t0
	rot := &seal.Rotation{Sealer: s, Every: 7 * day, BackupRetention: 30 * day, Lock: db,
		Now: func() time.Time { return now }}
	run := func(at time.Duration) seal.RotationResult {
		t.Helper()
		now = t0.Add(at)
		res, err := rot.Run(ctx, false)
		if err != nil {
			t.Fatalf("Run at +%s: %v", at, err)
		}
		if res.Skipped {
			t.Fatalf("Run at +%s skipped", at)
		}
		return res
	}
	if res := run(time.Hour); res.Rotated != "" || len(res.Retired) != 0 || kr.Current() != first {
		t.Fatalf("an identity an hour old was rotated or retired: %+v", res)
	}
	res := run(7 * day)
	if res.Rotated == "" || res.Rotated == first || kr.Current() != res.Rotated || len(res.Retired) != 0 {
		t.Fatalf("after 7 days: %+v, current %s (first %s)", res, kr.Current(), first)
	}
	if res.Rewrapped != 2 { // shp_kept and the vault key; shp_erased has none
		t.Errorf("re-wrapped %d keys, want 2", res.Rewrapped)
	}
	counts, err := db.SubjectKeys().CountSubjectKeys(ctx)
	if err != nil || counts[first] != 0 || counts[res.Rotated] != 2 {
		t.Fatalf("keys by identity after the rotation: %v, %v", counts, err)
	}

	restore := func(t *testing.T) *seal.Sealer {
		t.Helper()
		url := pgtest.NewURL(t)
		pgTool(t, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname="+url, dump)
		return newSealer(t, kr, openDB(t, url).SubjectKeys(), seal.Options{})
	}
	// Before the retirement, the pre-erasure backup still opens the erased
	// shopper: the hole this schedule closes, and why the bound is what it is.
	t.Run("before retirement the backup still opens", func(t *testing.T) {
		mustOpen(t, restore(t), "shp_erased", bindE, sealedE, ptE)
	})

	if res := run(7*day + 30*day - time.Minute); len(res.Retired) != 0 || res.Rotated == "" {
		t.Fatalf("just under 30 days after it was superseded: %+v (want a rotation, no retirement)", res)
	}
	latest := kr.Current()
	// Another process, which loaded the keyring before the retirement.
	other, err := seal.LoadKeyring(filepath.Dir(kr.Dir()), false)
	if err != nil {
		t.Fatal(err)
	}
	res = run(7*day + 30*day)
	if !slices.Equal(res.Retired, []string{first}) {
		t.Fatalf("30 days after it was superseded: retired %v, want [%s]", res.Retired, first)
	}
	if slices.Contains(kr.IDs(), first) {
		t.Fatalf("keyring still holds %s", first)
	}
	if _, err := os.Stat(filepath.Join(kr.Dir(), first+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("identity file of %s survives: %v", first, err)
	}
	record, err := os.ReadFile(filepath.Join(kr.Dir(), first+".retired"))
	if err != nil || strings.Contains(string(record), "AGE-SECRET-KEY") || !strings.Contains(string(record), "age1") {
		t.Fatalf("retired record: %q, %v", record, err)
	}

	t.Run("after retirement the backup no longer opens the erased shopper", func(t *testing.T) {
		restored := restore(t)
		if _, err := restored.Open(ctx, "shp_erased", bindE, sealedE); !errors.Is(err, seal.ErrUnknownIdentity) {
			t.Fatalf("Open of the erased shopper from the pre-erasure backup = %v, want ErrUnknownIdentity", err)
		}
	})
	t.Run("live shoppers stay readable", func(t *testing.T) {
		fresh := newSealer(t, other, db.SubjectKeys(), seal.Options{})
		// Its own run of the schedule (the lock is free, nothing is due)
		// drops the retired identity from its memory.
		otherRot := &seal.Rotation{Sealer: fresh, Every: 7 * day, BackupRetention: 30 * day, Lock: db,
			Now: func() time.Time { return now }}
		if res, err := otherRot.Run(ctx, false); err != nil || res.Rotated != "" || len(res.Retired) != 0 {
			t.Fatalf("the other process's run: %+v, %v", res, err)
		}
		if other.Current() != kr.Current() || slices.Contains(other.IDs(), first) || !slices.Contains(other.IDs(), latest) {
			t.Fatalf("another process sees current %s, ids %v", other.Current(), other.IDs())
		}
		mustOpen(t, fresh, "shp_kept", bindK, sealedK, ptK)
		if got, err := fresh.OpenSecret(ctx, "partner:p1", secret); err != nil || string(got) != "s3cret" {
			t.Fatalf("vault secret after rotation: %q, %v", got, err)
		}
		if _, err := fresh.Open(ctx, "shp_erased", bindE, sealedE); !errors.Is(err, seal.ErrErased) {
			t.Fatalf("erased shopper in the live database: %v", err)
		}
	})
}

// Several processes run the schedule; the advisory lock lets one work and
// the others skip, and a forced run (brokerctl keys rotate) rotates at once.
func TestRotationTakesTheLock(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	mustSeal(t, s, "shp_1", addr, []byte("x"))
	rot := &seal.Rotation{Sealer: s, Every: 7 * day, BackupRetention: 30 * day, Lock: db}
	release, ok, err := db.TryLock(ctx, seal.RotationLock)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	res, err := rot.Run(ctx, true)
	if err != nil || !res.Skipped || res.Rotated != "" {
		t.Fatalf("Run while another process holds the lock = %+v, %v; want skipped", res, err)
	}
	release()
	first := kr.Current()
	res, err = rot.Run(ctx, true)
	if err != nil || res.Skipped || res.Rotated == "" || res.Rotated == first || res.Rewrapped != 1 {
		t.Fatalf("forced Run = %+v, %v", res, err)
	}
	for _, bad := range []seal.Rotation{{Sealer: s}, {Sealer: s, Every: day, BackupRetention: -1}, {Every: day}} {
		if _, err := bad.Run(ctx, false); err == nil {
			t.Errorf("Run with %+v succeeded", bad)
		}
	}
}
