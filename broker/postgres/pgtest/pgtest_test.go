package pgtest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// verdict records whether noServer failed or skipped, without ending the
// test that calls it.
type verdict struct {
	testing.TB
	failed, skipped bool
}

func (v *verdict) Helper()               {}
func (v *verdict) Fatalf(string, ...any) { v.failed = true }
func (v *verdict) Skipf(string, ...any)  { v.skipped = true }

// TestRequireDBFailsInsteadOfSkipping: make test sets SIEVE_REQUIRE_DB, so
// that a PostgreSQL that is not there fails the integration tests as it
// does under CI, instead of letting them skip and the run pass.
func TestRequireDBFailsInsteadOfSkipping(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		fail        bool
	}{{"", "", false}, {"true", "", true}, {"", "1", true}} {
		t.Setenv("CI", tc.ci)
		t.Setenv("SIEVE_REQUIRE_DB", tc.require)
		v := &verdict{TB: t}
		noServer(v, errors.New("scripts/pg.sh start: exit status 1"))
		if v.failed != tc.fail || v.skipped == tc.fail {
			t.Errorf("CI=%q SIEVE_REQUIRE_DB=%q: failed %v skipped %v, want failed %v", tc.ci, tc.require,
				v.failed, v.skipped, tc.fail)
		}
	}
}

// fakeClone copies the repository's Makefile and scripts/pg.sh into a
// directory the postgres user could enter (as pg.sh requires to keep the
// cluster inside the clone), with stubs for the rest.
func fakeClone(t *testing.T, stubs map[string]string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sieve-clone-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range []string{"Makefile", "scripts/pg.sh"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	for f, body := range stubs {
		files[f] = body
	}
	for f, body := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMakeTestFailsWhenPostgresCannotStart: the Makefile took the URL with
// $(shell scripts/pg.sh start), which drops the exit status, so make test
// ran the suite without a database and passed on skips. It must stop, and
// when the database is there, run go test requiring it.
func TestMakeTestFailsWhenPostgresCannotStart(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	goStub := "#!/bin/sh\necho \"go $* REQUIRE=$SIEVE_REQUIRE_DB URL=$SIEVE_TEST_DATABASE_URL\" >>\"$(dirname \"$0\")/../go.log\"\n"
	stubs := map[string]string{
		"scripts/pg.sh":         "#!/bin/sh\necho 'pg.sh: initdb failed' >&2\nexit 1\n",
		"scripts/chromium.sh":   "#!/bin/sh\necho /bin/true\n",
		"scripts/fuzz.sh":       "#!/bin/sh\n",
		"tests/jose/install.sh": "#!/bin/sh\n",
		"scripts/witness.sh":    "#!/bin/sh\n",
		"stub/go":               goStub,
	}
	dir := fakeClone(t, stubs)
	cmd := exec.Command("make", "test", "GO="+filepath.Join(dir, "stub", "go"), "DATABASE_URL=")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "MAKEFLAGS=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("make test passed although PostgreSQL did not start:\n%s", out)
	}
	if !strings.Contains(string(out), "PostgreSQL did not start") {
		t.Errorf("make test does not say why it failed:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "go.log")); err == nil {
		t.Fatalf("go ran without a database: %s", b)
	}

	// With a database: go test runs against it, requiring it.
	const url = "postgres://postgres@127.0.0.1:59999/sieve?sslmode=disable"
	stubs["scripts/pg.sh"] = "#!/bin/sh\necho '" + url + "'\n"
	dir = fakeClone(t, stubs)
	cmd = exec.Command("make", "test", "GO="+filepath.Join(dir, "stub", "go"), "DATABASE_URL=")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "MAKEFLAGS=")
	out, _ = cmd.CombinedOutput()
	log, err := os.ReadFile(filepath.Join(dir, "go.log"))
	if err != nil {
		t.Fatalf("go test did not run: %v\n%s", err, out)
	}
	first := strings.SplitN(string(log), "\n", 2)[0]
	if !strings.HasPrefix(first, "go test ") || !strings.Contains(first, "REQUIRE=1") || !strings.Contains(first, "URL="+url) {
		t.Fatalf("go test ran as %q, want it with SIEVE_REQUIRE_DB=1 and pg.sh's URL", first)
	}
}

var urlPort = regexp.MustCompile(`^postgres://postgres@127\.0\.0\.1:(\d+)/sieve\?sslmode=disable\n$`)

// pgShURL runs the clone's `scripts/pg.sh url` (which starts nothing) and
// returns the port it prints.
func pgShURL(t *testing.T, dir string, env ...string) int {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "scripts", "pg.sh"), "url")
	cmd.Env = append(os.Environ(), "SIEVE_PG_PORT=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.Output()
	m := urlPort.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("pg.sh url: %v: %q", err, out)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

// TestPgShPortPerClone: every clone's cluster bound 55432, so a second
// clone's make test failed with "could not bind". A new cluster's port is
// derived from the clone's path, moves past ports in use, and an existing
// cluster keeps the port recorded in its data directory.
func TestPgShPortPerClone(t *testing.T) {
	ports := map[int]bool{}
	var first string
	for range 3 {
		dir := fakeClone(t, nil)
		p := pgShURL(t, dir)
		if p == 55432 || p < 55433 || p > 59432 {
			t.Fatalf("a new clone's port is %d, want one in 55433-59432", p)
		}
		if again := pgShURL(t, dir); again != p {
			t.Fatalf("the port of one clone changed from %d to %d", p, again)
		}
		ports[p] = true
		if first == "" {
			first = dir
		}
	}
	if len(ports) < 2 {
		t.Fatalf("three clones got one port: %v", ports)
	}

	// Something listens on the derived port: a new cluster goes past it.
	p := pgShURL(t, first)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err == nil {
		defer ln.Close()
		if moved := pgShURL(t, first); moved == p {
			t.Fatalf("pg.sh chose port %d, which is in use", p)
		}
		ln.Close()
	}

	// An existing cluster keeps its recorded port: postgresql.conf (every
	// cluster made before this change says 55432), then sieve.conf.
	data := filepath.Join(first, ".data", "pg")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(data, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("PG_VERSION", "17\n")
	write("postgresql.conf", "# Sieve development cluster\nlisten_addresses = '127.0.0.1'\nport = 55432\n")
	if got := pgShURL(t, first); got != 55432 {
		t.Fatalf("an existing cluster on 55432 is now told %d", got)
	}
	write("sieve.conf", "shared_buffers = 128MB\nport = 57001\n")
	if got := pgShURL(t, first); got != 57001 {
		t.Fatalf("the port recorded in sieve.conf is 57001, pg.sh url says %d", got)
	}
	if got := pgShURL(t, first, "SIEVE_PG_PORT=56789"); got != 56789 {
		t.Fatalf("SIEVE_PG_PORT=56789 gave %d", got)
	}
}
