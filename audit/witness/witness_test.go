package witness_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/audit/witness"
	"github.com/sieve-broker/sieve/audit/witness/witnesstest"
)

// memLog is a log kept with golang.org/x/mod/sumdb/tlog (RFC 6962 hashing,
// as the broker's), for feeding a witness trees of our choosing.
type memLog struct {
	hashes []tlog.Hash
	n      int64
}

func (l *memLog) add(t *testing.T, data string) {
	hs, err := tlog.StoredHashes(l.n, []byte(data), tlog.HashReaderFunc(l.read))
	if err != nil {
		t.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
	l.n++
}

func (l *memLog) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *memLog) root(t *testing.T) []byte {
	h, err := tlog.TreeHash(l.n, tlog.HashReaderFunc(l.read))
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

func (l *memLog) proof(t *testing.T, from int64) [][]byte {
	if from == 0 || from == l.n {
		return nil
	}
	p, err := tlog.ProveTree(l.n, from, tlog.HashReaderFunc(l.read))
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func policyFor(t *testing.T, text string) *audit.Policy {
	t.Helper()
	p, err := audit.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLitewitnessCosignsAndRefusesAFork drives a real litewitness through
// the tlog-witness protocol: a first checkpoint, a 409 that names the
// witness's size, a consistency proof from there, and a fork (same origin
// and key, another history) that the witness refuses. The cosignatures it
// returns verify with the policy's key.
func TestLitewitnessCosignsAndRefusesAFork(t *testing.T) {
	const origin = "sieve.test/log"
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	vkey, err := audit.VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	lw := witnesstest.Start(t, "witness.test/a", origin)
	lw.AddLogKey(t, vkey)
	p := policyFor(t, lw.PolicyLine("a")+"quorum 1\n")
	w := p.Witnesses[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}

	var honest memLog
	sign := func(l *memLog) []byte {
		n, err := audit.SignCheckpoint(key, origin, uint64(l.n), l.root(t))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 3 {
		honest.add(t, fmt.Sprint("entry ", i))
	}
	cp3 := sign(&honest)
	line, err := witness.AddCheckpoint(ctx, hc, w, 0, nil, cp3)
	if err != nil {
		t.Fatalf("first checkpoint: %v\n%s", err, lw.Log())
	}
	if err := p.CheckQuorum(audit.AddSignatureLines(cp3, line)); err != nil {
		t.Fatalf("the cosignature does not verify: %v", err)
	}
	if err := p.CheckQuorum(cp3); !errors.Is(err, audit.ErrNoQuorum) {
		t.Fatalf("a checkpoint without cosignature passed the quorum: %v", err)
	}

	for i := 3; i < 7; i++ {
		honest.add(t, fmt.Sprint("entry ", i))
	}
	cp7 := sign(&honest)
	// A stale old size: the witness answers 409 with its own.
	_, err = witness.AddCheckpoint(ctx, hc, w, 0, nil, cp7)
	var conflict *witness.ConflictError
	if !errors.As(err, &conflict) || conflict.Size != 3 {
		t.Fatalf("want a 409 naming size 3, got %v", err)
	}
	if _, err := witness.AddCheckpoint(ctx, hc, w, 3, honest.proof(t, 3), cp7); err != nil {
		t.Fatalf("checkpoint 7 with a proof from 3: %v", err)
	}

	// The fork: same origin, same key, entry 4 rewritten.
	var fork memLog
	for i := range 9 {
		d := fmt.Sprint("entry ", i)
		if i == 4 {
			d = "rewritten"
		}
		fork.add(t, d)
	}
	cp9 := sign(&fork)
	if _, err := witness.AddCheckpoint(ctx, hc, w, 7, fork.proof(t, 7), cp9); !errors.Is(err, witness.ErrBadProof) {
		t.Fatalf("the witness did not refuse the fork: %v", err)
	}
	// A tree cut back below what it cosigned is refused too.
	var short memLog
	for i := range 5 {
		short.add(t, fmt.Sprint("entry ", i))
	}
	if _, err := witness.AddCheckpoint(ctx, hc, w, 7, nil, sign(&short)); err == nil {
		t.Fatal("the witness cosigned a cut-back tree")
	}

	// A log the witness does not know.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	n, _ := audit.SignCheckpoint(other, "other.test/log", 1, audit.LeafHash([]byte("x")))
	if _, err := witness.AddCheckpoint(ctx, hc, w, 0, nil, n); !errors.Is(err, witness.ErrUnknownLog) {
		t.Fatalf("unknown log: %v", err)
	}
}

// TestCosignatureFromAnotherKeyIsNotCounted: a cosignature line by a key
// the policy does not name, or a forged one under a policy witness's name
// and key hash, never counts towards the quorum.
func TestCosignatureFromAnotherKeyIsNotCounted(t *testing.T) {
	const origin = "sieve.test/log"
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	vkey, _ := audit.VerifierKey(origin, key.Public().(ed25519.PublicKey))
	real := witnesstest.Start(t, "witness.test/real", origin)
	real.AddLogKey(t, vkey)
	impostor := witnesstest.Start(t, "witness.test/real", origin) // same name, another key
	impostor.AddLogKey(t, vkey)
	p := policyFor(t, real.PolicyLine("real")+"quorum 1\n")
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}
	n, _ := audit.SignCheckpoint(key, origin, 1, audit.LeafHash([]byte("x")))
	pi := policyFor(t, impostor.PolicyLine("real")+"quorum 1\n")
	line, err := witness.AddCheckpoint(ctx, hc, pi.Witnesses[0], 0, nil, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckQuorum(audit.AddSignatureLines(n, line)); !errors.Is(err, audit.ErrNoQuorum) {
		t.Fatalf("another key's cosignature counted: %v", err)
	}
	// Asking the real witness with the impostor's key in the policy: the
	// answer does not verify, so nothing is returned.
	if _, err := witness.AddCheckpoint(ctx, hc, audit.Witness{Name: "real", URL: real.URL, Verifier: pi.Witnesses[0].Verifier}, 0, nil, n); !errors.Is(err, witness.ErrBadCosignature) {
		t.Fatalf("want ErrBadCosignature, got %v", err)
	}
}

// TestHostileWitnessAnswers: whatever a witness (or something at its URL)
// answers, AddCheckpoint returns an error and no cosignature, reads a
// bounded body, follows no redirect and gives up at the deadline.
func TestHostileWitnessAnswers(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	n, _ := audit.SignCheckpoint(key, "sieve.test", 1, audit.LeafHash([]byte("x")))
	vk := audit.CosignatureVerifierKey("w.test/h", pub)
	for name, h := range map[string]http.HandlerFunc{
		"garbage 200": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "— w.test/h AAAA\nnonsense\n") },
		"huge 200": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat("— w.test/h "+strings.Repeat("A", 1000)+"\n", 4096))
		},
		"409 garbage": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "-1\n")
		},
		"500": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:9/", http.StatusFound)
		},
		"hang": func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			p := policyFor(t, "witness h "+vk+" "+srv.URL+"\nquorum 1\n")
			hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			line, err := witness.AddCheckpoint(ctx, hc, p.Witnesses[0], 0, nil, n)
			if err == nil || line != "" {
				t.Fatalf("accepted: %q", line)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}
