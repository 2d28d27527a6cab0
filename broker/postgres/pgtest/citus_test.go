package pgtest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCitusDropsEveryCopy: a test database on Citus is gone from every node
// when its test ends, even with the coordinator's maintenance daemon in it
// (DROP DATABASE … WITH (FORCE) alone does not end that daemon). A
// coordinator database left behind while its workers' copies are dropped
// has a daemon that reconnects to them many times a second; a suite's
// worth of those once slowed the cluster until a test's timing bound broke.
func TestCitusDropsEveryCopy(t *testing.T) {
	RequireCitus(t)
	ctx := context.Background()
	var name string
	t.Run("use", func(t *testing.T) {
		db := New(t)
		u, err := url.Parse(db.Pool.Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		// Wait for the maintenance daemon, so the drop has to end it.
		deadline := time.Now().Add(20 * time.Second)
		for {
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND backend_type LIKE 'Citus Maintenance%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no Citus maintenance daemon in the test database after 20 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if name == "" {
		t.Fatal("the subtest named no database")
	}
	err := cluster(t).each(ctx, func(i int, conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			t.Errorf("node %d still holds %s after its test ended", i, name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
