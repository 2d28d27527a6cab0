package faults

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestSilentConnectionsAreClosed opens 200 TCP connections to a real
// brokerd that never send a byte (issue 17 held 600 open for over 420 s,
// 643 descriptors): with BROKER_READ_TIMEOUT=1s brokerd must close every
// one of them, give its descriptors back, and keep answering meanwhile.
func TestSilentConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	w := newWorld(t, pgtest.NewURL(t))
	w.brokerctl("keys", "init")
	addr := pgtest.FreeAddr(t)
	b := &brokerd{addr: addr, url: "http://" + addr}
	b.proc = startProc(t, "brokerd", append(w.env(addr), "BROKER_READ_TIMEOUT=1s"), "brokerd")
	if err := b.waitReady(t, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", b.pid())
	fds := func() int {
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			return -1 // no /proc here: the connections' own closing is checked below
		}
		return len(ents)
	}
	before := fds()

	const n = 200
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	start := time.Now()
	time.Sleep(200 * time.Millisecond) // accepted by now; the 1 s deadline has not passed
	held := fds()
	client := &http.Client{Timeout: 5 * time.Second}
	if st := httpStatus(client, b.url+"/healthz"); st != http.StatusOK {
		t.Errorf("healthz while %d connections sit silent: %d", n, st)
	}

	deadline := start.Add(budget(t, 15*time.Second))
	open := 0
	buf := make([]byte, 64)
	for _, c := range conns {
		c.SetReadDeadline(deadline) //nolint:errcheck
		_, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	if open > 0 {
		t.Errorf("%d of %d silent connections still open after %v (BROKER_READ_TIMEOUT=1s)", open, n,
			time.Since(start).Round(time.Second))
	}
	waitFor(t, "brokerd to release the descriptors", 10*time.Second, func() (bool, string) {
		f := fds()
		return f < before+20, fmt.Sprintf("%d descriptors (%d before, %d while held)", f, before, held)
	})
	t.Logf("descriptors: %d before, %d with %d silent connections, %d after; closed within %v",
		before, held, n, fds(), time.Since(start).Round(100*time.Millisecond))
}
