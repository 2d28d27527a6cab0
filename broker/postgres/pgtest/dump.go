package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgTool finds a PostgreSQL client program (pg_dump, pg_restore). Without
// it the test skips, except when CI is set.
func pgTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %s not found: %v", name, err)
		}
		t.Skipf("pgtest: %s not found", name)
	}
	return p
}

// Dump writes a backup of the database at dbURL with the real pg_dump
// (custom format) and returns the file's path, as an operator's nightly
// backup would.
func Dump(t testing.TB, dbURL string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "backup.dump")
	out, err := exec.Command(pgTool(t, "pg_dump"), "--format=custom", "--file="+file, "--dbname="+dbURL).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	return file
}

// Restore restores a Dump into a new, empty database with the real
// pg_restore and returns its URL; the database is dropped when the test
// ends.
func Restore(t testing.TB, file string) string {
	t.Helper()
	admin := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, withDB(admin, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	name, err := throwawayDB(ctx, t, conn, admin, "sieve_restored_", "template0")
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u := withDB(admin, name)
	out, err := exec.Command(pgTool(t, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname="+u, file).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	return u
}
