// Package pgtest gives tests a throwaway PostgreSQL database created from
// the real migrations. The server is the project-local cluster started by
// scripts/pg.sh (which `make test` runs), or the one named by
// SIEVE_TEST_DATABASE_URL or DATABASE_URL.
//
// Without a server the tests skip, except when CI or SIEVE_REQUIRE_DB is set
// (make test sets the latter): then they fail, since a skipped integration
// test there is a test that did not run.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/migrations"
)

var (
	once    sync.Once
	baseURL string
	initErr error
)

// URL returns the admin URL of the test server, starting the project-local
// cluster if no URL is configured. It fails or skips t when none is found.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { baseURL, initErr = findServer() })
	if initErr != nil {
		noServer(t, initErr)
		return ""
	}
	return baseURL
}

// Required reports whether a missing PostgreSQL fails the tests rather than
// skipping them: under CI, and under make test (SIEVE_REQUIRE_DB=1).
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("SIEVE_REQUIRE_DB") != ""
}

// noServer fails t when a server is required, else skips it.
func noServer(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("PostgreSQL is required (CI or SIEVE_REQUIRE_DB is set): %v", err)
		return
	}
	t.Skipf("no PostgreSQL: %v", err)
}

func findServer() (string, error) {
	for _, v := range []string{"SIEVE_TEST_DATABASE_URL", "DATABASE_URL"} {
		if u := os.Getenv(v); u != "" {
			return u, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "pg.sh"), "start").Output()
	if err != nil {
		return "", fmt.Errorf("scripts/pg.sh start: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// RepoRoot returns the repository's root: the nearest directory above the
// working directory (a test's package directory) that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago, for
// a server a test starts in another process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// withDB returns u with its database name replaced.
func withDB(u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	p.Path = "/" + name
	return p.String()
}

// migrationsHash names the template after the migrations it holds, so a
// changed migration gets a fresh template.
func migrationsHash() string {
	h := sha256.New()
	names, _ := fs.Glob(migrations.FS, "*.sql")
	slices.Sort(names)
	for _, n := range names {
		b, _ := fs.ReadFile(migrations.FS, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

const templateLock = 0x5349455654 // serialises template creation across test processes

// NewURL creates a fresh, migrated database and returns its URL; it is
// dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	admin := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, withDB(admin, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	tpl := "sieve_tpl_" + migrationsHash()
	if c := cluster(t); c != nil {
		return c.newURL(ctx, t, admin, tpl)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		t.Fatalf("pgtest: lock: %v", err)
	}
	if err := ensureTemplate(ctx, conn, admin, tpl); err != nil {
		conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck
		t.Fatalf("pgtest: template: %v", err)
	}
	name, err := throwawayDB(ctx, t, conn, admin, "sieve_test_", tpl)
	conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return withDB(admin, name)
}

func randomSuffix() string {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

// throwawayDB creates a database named prefix + random from template and
// drops it when the test ends.
func throwawayDB(ctx context.Context, t testing.TB, conn *pgx.Conn, admin, prefix, template string) (string, error) {
	name := prefix + randomSuffix()
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		return "", err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, withDB(admin, "postgres"))
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)) //nolint:errcheck
	})
	return name, nil
}

func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, tpl string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := tpl + "_build"
	conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)) //nolint:errcheck
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDB(admin, building))
	if err != nil {
		return err
	}
	_, err = postgres.MigrateFS(ctx, pool, migrations.FS)
	pool.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, tpl))
	return err
}

// New returns a store on a fresh, migrated database, closed when the test ends.
func New(t testing.TB) *postgres.DB {
	t.Helper()
	u := NewURL(t)
	db, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16, AppName: "sieve-test"})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
