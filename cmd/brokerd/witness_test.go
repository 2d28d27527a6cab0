package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/audit/witness/witnesstest"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/cmd/internal/config"
)

// writePolicy writes a witness policy file and returns its path.
func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "witnesses")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// appendEntries appends n officer-action entries.
func appendEntries(t *testing.T, h *harness, n int) {
	t.Helper()
	for range n {
		if err := h.m.Sys.RecordOfficerAction(context.Background(), broker.Party{ID: "off_t", Kind: broker.KindOfficer},
			"audit.export", "", "request"); err != nil {
			t.Fatal(err)
		}
	}
}

// getText GETs path (with bearer, when given) and returns status and body.
func (h *harness) getText(path, bearer string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.base+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of a Prometheus sample (name with its labels,
// as /metrics prints it), or -1 when absent.
func (h *harness) metric(sample string) float64 {
	h.t.Helper()
	_, body := h.getText("/metrics", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// waitFor polls cond every 20ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWitnessCosignsCheckpoints runs brokerd with a real litewitness, a
// witness that is down and one that never answers (quorum 2): appends are
// not slowed, the
// published checkpoint carries the live witness's cosignature within a
// few seconds of being signed, and each checkpoint short of its quorum is
// counted in /metrics.
func TestWitnessCosignsCheckpoints(t *testing.T) {
	lw := witnesstest.Start(t, "witness.test/live", "sieve.test")
	downPub, _, _ := ed25519.GenerateKey(rand.Reader)
	// A third witness accepts the request and never answers.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	slowPub, _, _ := ed25519.GenerateKey(rand.Reader)
	policy := writePolicy(t, lw.PolicyLine("live")+
		"witness down "+audit.CosignatureVerifierKey("witness.test/down", downPub)+" "+witnesstest.DeadURL(t)+"\n"+
		"witness slow "+audit.CosignatureVerifierKey("witness.test/slow", slowPub)+" "+slow.URL+"\n"+
		"quorum 2\n")
	h := newHarness(t, func(c *config.Config) { c.Witness.PolicyFile = policy })
	lw.AddLogKey(t, h.m.Sys.CurrentCheckpointKey().String())
	key := h.m.Sys.CurrentCheckpointKey()
	p, err := audit.LoadPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	live := *p
	live.Quorum = 1

	start := time.Now()
	appendEntries(t, h, 50)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("50 appends took %v with a witness down", d)
	}
	// The checkpoint is a compliance route (SPEC §4): an auditor reads it.
	_, auditor := h.partner("Auditor", broker.KindCompliance, "", broker.ScopeAuditRead)
	var note string
	waitFor(t, 8*time.Second, "a cosigned checkpoint of all 50 entries", func() bool {
		st, body := h.getText("/v1/audit/checkpoint", auditor)
		if st != 200 {
			return false
		}
		cp, err := key.VerifyCheckpoint([]byte(body))
		if err != nil || cp.Size < 50 {
			return false
		}
		note = body
		return live.CheckQuorum([]byte(body)) == nil
	})
	if err := p.CheckQuorum([]byte(note)); !errors.Is(err, audit.ErrNoQuorum) {
		t.Fatalf("quorum 2 met with one witness down: %v", err)
	}
	waitFor(t, 12*time.Second, "the short-of-quorum metric", func() bool {
		return h.metric("sieve_audit_checkpoints_short_of_quorum_total") >= 1
	})
	if h.metric(`sieve_audit_cosignatures_total{kind="live",outcome="ok"}`) < 1 ||
		h.metric(`sieve_audit_cosignatures_total{kind="down",outcome="error"}`) < 1 {
		t.Errorf("cosignature metrics missing")
	}
	// The database verify with the live witness's quorum passes.
	if _, _, err := h.m.Sys.VerifyAuditPolicy(context.Background(), &live, nil); err != nil {
		t.Fatalf("verify --policy (quorum 1): %v", err)
	}
}

// TestHostileForkRefusedByWitness: the operator runs a second log with the
// same origin and key but another history (a fork) and submits it to the
// same witness. The witness refuses to cosign it (its consistency proof
// from the size the witness cosigned does not hold), and `audit verify
// --policy` fails on the forked log while it passes on the honest one.
func TestHostileForkRefusedByWitness(t *testing.T) {
	lw := witnesstest.Start(t, "witness.test/w", "sieve.test")
	policy := writePolicy(t, lw.PolicyLine("w")+"quorum 1\n")
	p, err := audit.LoadPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	honest := newHarness(t, func(c *config.Config) { c.Witness.PolicyFile = policy })
	lw.AddLogKey(t, honest.m.Sys.CurrentCheckpointKey().String())
	appendEntries(t, honest, 10)
	waitFor(t, 8*time.Second, "the honest log's cosigned checkpoint", func() bool {
		_, s, err := honest.m.Sys.DB.AuditTree().CosignedCheckpoint(context.Background(), 1)
		return err == nil && s >= 10
	})

	fork := newHarness(t, func(c *config.Config) {
		c.Witness.PolicyFile = policy
		c.Keys.Dir = honest.m.Config.Keys.Dir // the same log key and origin
	})
	if err := fork.m.Sys.RecordOfficerAction(context.Background(), broker.Party{ID: "off_other", Kind: broker.KindOfficer},
		"subject.erase", "", "legal_order"); err != nil {
		t.Fatal(err)
	}
	appendEntries(t, fork, 20)
	waitFor(t, 10*time.Second, "the witness's refusal of the fork", func() bool {
		return fork.metric(`sieve_audit_cosignatures_total{kind="w",outcome="refused"}`) >= 1
	})
	if _, _, err := fork.m.Sys.DB.AuditTree().CosignedCheckpoint(context.Background(), 1); !broker.IsNotFound(err) {
		t.Fatalf("the fork has a cosigned checkpoint: %v", err)
	}
	if _, _, err := fork.m.Sys.VerifyAuditPolicy(context.Background(), p, nil); !errors.Is(err, audit.ErrNoQuorum) {
		t.Fatalf("verify --policy on the fork: %v", err)
	}
	// The fork verifies against the operator's key alone: that is the gap.
	if _, _, err := fork.m.Sys.VerifyAudit(context.Background(), nil); err != nil {
		t.Fatalf("plain verify of the fork: %v", err)
	}
	if _, _, err := honest.m.Sys.VerifyAuditPolicy(context.Background(), p, nil); err != nil {
		t.Fatalf("verify --policy on the honest log: %v", err)
	}
}

// tileFetcher reads C2SP tlog-tiles from the broker over HTTP for
// golang.org/x/mod/sumdb/tlog.
type tileFetcher struct {
	h      *harness
	bearer string
}

func (f tileFetcher) Height() int { return 8 }

func (f tileFetcher) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tl := range tiles {
		path := "/v1/audit/tile/" + strings.TrimPrefix(tl.Path(), "tile/8/")
		st, body := f.h.getText(path, f.bearer)
		if st != 200 {
			return nil, fmt.Errorf("GET %s: %d %s", path, st, body)
		}
		out[i] = []byte(body)
	}
	return out, nil
}

func (f tileFetcher) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTilesInclusionThirdPartyClient: golang.org/x/mod/sumdb/tlog, a
// third-party tlog client, fetches the log's tiles over HTTP and proves
// leaves included in the signed checkpoint; the leaves come from the
// entry bundles. Tiles need audit:read, bad paths are 400 and tiles the
// tree does not have yet are 404.
func TestTilesInclusionThirdPartyClient(t *testing.T) {
	h := newHarness(t)
	_, auditor := h.partner("Auditor", broker.KindCompliance, "", broker.ScopeAuditRead)
	appendEntries(t, h, 600)
	if _, err := h.m.Sys.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, body := h.getText("/v1/audit/checkpoint", auditor)
	cp, err := h.m.Sys.CurrentCheckpointKey().VerifyCheckpoint([]byte(body))
	if err != nil || cp.Size < 600 {
		t.Fatalf("checkpoint: %v %d", err, cp.Size)
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	hr := tlog.TileHashReader(tree, tileFetcher{h, auditor})
	if th, err := tlog.TreeHash(tree.N, hr); err != nil || th != tree.Hash {
		t.Fatalf("tree hash from tiles: %v", err)
	}
	for _, idx := range []int64{0, 255, 256, 300, int64(cp.Size) - 1} {
		// The leaf, from its entry bundle (full or partial).
		bundleN := idx / 256
		w := min(256, tree.N-bundleN*256)
		bt := tlog.Tile{H: 8, L: -1, N: bundleN, W: int(w)}
		path := "/v1/audit/tile/entries/" + strings.TrimPrefix(bt.Path(), "tile/8/data/")
		st, bundle := h.getText(path, auditor)
		if st != 200 {
			t.Fatalf("GET %s: %d", path, st)
		}
		leaf := nthEntry(t, []byte(bundle), int(idx%256))
		p, err := tlog.ProveRecord(tree.N, idx, hr)
		if err != nil {
			t.Fatalf("prove %d: %v", idx, err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, idx, tlog.RecordHash(leaf)); err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if e, err := audit.ParseEntry(leaf); err != nil || e.Index != uint64(idx) {
			t.Fatalf("bundle entry %d: %v %d", idx, err, e.Index)
		}
	}
	for path, want := range map[string]int{
		"/v1/audit/tile/0/000":           401, // no bearer below
		"/v1/audit/tile/0/x001/000":      404, // beyond the tree
		"/v1/audit/tile/1/000":           404, // 65536 leaves needed
		"/v1/audit/tile/0/abc":           400,
		"/v1/audit/tile/0/000.p/0":       400,
		"/v1/audit/tile/0/000.p/257":     400,
		"/v1/audit/tile/entries/../etc":  400,
		"/v1/audit/tile/99/000":          400,
		"/v1/audit/tile/entries/003.p/9": 404,
	} {
		bearer := auditor
		if want == 401 {
			bearer = ""
		}
		if st, _ := h.getText(path, bearer); st != want {
			t.Errorf("GET %s: %d, want %d", path, st, want)
		}
	}
	// A retail partner has no audit:read.
	_, retail := h.partner("Shop", broker.KindRetailer, "", broker.ScopeOrdersRead)
	if st, _ := h.getText("/v1/audit/tile/0/000", retail); st != 403 {
		t.Errorf("retailer reading tiles: %d", st)
	}
}

// nthEntry returns entry i of a tlog-tiles entry bundle.
func nthEntry(t *testing.T, b []byte, i int) []byte {
	t.Helper()
	for k := 0; ; k++ {
		if len(b) < 2 {
			t.Fatalf("entry bundle ends before entry %d", i)
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			t.Fatalf("entry bundle truncated")
		}
		if k == i {
			return b[2 : 2+n]
		}
		b = b[2+n:]
	}
}

var receiptRe = regexp.MustCompile(`receipt (\d+-[0-9a-f]{8})`)

// checkReceipts checks the receipts in a "my data" summary: at least want
// of them, each naming a logged release whose leaf hash starts with the
// receipt's prefix, and nothing else in them.
func checkReceipts(t *testing.T, h *harness, summary string, want int) {
	t.Helper()
	ms := receiptRe.FindAllStringSubmatch(summary, -1)
	if len(ms) < want {
		t.Fatalf("want %d receipts in my data, got %d:\n%s", want, len(ms), summary)
	}
	for _, m := range ms {
		idx, prefix, err := audit.ParseShortReceipt(m[1])
		if err != nil {
			t.Fatal(err)
		}
		e, err := h.m.Sys.DB.AuditTree().AuditEntry(context.Background(), idx)
		if err != nil {
			t.Fatalf("receipt %s: %v", m[1], err)
		}
		leaf, err := e.Canonical()
		if err != nil || !bytes.HasPrefix(audit.LeafHash(leaf), prefix) {
			t.Errorf("receipt %s does not match entry %d", m[1], idx)
		}
		if e.Outcome != audit.OutcomeReleased && e.Outcome != audit.OutcomePartial {
			t.Errorf("receipt %s names a %s entry", m[1], e.Outcome)
		}
	}
}
