// Package witnesstest runs a real, independently written tlog-witness on
// loopback for tests: litewitness from filippo.io/torchwood v0.6.1,
// installed into the project's bin/ by scripts/witness.sh (which this
// package runs when the binaries are missing). Its Ed25519 key is held by
// an ssh-agent served in process on a private unix socket (litewitness
// signs through the ssh-agent protocol); its state is a SQLite file in a
// temporary directory, set up with the project's witnessctl.
package witnesstest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Witness is a running litewitness.
type Witness struct {
	Name string // its cosignature key name
	VKey string // its verifier key, as litewitness printed it
	URL  string // http://127.0.0.1:PORT

	cmd    *exec.Cmd
	bin    string
	db     string
	origin string
	done   chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

var installOnce sync.Once
var installErr error

// binDir returns the project's bin/ directory, installing the witness
// there first if needed.
func binDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("witnesstest: no go.mod above the test's directory")
		}
		dir = parent
	}
	installOnce.Do(func() {
		out, err := exec.Command(filepath.Join(dir, "scripts", "witness.sh")).CombinedOutput()
		if err != nil {
			installErr = fmt.Errorf("scripts/witness.sh: %v\n%s", err, out)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return filepath.Join(dir, "bin")
}

var vkeyRE = regexp.MustCompile(`vkey=(\S+)`)

// Start runs a litewitness named name that knows the log origin (empty:
// no log, so it answers every checkpoint "unknown log"), without a key
// for it until AddLogKey. It stops at the end of the test.
func Start(t testing.TB, name, origin string) *Witness {
	t.Helper()
	bin := binDir(t)
	// A short directory: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "w.db")
	if origin != "" {
		ctl(t, bin, "add-log", "-db", db, "-origin", origin)
	}
	fp := serveAgent(t, filepath.Join(dir, "agent.sock"))
	addr := freePort(t)
	w := &Witness{URL: "http://" + addr, done: make(chan struct{}), bin: bin, db: db, origin: origin}
	w.cmd = exec.Command(filepath.Join(bin, "litewitness"), "-name", name, "-db", db,
		"-ssh-agent", filepath.Join(dir, "agent.sock"), "-key", fp, "-listen", addr)
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	vkey := make(chan string, 1)
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.log.WriteString(line + "\n")
			w.mu.Unlock()
			if m := vkeyRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "verifier key") {
				select {
				case vkey <- m[1]:
				default:
				}
			}
		}
		w.cmd.Wait() //nolint:errcheck
	}()
	t.Cleanup(w.Stop)
	select {
	case w.VKey = <-vkey:
	case <-w.done:
		t.Fatalf("litewitness exited at start:\n%s", w.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("litewitness printed no verifier key:\n%s", w.Log())
	}
	w.Name, _, _ = strings.Cut(w.VKey, "+")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("litewitness does not listen on %s:\n%s", addr, w.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// AddLogKey lets the witness verify the log's checkpoints: vkey is the
// log's note verifier key (witnessctl add-key, while litewitness runs).
func (w *Witness) AddLogKey(t testing.TB, vkey string) {
	t.Helper()
	ctl(t, w.bin, "add-key", "-db", w.db, "-origin", w.origin, "-key", vkey)
}

func ctl(t testing.TB, bin string, args ...string) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(bin, "witnessctl"), args...).CombinedOutput(); err != nil {
		t.Fatalf("witnessctl %s: %v\n%s", args[0], err, out)
	}
}

// PolicyLine is the witness's line in a witness policy, under label.
func (w *Witness) PolicyLine(label string) string {
	return fmt.Sprintf("witness %s %s %s\n", label, w.VKey, w.URL)
}

// Stop ends the witness (it stays down).
func (w *Witness) Stop() {
	if w.cmd == nil || w.cmd.Process == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		w.cmd.Process.Kill() //nolint:errcheck
		<-w.done
	}
}

// Log returns what litewitness wrote to stderr so far.
func (w *Witness) Log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.String()
}

// serveAgent serves an ssh-agent holding a fresh Ed25519 key on a unix
// socket at path until the test ends, and returns the key's SHA256
// fingerprint (litewitness's -key).
func serveAgent(t testing.TB, path string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
					return
				}
				continue
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(kr, c) //nolint:errcheck
			}()
		}
	}()
	return ssh.FingerprintSHA256(pub)
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// DeadURL is a loopback URL where nothing listens: a witness that is down.
func DeadURL(t testing.TB) string {
	return "http://" + freePort(t)
}
