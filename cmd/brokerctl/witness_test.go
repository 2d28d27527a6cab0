package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/audit/witness/witnesstest"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// witnessedLog is a broker system whose checkpoints a real litewitness
// cosigns, and brokerctl pointed at it.
type witnessedLog struct {
	t      *testing.T
	sys    *wire.System
	env    map[string]string
	policy string
	dir    string
}

func newWitnessedLog(t *testing.T) *witnessedLog {
	t.Helper()
	lw := witnesstest.Start(t, "witness.test/a", "sieve.test")
	dir := t.TempDir()
	policy := filepath.Join(dir, "witnesses")
	if err := os.WriteFile(policy, []byte(lw.PolicyLine("a")+"quorum 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &witnessedLog{t: t, policy: policy, dir: dir, env: map[string]string{
		"DATABASE_URL": pgtest.NewURL(t), "BROKER_KEY_DIR": filepath.Join(dir, "keys"),
		"BROKER_ISSUER": "http://sieve.test", "BROKER_WITNESS_POLICY": policy,
	}}
	cfg := config.FromEnv(func(k string) string { return l.env[k] })
	cfg.SetDefaults()
	sys, err := wire.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	l.sys = sys
	lw.AddLogKey(t, sys.CurrentCheckpointKey().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sys.RunCosigner(ctx, nil) }() //nolint:errcheck
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// grow appends n entries and publishes a checkpoint, then waits until the
// witness cosigned it.
func (l *witnessedLog) grow(n int) string {
	l.t.Helper()
	ctx := context.Background()
	for range n {
		if err := l.sys.RecordOfficerAction(ctx, broker.Party{ID: "off_1", Kind: broker.KindOfficer}, "audit.export", "", "request"); err != nil {
			l.t.Fatal(err)
		}
	}
	if _, err := l.sys.IntegrateAudit(ctx); err != nil {
		l.t.Fatal(err)
	}
	_, size, err := l.sys.DB.AuditTree().LatestCheckpoint(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		note, s, err := l.sys.DB.AuditTree().CosignedCheckpoint(ctx, 1)
		if err == nil && s == size {
			return note
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("checkpoint %d not cosigned within 10s", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *witnessedLog) ctl(args ...string) (int, string, string) {
	l.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return l.env[k] })
	return code, out.String(), errb.String()
}

func (l *witnessedLog) mustCtl(args ...string) string {
	l.t.Helper()
	code, out, errs := l.ctl(args...)
	if code != 0 {
		l.t.Fatalf("brokerctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (l *witnessedLog) file(name, content string) string {
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// TestVerifyWithPolicy: `audit verify --policy` passes on a cosigned log
// and fails under a quorum the checkpoint does not have; the offline
// verify of an export with --policy passes on the untouched export and
// fails once its tail is cut back and re-signed by the operator's key
// alone (which plain --key verify accepts: the key is the operator's).
func TestVerifyWithPolicy(t *testing.T) {
	l := newWitnessedLog(t)
	l.grow(20)
	note := l.grow(15)
	if !strings.Contains(note, "\u2014 witness.test/a ") {
		t.Fatalf("the checkpoint carries no cosignature:\n%s", note)
	}
	if out := l.mustCtl("audit", "verify", "--quiet", "--policy", l.policy); !strings.HasPrefix(out, "ok 35 ") {
		t.Fatalf("verify --policy: %q", out)
	}
	// A policy that needs a second witness the log never had.
	p2 := l.file("two", mustRead(t, l.policy)+"witness b "+audit.CosignatureVerifierKey("witness.test/b", make([]byte, 32))+" http://127.0.0.1:9\n")
	p2 = l.file("two", strings.Replace(mustRead(t, p2), "quorum 1", "quorum 2", 1))
	if code, _, errs := l.ctl("audit", "verify", "--quiet", "--policy", p2); code != 1 || !strings.Contains(errs, "quorum") {
		t.Fatalf("verify under quorum 2: exit %d, %s", code, errs)
	}

	pub := l.file("audit.pub", l.mustCtl("audit", "key"))
	export := l.file("export.jsonl", l.mustCtl("audit", "export", "--format", "jsonl"))
	if out := l.mustCtl("audit", "verify", "--quiet", "--file", export, "--key", pub, "--policy", l.policy); !strings.HasPrefix(out, "ok 35 ") {
		t.Fatalf("offline verify --policy: %q", out)
	}

	// The operator cuts the log back to 20 entries and signs a fresh
	// checkpoint with its own key.
	cut := cutBack(t, l.sys, mustRead(t, export), 20)
	cutFile := l.file("cut.jsonl", cut)
	if out := l.mustCtl("audit", "verify", "--quiet", "--file", cutFile, "--key", pub); !strings.HasPrefix(out, "ok 20 ") {
		t.Fatalf("the cut-back export should pass the key-only check (that is the gap witnesses close): %q", out)
	}
	code, _, errs := l.ctl("audit", "verify", "--quiet", "--file", cutFile, "--key", pub, "--policy", l.policy)
	if code != 1 || !strings.Contains(errs, "quorum") {
		t.Fatalf("cut-back export with --policy: exit %d, %s", code, errs)
	}
}

// cutBack rewrites a complete export as the operator could: the first n
// leaves under a checkpoint of size n signed with the log's key.
func cutBack(t *testing.T, sys *wire.System, export string, n int) string {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(export))
	if _, err := audit.ReadExportHeader(br); err != nil {
		t.Fatal(err)
	}
	tree := audit.NewTree()
	var leaves []string
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, line)
		if err := tree.Append(audit.LeafHash([]byte(strings.TrimSuffix(line, "\n"))), nil); err != nil {
			t.Fatal(err)
		}
	}
	key := sys.LogKeys.Current().Private
	note, err := audit.SignCheckpoint(key, sys.Origin, uint64(n), tree.Root())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := json.Marshal(audit.ExportHeader{Format: audit.ExportFormat, Checkpoint: string(note)})
	return string(h) + "\n" + strings.Join(leaves, "")
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProveAndCheckReceipt: `audit prove` writes a receipt for an entry
// under the latest cosigned checkpoint; `audit check-receipt` accepts it
// with only the public key and the policy, matches the short receipt the
// shopper was shown, and refuses a tampered one, one for another entry and
// one whose checkpoint lacks the quorum.
func TestProveAndCheckReceipt(t *testing.T) {
	l := newWitnessedLog(t)
	l.grow(40)
	ctx := context.Background()
	p, err := l.sys.DB.AuditTree().InclusionProof(ctx, 17, 40)
	if err != nil {
		t.Fatal(err)
	}
	short := audit.ShortReceipt(17, p.LeafHash)
	receipt := l.file("r.json", l.mustCtl("audit", "prove", "--index", "17"))
	if strings.Contains(receipt, "off_1") || strings.Contains(mustRead(t, receipt), "subject") {
		t.Fatal("the receipt carries entry content")
	}
	pub := l.file("audit.pub", l.mustCtl("audit", "key"))
	out := l.mustCtl("audit", "check-receipt", "--file", receipt, "--key", pub, "--policy", l.policy, "--receipt", short)
	if !strings.HasPrefix(out, "ok "+short) {
		t.Fatalf("check-receipt: %q", out)
	}
	// Entries not yet under a cosigned checkpoint cannot be proved.
	if code, _, _ := l.ctl("audit", "prove", "--index", "40"); code == 0 {
		t.Fatal("proved an entry beyond the cosigned checkpoint")
	}

	r, err := audit.ParseReceipt([]byte(mustRead(t, receipt)))
	if err != nil {
		t.Fatal(err)
	}
	bad := func(name string, mutate func(*audit.Receipt) string) {
		t.Helper()
		c := r
		c.Proof = append([][]byte(nil), r.Proof...)
		c.LeafHash = append([]byte(nil), r.LeafHash...)
		want := mutate(&c)
		b, _ := json.Marshal(c)
		f := l.file(name+".json", string(b))
		args := []string{"audit", "check-receipt", "--file", f, "--key", pub, "--policy", l.policy}
		if want != "" {
			args = append(args, "--receipt", want)
		}
		if code, _, errs := l.ctl(args...); code != 1 {
			t.Errorf("%s: exit %d (%s)", name, code, errs)
		}
	}
	bad("leaf", func(c *audit.Receipt) string { c.LeafHash[31] ^= 1; return "" })
	bad("proof", func(c *audit.Receipt) string { c.Proof[0] = make([]byte, 32); return "" })
	bad("index", func(c *audit.Receipt) string { c.Index = 16; return "" })
	bad("other", func(c *audit.Receipt) string { return audit.ShortReceipt(18, c.LeafHash) })
	bad("nocosig", func(c *audit.Receipt) string {
		i := strings.Index(c.Checkpoint, "\u2014 witness.test/a ")
		c.Checkpoint = c.Checkpoint[:i]
		return ""
	})
}
