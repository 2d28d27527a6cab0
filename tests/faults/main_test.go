package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// The binaries under test, built once by TestMain.
var (
	binDir   string // where brokerd, brokerctl and wasim were built
	repoRoot string
	// needErr, when set, is why the binaries could not be built for a
	// reason outside the code (no Go toolchain): the tests skip on it, or
	// fail when CI is set.
	needErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("faults: skipped in -short mode (the fault tests run the real binaries for minutes)")
		os.Exit(0)
	}
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	root, err := pgtest.RepoRoot()
	if err != nil {
		return 0, err
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "sieve-faults-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = dir
	gobin, err := exec.LookPath("go")
	if err != nil {
		needErr = fmt.Errorf("no Go toolchain on PATH to build the binaries: %w", err)
		return m.Run(), nil
	}
	start := time.Now()
	build := exec.Command(gobin, "build", "-o", dir+string(filepath.Separator),
		"./cmd/brokerd", "./cmd/brokerctl", "./cmd/wasim")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		// A broken build is a failure of the code, never a reason to skip.
		return 0, fmt.Errorf("go build of the binaries failed: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "faults: built brokerd, brokerctl and wasim in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run(), nil
}

// requireBinaries skips t (or fails it in CI) when the binaries could not
// be built for a reason outside the code.
func requireBinaries(t *testing.T) {
	t.Helper()
	if needErr != nil {
		missing(t, needErr.Error())
	}
}

// missing reports that something the test needs is not there: a failure in
// CI, where a skipped test is a test that did not run, a skip elsewhere.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("required in CI: %s", why)
	}
	t.Skipf("skipped: %s", why)
}
