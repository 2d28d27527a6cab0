// Package witness submits the audit log's checkpoints to independent
// witnesses (C2SP tlog-witness) and keeps the cosignatures they return
// (SPEC §6). It never blocks the log: the sequencer signs and publishes
// checkpoints on its own, and a Cosigner follows behind, one goroutine per
// witness, each request bounded by a timeout, so a slow or dead witness
// delays nothing but its own cosignature (and so the quorum).
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sieve-broker/sieve/audit"
)

// Errors of AddCheckpoint, by the witness's answer (C2SP tlog-witness).
var (
	// ErrUnknownLog: the witness does not know this log or its key
	// (404, or 403 as some witnesses answer).
	ErrUnknownLog = errors.New("witness: unknown log or key")
	// ErrBadProof: the witness rejected the consistency proof (422): the
	// checkpoint does not extend what it cosigned before. A fork or a
	// rollback, as far as the witness can tell.
	ErrBadProof = errors.New("witness: consistency proof rejected")
	// ErrBadRequest: the witness could not parse the request (400).
	ErrBadRequest = errors.New("witness: bad request")
	// ErrBadCosignature: the witness answered 200 without a valid
	// cosignature by the key the policy names.
	ErrBadCosignature = errors.New("witness: no valid cosignature in the response")
)

// ConflictError is a 409 answer: the witness's latest cosigned size is not
// the old size the request named.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: it last cosigned size %d", e.Size)
}

// maxResponse bounds what is read of a witness's answer.
const maxResponse = 16 << 10

// AddCheckpoint sends one add-checkpoint request: the old size the proof
// starts from, the consistency proof (base64 hashes, one a line) and the
// signed checkpoint. It returns the witness's cosignature line for the
// checkpoint, checked against w's key.
func AddCheckpoint(ctx context.Context, hc *http.Client, w audit.Witness, oldSize uint64, proof [][]byte, signed []byte) (string, error) {
	var body bytes.Buffer
	body.WriteString("old " + strconv.FormatUint(oldSize, 10) + "\n")
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	body.WriteString("\n")
	body.Write(signed)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL+"/add-checkpoint", &body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		s, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return "", fmt.Errorf("witness: 409 without a size")
		}
		return "", &ConflictError{Size: s}
	case http.StatusNotFound, http.StatusForbidden:
		return "", ErrUnknownLog
	case http.StatusUnprocessableEntity:
		return "", ErrBadProof
	case http.StatusBadRequest:
		return "", ErrBadRequest
	default:
		return "", fmt.Errorf("witness: HTTP %d", resp.StatusCode)
	}
	// The body is one or more signature lines; keep the one by w's key
	// that verifies over this checkpoint.
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(line, "\n") {
			continue
		}
		n := audit.AddSignatureLines(signed, line)
		if _, err := note.Open(n, note.VerifierList(w.Verifier)); err == nil {
			return line, nil
		}
	}
	return "", ErrBadCosignature
}

// Store is what the Cosigner needs of the log's store.
type Store interface {
	// LatestCheckpoint returns the latest signed checkpoint note (as the
	// log signed it, without cosignatures) and its size.
	LatestCheckpoint(ctx context.Context) (string, uint64, error)
	// ConsistencyProof proves that the tree of size from is a prefix of
	// the tree of size to.
	ConsistencyProof(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error)
	// AddCosignature stores a witness's verified cosignature line.
	AddCosignature(ctx context.Context, size uint64, witness, line string) error
	// WitnessCosignedSize is the largest size the witness cosigned (0 if none).
	WitnessCosignedSize(ctx context.Context, witness string) (uint64, error)
}

// Cosigner submits each new checkpoint to every witness of a policy.
type Cosigner struct {
	Store  Store
	Policy *audit.Policy
	// HTTP is the client for the witnesses; nil uses one without redirects.
	HTTP *http.Client
	// Timeout bounds one request to one witness. Default 5s.
	Timeout time.Duration
	// Poll is how often it looks for a new checkpoint. Default 200ms.
	Poll time.Duration
	// Inc counts events (commerce.Metrics style: a name and up to two
	// label values); nil counts nothing. Names:
	// sieve_audit_checkpoints_short_of_quorum_total (no labels),
	// sieve_audit_cosignatures_total (witness, outcome).
	Inc func(name string, labels ...string)
	// Log receives what the cosigner survives; nil is slog.Default. It
	// never names more than witness names, sizes and error classes.
	Log *slog.Logger

	mu      sync.Mutex
	latest  checkpoint
	results chan result
}

type checkpoint struct {
	note []byte
	size uint64
}

type result struct {
	size    uint64
	witness string
}

func (c *Cosigner) defaults() {
	if c.HTTP == nil {
		c.HTTP = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Inc == nil {
		c.Inc = func(string, ...string) {}
	}
}

// Run follows the log until ctx is done. Each witness has its own
// goroutine, woken when a new checkpoint appears; a checkpoint that has
// not gathered the quorum within the timeout (plus a poll) is counted in
// sieve_audit_checkpoints_short_of_quorum_total. It returns nil when ctx
// is done.
func (c *Cosigner) Run(ctx context.Context) error {
	c.defaults()
	c.results = make(chan result, 64)
	wakes := make([]chan struct{}, len(c.Policy.Witnesses))
	var wg sync.WaitGroup
	for i, w := range c.Policy.Witnesses {
		wakes[i] = make(chan struct{}, 1)
		wg.Go(func() { c.follow(ctx, w, wakes[i]) })
	}
	defer wg.Wait()
	type pending struct {
		deadline time.Time
		got      map[string]bool
	}
	open := map[uint64]*pending{}
	var seen uint64
	tick := time.NewTicker(c.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-c.results:
			if p := open[r.size]; p != nil {
				p.got[r.witness] = true
				if len(p.got) >= c.Policy.Quorum {
					delete(open, r.size)
				}
			}
			continue
		case <-tick.C:
		}
		now := time.Now()
		for size, p := range open {
			if now.After(p.deadline) {
				delete(open, size)
				c.Inc("sieve_audit_checkpoints_short_of_quorum_total")
				c.Log.Warn("audit checkpoint short of its witness quorum", "size", size, "cosignatures", len(p.got), "quorum", c.Policy.Quorum)
			}
		}
		n, size, err := c.Store.LatestCheckpoint(ctx)
		if err != nil || size <= seen {
			continue
		}
		seen = size
		c.mu.Lock()
		c.latest = checkpoint{note: []byte(n), size: size}
		c.mu.Unlock()
		if c.Policy.Quorum > 0 {
			open[size] = &pending{deadline: now.Add(c.Timeout + c.Poll), got: map[string]bool{}}
		}
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// follow submits the latest checkpoint to one witness each time it is
// woken, starting from the size the witness last cosigned.
func (c *Cosigner) follow(ctx context.Context, w audit.Witness, wake <-chan struct{}) {
	known, err := c.Store.WitnessCosignedSize(ctx, w.Name)
	if err != nil {
		known = 0 // the witness's 409 will tell
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		c.mu.Lock()
		cp := c.latest
		c.mu.Unlock()
		if cp.size == 0 || cp.size == known {
			continue
		}
		// cp.size < known: the log is behind what this witness cosigned (a
		// restored backup, or a cut): submit reports it (witness_ahead).
		known = c.submit(ctx, w, cp, known)
	}
}

// submit sends cp to w with a proof from old, following a 409 to the
// witness's own size (at most twice), and returns what the witness is now
// known to have cosigned.
func (c *Cosigner) submit(ctx context.Context, w audit.Witness, cp checkpoint, old uint64) uint64 {
	for attempt := 0; attempt < 3; attempt++ {
		if old > cp.size {
			// The witness cosigned a larger tree than this one: either another
			// broker process is ahead of us, or this log was cut back.
			c.Inc("sieve_audit_cosignatures_total", w.Name, "witness_ahead")
			c.Log.Warn("witness has cosigned a larger tree than the latest checkpoint", "witness", w.Name, "witness_size", old, "size", cp.size)
			return old
		}
		var proof [][]byte
		if old > 0 && old < cp.size {
			p, err := c.Store.ConsistencyProof(ctx, old, cp.size)
			if err != nil {
				c.Inc("sieve_audit_cosignatures_total", w.Name, "error")
				c.Log.Warn("witness: consistency proof", "witness", w.Name, "err", err)
				return old
			}
			proof = p.Hashes
		}
		rctx, cancel := context.WithTimeout(ctx, c.Timeout)
		line, err := AddCheckpoint(rctx, c.HTTP, w, old, proof, cp.note)
		cancel()
		var conflict *ConflictError
		switch {
		case err == nil:
			if err := c.Store.AddCosignature(ctx, cp.size, w.Name, line); err != nil {
				c.Inc("sieve_audit_cosignatures_total", w.Name, "error")
				c.Log.Warn("witness: store cosignature", "witness", w.Name, "err", err)
				return cp.size
			}
			c.Inc("sieve_audit_cosignatures_total", w.Name, "ok")
			select {
			case c.results <- result{size: cp.size, witness: w.Name}:
			case <-ctx.Done():
			}
			return cp.size
		case errors.As(err, &conflict):
			old = conflict.Size
			continue
		default:
			outcome := "error"
			switch {
			case errors.Is(err, ErrBadProof):
				outcome = "refused"
			case errors.Is(err, ErrUnknownLog):
				outcome = "unknown_log"
			case errors.Is(err, context.DeadlineExceeded):
				outcome = "timeout"
			}
			c.Inc("sieve_audit_cosignatures_total", w.Name, outcome)
			if ctx.Err() == nil {
				c.Log.Warn("witness did not cosign", "witness", w.Name, "size", cp.size, "outcome", outcome)
			}
			return old
		}
	}
	c.Inc("sieve_audit_cosignatures_total", w.Name, "conflict")
	return old
}
