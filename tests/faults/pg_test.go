package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// privatePG is a throwaway PostgreSQL cluster of one test, which the test
// may stop and start at will: the shared cluster serves other packages'
// tests in parallel and must never be stopped.
type privatePG struct {
	bindir string
	dir    string // holds data/ and run/; removed at the end
	data   string
	port   int
}

// startPrivatePG creates a cluster in a temporary directory (fsync on, so
// an immediate stop loses nothing committed), starts it on a free loopback
// port, and stops and removes it when the test ends.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "scripts", "pg.sh"), "bindir").Output()
	bindir := strings.TrimSpace(string(out))
	if err != nil || bindir == "" {
		missing(t, "no PostgreSQL binaries (scripts/pg.sh bindir found no initdb)")
	}
	// The server refuses to run as root: as root it runs as the postgres
	// user, which must be able to reach its directory.
	root := os.Geteuid() == 0
	var uid, gid int
	if root {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root but there is no postgres user to run PostgreSQL as (scripts/pg.sh start creates it)")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			missing(t, "running as root but runuser is missing to run PostgreSQL as the postgres user")
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	dir, err := os.MkdirTemp("", "sieve-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &privatePG{bindir: bindir, dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(pg.data, "postmaster.pid")); err == nil {
			_ = pg.ctl("stop", "-m", "immediate", "-w", "-t", "30")
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "postgres.log")); err == nil {
				t.Logf("--- last lines of the private PostgreSQL log ---\n%s", lastN(string(b), 30))
			}
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	for _, d := range []string{pg.data, run} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if root {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The log file is written by pg_ctl as the server's user.
	logFile := filepath.Join(dir, "postgres.log")
	if err := os.WriteFile(logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if root {
		if err := os.Chown(logFile, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := pg.command("initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
		"--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.port = freePort(t)
	conf := fmt.Sprintf(`
# private cluster of a fault test
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
synchronous_commit = on
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
logging_collector = off
`, pg.port, run)
	f, err := os.OpenFile(filepath.Join(pg.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	pg.start(t)
	return pg
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(pgtest.FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// command runs a PostgreSQL program, as the postgres user when we are root.
func (pg *privatePG) command(prog string, args ...string) *exec.Cmd {
	bin := filepath.Join(pg.bindir, prog)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = "/" // the postgres user may not be able to read the test's directory
	return cmd
}

func (pg *privatePG) ctl(args ...string) error {
	cmd := pg.command("pg_ctl", append([]string{"-D", pg.data}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// url is the URL of database db on this cluster.
func (pg *privatePG) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// start starts the server and waits until it accepts connections.
func (pg *privatePG) start(t *testing.T) {
	t.Helper()
	if err := pg.ctl("start", "-w", "-t", "120", "-l", filepath.Join(pg.dir, "postgres.log")); err != nil {
		t.Fatal(err)
	}
}

// crash stops the server the hard way (pg_ctl stop -m immediate): no
// checkpoint, in-flight transactions gone, crash recovery on next start.
func (pg *privatePG) crash(t *testing.T) {
	t.Helper()
	if err := pg.ctl("stop", "-m", "immediate", "-w", "-t", "60"); err != nil {
		t.Fatal(err)
	}
}

// accepting reports whether the server answers on its port right now.
func (pg *privatePG) accepting() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", pg.port))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
