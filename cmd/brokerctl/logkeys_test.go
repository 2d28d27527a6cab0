package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// keyCtl runs brokerctl in-process against one database and key directory.
type keyCtl struct {
	t   *testing.T
	env map[string]string
}

func newKeyCtl(t *testing.T) *keyCtl {
	t.Helper()
	return &keyCtl{t: t, env: map[string]string{
		"DATABASE_URL":            pgtest.NewURL(t),
		"BROKER_KEY_DIR":          t.TempDir(),
		"BROKER_ISSUER":           "http://sieve.test",
		"BROKER_LOG_KEY_HANDOVER": "1h",
	}}
}

// run runs one command and returns its stdout, stderr and exit code.
func (c *keyCtl) run(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return c.env[k] })
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (c *keyCtl) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("brokerctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs a command that must exit with code and returns its stderr.
func (c *keyCtl) fails(code int, args ...string) string {
	c.t.Helper()
	out, errs, got := c.run(args...)
	if got != code {
		c.t.Fatalf("brokerctl %s: exit %d, want %d; stdout %q stderr %q", strings.Join(args, " "), got, code, out, errs)
	}
	return errs
}

// system opens the broker's system as brokerd would, for appends.
func (c *keyCtl) system() *wire.System {
	c.t.Helper()
	cfg := config.FromEnv(func(k string) string { return c.env[k] })
	cfg.SetDefaults()
	sys, err := wire.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(sys.Close)
	return sys
}

// appendEntries appends n entries as the broker's releases would.
func appendEntries(t *testing.T, sys *wire.System, n int) {
	t.Helper()
	for range n {
		if err := sys.DB.Audit().Append(context.Background(), audit.Entry{Time: time.Now(), DecisionID: broker.NewID("dec"),
			Actor: "retailer:cli_fresh", Action: "release", Purpose: "order_fulfilment", Subject: "sub_A",
			Resource: "order", Released: []string{"order.id"}, Outcome: audit.OutcomeReleased, PolicyRevision: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

func pin(t *testing.T, vkey string) audit.PublicKey {
	t.Helper()
	k, err := audit.ParsePublicKey(strings.TrimSpace(vkey))
	if err != nil {
		t.Fatalf("pin %q: %v", vkey, err)
	}
	return k
}

var newVerifierKey = regexp.MustCompile(`new verifier key: (\S+)`)

// TestLogKeyIsItsOwnKey rotates the JWT key, then the log key twice, then
// retires the two earlier log keys, as an operator would over a year. A
// monitor that pinned the first log key keeps verifying across the JWT
// rotation and through the handover, learns each new key from an
// announcement in a checkpoint signed by a key it already trusts; both
// verifies accept the log that spans the three keys.
func TestLogKeyIsItsOwnKey(t *testing.T) {
	c := newKeyCtl(t)
	c.ok("keys", "init")
	sys := c.system()
	keyA := c.ok("audit", "key")
	pinned := audit.KeySet{pin(t, keyA)}

	appendEntries(t, sys, 3)
	if _, err := pinned.VerifyCheckpoint([]byte(c.ok("audit", "checkpoint"))); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}

	// 1. A JWT rotation leaves the log's identity alone.
	c.ok("keys", "rotate", "--signing-only")
	appendEntries(t, sys, 2)
	cp2 := c.ok("audit", "checkpoint")
	if _, err := pinned.VerifyCheckpoint([]byte(cp2)); err != nil {
		t.Fatalf("after `keys rotate --signing-only` the pinned log key no longer verifies: %v", err)
	}
	if got := c.ok("audit", "key"); got != keyA {
		t.Fatalf("audit key changed with the JWT key: %s -> %s", keyA, got)
	}

	// 2. A log-key handover: announced in the log, in a checkpoint the
	// old key signs too.
	monitorLearns := func(cpNote string) {
		t.Helper()
		cp, err := pinned.VerifyCheckpoint([]byte(cpNote))
		if err != nil {
			t.Fatalf("the monitor's pinned keys do not verify the checkpoint after a rotation: %v\n%s", err, cpNote)
		}
		last, err := sys.DB.AuditTree().AuditEntry(context.Background(), cp.Size-1)
		if err != nil {
			t.Fatal(err)
		}
		if last.Action != broker.ActionLogKeyAnnounced || last.Actor != "system:keys" {
			t.Fatalf("the last entry under the checkpoint is %s by %s, not the announcement", last.Action, last.Actor)
		}
		pinned = append(pinned, pin(t, last.Resource))
	}
	jwtBefore, _ := sys.SignKeys.Current()
	out := c.ok("keys", "rotate", "--log")
	if err := sys.SignKeys.Reload(); err != nil {
		t.Fatal(err)
	}
	if jwtNow, _ := sys.SignKeys.Current(); jwtNow != jwtBefore || len(sys.SignKeys.KeyIDs()) != 2 {
		t.Fatalf("rotating the log key touched the JWT keys: %s -> %s, %v", jwtBefore, jwtNow, sys.SignKeys.KeyIDs())
	}
	m := newVerifierKey.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rotate --log printed no verifier key: %s", out)
	}
	keyB := m[1]
	cp3 := c.ok("audit", "checkpoint")
	if n := len(audit.NoteSigners([]byte(cp3))); n != 2 {
		t.Fatalf("a checkpoint during the handover has %d signatures, want 2:\n%s", n, cp3)
	}
	if _, err := (audit.KeySet{pin(t, keyA)}).VerifyCheckpoint([]byte(cp3)); err != nil {
		t.Fatalf("the old key does not sign during the handover: %v", err)
	}
	monitorLearns(cp3)
	if pinned[1].String() != keyB {
		t.Fatalf("announced %s, rotate printed %s", pinned[1], keyB)
	}
	if got := strings.TrimSpace(c.ok("audit", "key")); got != keyB {
		t.Fatalf("audit key after the rotation: %s, want %s", got, keyB)
	}
	appendEntries(t, sys, 2)
	if _, err := (audit.KeySet{pin(t, keyA)}).VerifyCheckpoint([]byte(c.ok("audit", "checkpoint"))); err != nil {
		t.Fatalf("the old key stopped signing before its handover ended: %v", err)
	}

	// 3. A second handover, to C: B co-signs now, A no longer does.
	c.ok("keys", "rotate", "--log")
	cp5 := c.ok("audit", "checkpoint")
	monitorLearns(cp5)
	if _, err := (audit.KeySet{pin(t, keyA)}).VerifyCheckpoint([]byte(cp5)); err == nil {
		t.Fatal("the key before the previous one still signs")
	}
	keyC := strings.TrimSpace(c.ok("audit", "key"))
	appendEntries(t, sys, 1)
	c.ok("audit", "checkpoint")

	// 4. Retire A and B: private halves deleted, public halves kept.
	logDir := filepath.Join(c.env["BROKER_KEY_DIR"], keydir.LogSubdir)
	for _, vk := range []string{keyA, keyB} {
		id := keydir.KeyID(pin(t, vk).Key)
		if out := c.ok("keys", "retire", id); !strings.Contains(out, "log key "+id+" retired") {
			t.Fatalf("retire %s: %s", id, out)
		}
		if _, err := os.Stat(filepath.Join(logDir, id+".pem")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the private key of retired %s is still on disk: %v", id, err)
		}
	}
	if errs := c.fails(1, "keys", "retire", keydir.KeyID(pin(t, keyC).Key)); !strings.Contains(errs, "cannot be retired") {
		t.Fatalf("retiring the current log key: %s", errs)
	}
	appendEntries(t, sys, 1)
	last := c.ok("audit", "checkpoint")
	if n := len(audit.NoteSigners([]byte(last))); n != 1 {
		t.Fatalf("after retiring the previous key a checkpoint has %d signatures, want 1", n)
	}

	// 5. A monitor that pinned A alone, before everything above, walks
	// every checkpoint in order: each verifies with the keys it holds, and
	// it learns each new key from the announcement under a checkpoint it
	// verified.
	walk := audit.KeySet{pin(t, keyA)}
	rows, err := sys.DB.Pool.Query(context.Background(), `SELECT note FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		notes = append(notes, n)
	}
	rows.Close()
	var seen uint64
	for _, n := range notes {
		cp, err := walk.VerifyCheckpoint([]byte(n))
		if err != nil {
			t.Fatalf("the monitor cannot verify the checkpoint of %d entries with the keys it learnt: %v", cp.Size, err)
		}
		for i := seen; i < cp.Size; i++ {
			e, err := sys.DB.AuditTree().AuditEntry(context.Background(), i)
			if err != nil {
				t.Fatal(err)
			}
			if e.Action == broker.ActionLogKeyAnnounced {
				walk = append(walk, pin(t, e.Resource))
			}
		}
		seen = cp.Size
	}
	if len(notes) < 7 || len(walk) != 3 {
		t.Fatalf("the monitor walked %d checkpoints and learnt %d keys", len(notes), len(walk))
	}

	// 6. Both verifies accept the log that spans A, B and C.
	if out := c.ok("audit", "verify", "--quiet"); !strings.HasPrefix(out, "ok 11 ") {
		t.Fatalf("audit verify: %q", out)
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	c.ok("audit", "export", "--format", "jsonl", "--out", export)
	for _, keys := range [][]string{
		{"--key", logDir}, // the key directory itself
		{"--key", keyA + "," + keyB, "--key", keyC}, // a list, and a repeat
	} {
		if out := c.ok(append([]string{"audit", "verify", "--quiet", "--file", export}, keys...)...); !strings.HasPrefix(out, "ok 11 ") {
			t.Fatalf("offline verify with %v: %q", keys, out)
		}
	}
	list := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(list, []byte("# the log's keys\n"+keyA+"\n"+keyB+"\n"+keyC+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("audit", "verify", "--quiet", "--file", export, "--key", list)
	if got := strings.Fields(c.ok("audit", "key", "--all")); len(got) != 3 || got[0] != keyC {
		t.Fatalf("audit key --all: %q", got)
	}
	all := filepath.Join(t.TempDir(), "all.txt")
	if err := os.WriteFile(all, []byte(c.ok("audit", "key", "--all")), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("audit", "verify", "--quiet", "--file", export, "--key", all)
	// The current key alone cannot vouch for history it did not sign.
	if errs := c.fails(1, "audit", "verify", "--quiet", "--file", export, "--key", keyC); !strings.Contains(errs, "FAILED") {
		t.Fatalf("offline verify with the current key only: %s", errs)
	}
}

// TestLogKeyAdoptsTheSigningKey upgrades a key directory from before the
// log had its own key: the JWT signing key that signed the checkpoints
// becomes the log key, so the key monitors pinned keeps verifying, and
// stays the log key when JWT keys rotate.
func TestLogKeyAdoptsTheSigningKey(t *testing.T) {
	c := newKeyCtl(t)
	// The old layout: only <BROKER_KEY_DIR>/signing.
	sk, err := token.LoadKeyring(c.env["BROKER_KEY_DIR"], true)
	if err != nil {
		t.Fatal(err)
	}
	kid, priv := sk.Current()
	oldPub, err := audit.VerifierKey("sieve.test", priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	sys := c.system()
	appendEntries(t, sys, 2)
	if _, err := pin(t, oldPub).VerifyCheckpoint([]byte(c.ok("audit", "checkpoint"))); err != nil {
		t.Fatalf("after the upgrade the pinned signing key does not verify: %v", err)
	}
	c.env["BROKER_JWT_PREPUBLISH"] = "1s"
	out := c.ok("keys", "rotate", "--signing-only")
	if !strings.Contains(out, "signs from") {
		t.Fatalf("rotate --signing-only: %s", out)
	}
	// The new JWT key is published ahead: the old one still signs.
	if errs := c.fails(1, "keys", "retire", kid, "--jwt"); !strings.Contains(errs, "cannot be retired") {
		t.Fatalf("retiring the JWT key that still signs: %s", errs)
	}
	time.Sleep(2100 * time.Millisecond)
	appendEntries(t, sys, 1)
	if _, err := pin(t, oldPub).VerifyCheckpoint([]byte(c.ok("audit", "checkpoint"))); err != nil {
		t.Fatalf("after a JWT rotation the pinned key does not verify: %v", err)
	}
	// The adopted key is both a JWT key and the log key: retire says which.
	if errs := c.fails(2, "keys", "retire", kid); !strings.Contains(errs, "--jwt or --log") {
		t.Fatalf("ambiguous retire: %s", errs)
	}
	if out := c.ok("keys", "retire", kid, "--jwt"); !strings.Contains(out, "signing key "+kid+" retired") {
		t.Fatalf("retire --jwt: %s", out)
	}
	appendEntries(t, sys, 1)
	if _, err := pin(t, oldPub).VerifyCheckpoint([]byte(c.ok("audit", "checkpoint"))); err != nil {
		t.Fatalf("retiring the JWT copy touched the log key: %v", err)
	}
	c.ok("audit", "verify", "--quiet")
}

// TestAuditVerifyTrusted restores an older backup (real pg_dump and
// pg_restore) after a later checkpoint was saved outside the database:
// plain verify passes, --trusted fails. A log rewound and re-signed by the
// operator's key (a fork) fails too.
func TestAuditVerifyTrusted(t *testing.T) {
	c := newKeyCtl(t)
	c.ok("keys", "init")
	sys := c.system()
	dir := t.TempDir()
	save := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c.ok("audit", "checkpoint")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	appendEntries(t, sys, 5)
	early := save("early")
	backup := pgtest.Dump(t, c.env["DATABASE_URL"])
	appendEntries(t, sys, 4)
	later := save("later")
	for _, f := range []string{early, later} {
		if out := c.ok("audit", "verify", "--quiet", "--trusted", f); !strings.HasPrefix(out, "ok 9 ") {
			t.Fatalf("verify --trusted %s on the untouched log: %q", f, out)
		}
	}
	forged := filepath.Join(dir, "forged")
	other := newKeyCtl(t)
	other.ok("keys", "init")
	appendEntries(t, other.system(), 1)
	if err := os.WriteFile(forged, []byte(other.ok("audit", "checkpoint")), 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := c.fails(1, "audit", "verify", "--quiet", "--trusted", forged); !strings.Contains(errs, "does not verify with the log's keys") {
		t.Fatalf("a checkpoint by another key: %s", errs)
	}
	// Hostile or broken files fail with a clear one-line message, before
	// the log is read.
	for name, body := range map[string]string{
		"empty":     "",
		"garbage":   "not a checkpoint\n",
		"unsigned":  "sieve.test\n9\n" + strings.Repeat("A", 43) + "=\n",
		"oversized": strings.Repeat("x", audit.MaxCheckpointSize+10),
		"nul":       "sieve.test\x00\n9\n\n\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if errs := c.fails(1, "audit", "verify", "--quiet", "--trusted", p); !strings.Contains(errs, "trusted checkpoint") ||
			strings.Count(errs, "\n") != 1 || strings.Contains(errs, "verify [") {
			t.Fatalf("--trusted %s: %q", name, errs)
		}
	}
	if errs := c.fails(1, "audit", "verify", "--quiet", "--trusted", filepath.Join(dir, "absent")); !strings.Contains(errs, "no such file") {
		t.Fatalf("--trusted of a missing file: %q", errs)
	}
	if errs := c.fails(2, "audit", "verify", "--trusted", later, "--file", forged, "--key", forged); !strings.Contains(errs, "does not go with --file") {
		t.Fatalf("--trusted with --file: %s", errs)
	}

	// The operator restores the backup taken at 5 entries.
	c.env["DATABASE_URL"] = pgtest.Restore(t, backup)
	if out := c.ok("audit", "verify", "--quiet"); !strings.HasPrefix(out, "ok 5 ") {
		t.Fatalf("plain verify of the restored log: %q", out)
	}
	c.ok("audit", "verify", "--quiet", "--trusted", early)
	errs := c.fails(1, "audit", "verify", "--quiet", "--trusted", later)
	if !strings.Contains(errs, "5 entries, fewer than the trusted checkpoint's 9") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("verify --trusted of the truncated log: %q", errs)
	}

	// ... and appends other entries to the size it had, and beyond, signed
	// with the log key it holds: a fork.
	restored := c.system()
	appendEntries(t, restored, 6)
	if _, err := restored.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.ok("audit", "verify", "--quiet")
	errs = c.fails(1, "audit", "verify", "--quiet", "--trusted", later)
	if !strings.Contains(errs, "not an append-only extension of the trusted checkpoint of 9 entries") {
		t.Fatalf("verify --trusted of the forked log: %q", errs)
	}
}
