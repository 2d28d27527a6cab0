package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/migrations"
)

// A Citus cluster (SPEC §12) is recognised by the citus extension in the
// database the test URL names, with its workers registered there (make
// test passes scripts/citus.sh url). A throwaway database on Citus must
// exist on every node, with the extension and the node registrations: the
// coordinator connects to a worker's database of the same name. So the
// template is built once per migration set on every node at once (the
// schema distributed through the coordinator, the shards landing in the
// workers' copies), and each test database is a copy of the template made
// on every node: each node's copy is consistent with the others' because
// the templates were. (Citus's citus.enable_create_database_propagation
// would create the database on the workers, but not from a template, so a
// test database would cost a full migration and distribution.)
type citusCluster struct {
	nodes []string // admin URLs of the coordinator (first) and the workers, database postgres
}

var (
	citusOnce sync.Once
	citusC    *citusCluster
	citusErr  error
)

// IsCitus reports whether the test server is a Citus coordinator.
func IsCitus(t testing.TB) bool {
	t.Helper()
	return cluster(t) != nil
}

// RequireCitus fails t when SIEVE_REQUIRE_CITUS is set (make test's Citus
// run) and the test server is not Citus; otherwise it skips t on plain
// PostgreSQL. For tests that assert something only a cluster has.
func RequireCitus(t testing.TB) {
	t.Helper()
	if IsCitus(t) {
		return
	}
	if os.Getenv("SIEVE_REQUIRE_CITUS") != "" {
		t.Fatal("SIEVE_REQUIRE_CITUS is set but the test server is not a Citus coordinator")
	}
	t.Skip("not a Citus cluster (make test runs this on scripts/citus.sh's cluster)")
}

func cluster(t testing.TB) *citusCluster {
	t.Helper()
	admin := URL(t)
	citusOnce.Do(func() { citusC, citusErr = findCluster(admin) })
	if citusErr != nil {
		t.Fatalf("pgtest: %v", citusErr)
	}
	return citusC
}

func findCluster(admin string) (*citusCluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var has bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&has); err != nil || !has {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT nodename, nodeport FROM pg_dist_node
		WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid`)
	if err != nil {
		return nil, fmt.Errorf("citus nodes: %w", err)
	}
	c := &citusCluster{nodes: []string{withDB(admin, "postgres")}}
	for rows.Next() {
		var host string
		var port int
		if err := rows.Scan(&host, &port); err != nil {
			return nil, err
		}
		u, _ := url.Parse(admin)
		u.Host = net.JoinHostPort(host, strconv.Itoa(port))
		u.Path = "/postgres"
		c.nodes = append(c.nodes, u.String())
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(c.nodes) < 2 {
		return nil, fmt.Errorf("the Citus coordinator at %s has no workers (scripts/citus.sh start registers them)", admin)
	}
	return c, nil
}

// each runs f on a connection to every node's postgres database.
func (c *citusCluster) each(ctx context.Context, f func(i int, conn *pgx.Conn) error) error {
	for i, n := range c.nodes {
		conn, err := pgx.Connect(ctx, n)
		if err != nil {
			return err
		}
		err = f(i, conn)
		conn.Close(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

// quiesce ends the sessions other than ours in db (Citus's maintenance
// daemon, a finished test's pooled connections from the coordinator), so
// that it can be copied or renamed.
func quiesce(ctx context.Context, conn *pgx.Conn, db string) error {
	_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, db)
	return err
}

// quiesced runs stmt (a copy or a rename of db) once db has no other
// sessions. Citus's maintenance daemon reconnects to a database with the
// extension on its own schedule, so it can slip in between the quiesce and
// the statement ("being accessed by other users", SQLSTATE 55006): then
// the pair is tried again, a few times.
func quiesced(ctx context.Context, conn *pgx.Conn, db, stmt string) error {
	var err error
	for attempt := 1; attempt <= 20; attempt++ {
		if err = quiesce(ctx, conn, db); err != nil {
			return err
		}
		if _, err = conn.Exec(ctx, stmt); err == nil {
			return nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
	return err
}

func (c *citusCluster) newURL(ctx context.Context, t testing.TB, admin, tpl string) string {
	t.Helper()
	coord, err := pgx.Connect(ctx, c.nodes[0])
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer coord.Close(ctx)
	if _, err := coord.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		t.Fatalf("pgtest: lock: %v", err)
	}
	defer coord.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck
	if err := c.ensureTemplate(ctx, admin, tpl); err != nil {
		t.Fatalf("pgtest: Citus template: %v", err)
	}
	return c.copyDB(ctx, t, admin, tpl, "sieve_test_"+randomSuffix())
}

// copyDB copies src to name on every node and drops the copies when the
// test ends.
func (c *citusCluster) copyDB(ctx context.Context, t testing.TB, admin, src, name string) string {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The coordinator's copy first, and the workers' only once it is
		// gone. WITH (FORCE) ends client sessions but not Citus's
		// maintenance daemon (a background worker), so a plain drop can
		// fail with 55006; a coordinator database left behind while its
		// workers' copies are dropped has a daemon that reconnects to the
		// missing databases many times a second, and a suite's worth of
		// them slows the whole cluster to a crawl.
		err := c.each(ctx, func(_ int, conn *pgx.Conn) error {
			return quiesced(ctx, conn, name, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
		})
		if err != nil {
			t.Logf("pgtest: drop the Citus test database %s: %v", name, err)
		}
	})
	err := c.each(ctx, func(_ int, conn *pgx.Conn) error {
		return quiesced(ctx, conn, src, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, src))
	})
	if err != nil {
		t.Fatalf("pgtest: create database on Citus: %v", err)
	}
	return withDB(admin, name)
}

// Clone copies the test database src (a name) to a new database and returns
// its URL; it is dropped when the test ends. On Citus the copy is made on
// every node, after ending the sessions still open on src (a plain
// PostgreSQL refuses to copy a database in use, and on Citus the
// coordinator's maintenance daemon and pooled connections are always in
// it). Callers close their own pools on src first.
func Clone(t testing.TB, src string) string {
	t.Helper()
	admin := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := fmt.Sprintf("%s_c%s", src, randomSuffix()[:6])
	if c := cluster(t); c != nil {
		return c.copyDB(ctx, t, admin, src, name)
	}
	conn, err := pgx.Connect(ctx, withDB(admin, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, src)); err != nil {
		t.Fatalf("pgtest: copy %s: %v", src, err)
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
	return withDB(admin, name)
}

// ensureTemplate builds tpl on every node: the database and the extension
// everywhere, the nodes registered on the coordinator, the migrations run
// through the coordinator; then renamed into place on every node, the
// coordinator last (its name is what "exists" means).
func (c *citusCluster) ensureTemplate(ctx context.Context, admin, tpl string) error {
	coord, err := pgx.Connect(ctx, c.nodes[0])
	if err != nil {
		return err
	}
	var exists bool
	err = coord.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tpl).Scan(&exists)
	coord.Close(ctx)
	if err != nil || exists {
		return err
	}
	building := tpl + "_build"
	err = c.each(ctx, func(_ int, conn *pgx.Conn) error {
		for _, db := range []string{building, tpl} {
			if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db)); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
			return err
		}
		b, err := pgx.Connect(ctx, withNodeDB(conn, building))
		if err != nil {
			return err
		}
		defer b.Close(ctx)
		_, err = b.Exec(ctx, "CREATE EXTENSION citus")
		return err
	})
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDB(admin, building))
	if err != nil {
		return err
	}
	err = func() error {
		defer pool.Close()
		cu, _ := url.Parse(admin)
		host, port, _ := net.SplitHostPort(cu.Host)
		if _, err := pool.Exec(ctx, "SELECT citus_set_coordinator_host($1, $2)", host, mustAtoi(port)); err != nil {
			return err
		}
		for _, n := range c.nodes[1:] {
			wu, _ := url.Parse(n)
			h, p, _ := net.SplitHostPort(wu.Host)
			if _, err := pool.Exec(ctx, "SELECT citus_add_node($1, $2)", h, mustAtoi(p)); err != nil {
				return err
			}
		}
		_, err := postgres.MigrateFS(ctx, pool, migrations.FS)
		return err
	}()
	if err != nil {
		return err
	}
	// Workers first: a half-renamed template is rebuilt, since the
	// coordinator's name is the one checked.
	for i := len(c.nodes) - 1; i >= 0; i-- {
		conn, err := pgx.Connect(ctx, c.nodes[i])
		if err != nil {
			return err
		}
		err = quiesced(ctx, conn, building, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, tpl))
		conn.Close(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

func withNodeDB(conn *pgx.Conn, db string) string {
	cfg := conn.Config()
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", url.User(cfg.User).String(),
		net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), db)
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
