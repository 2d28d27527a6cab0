package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths of the broker's audit endpoints, relative to its base URL.
const (
	PathCheckpoint       = "/v1/audit/checkpoint"
	PathInclusionProof   = "/v1/audit/proof/inclusion"
	PathConsistencyProof = "/v1/audit/proof/consistency"
)

// maxResponse bounds what the client reads from the server.
const maxResponse = 64 << 10

// Client is an auditor of a broker's log over HTTP. It trusts nothing the
// server says: checkpoints must be signed by the pinned key, every newer
// checkpoint must be proven consistent with the newest one seen before
// (so the server cannot roll back or fork the log without being caught),
// and entries are checked by inclusion proofs against a verified root.
//
// A Client is safe for concurrent use.
type Client struct {
	// BaseURL is the broker's URL, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Key is the pinned checkpoint key.
	Key PublicKey
	// HTTP is the client used for requests; nil means one with a 30 s timeout.
	HTTP *http.Client
	// Token, when set, is sent as a Bearer token (scope audit:read).
	Token string

	mu   sync.Mutex
	last *Checkpoint
}

// NewClient returns a client for the broker at baseURL, pinned to key.
func NewClient(baseURL string, key PublicKey) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key}
}

// Latest returns the newest checkpoint the client has verified.
func (c *Client) Latest() (Checkpoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return Checkpoint{}, false
	}
	return *c.last, true
}

// Trust makes cp the newest checkpoint seen, e.g. one saved from an earlier
// run: the next checkpoint fetched must then be consistent with it.
func (c *Client) Trust(cp Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp.Root = append([]byte(nil), cp.Root...)
	c.last = &cp
}

// Checkpoint fetches the current checkpoint, verifies its signature and,
// when an earlier checkpoint was seen, its consistency with that one; then
// remembers it. A smaller tree than before, or the same size with another
// root, or a failed consistency proof, is ErrInconsistent.
func (c *Client) Checkpoint(ctx context.Context) (Checkpoint, error) {
	body, err := c.get(ctx, PathCheckpoint, nil)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := c.Key.VerifyCheckpoint(body)
	if err != nil {
		return Checkpoint{}, err
	}
	prev, seen := c.Latest()
	if seen {
		if err := c.checkExtends(ctx, prev, cp); err != nil {
			return Checkpoint{}, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Another goroutine may have moved on meanwhile: keep the larger one
	// (both were proven consistent with the same earlier checkpoint).
	if c.last == nil || cp.Size >= c.last.Size {
		c.last = &cp
	}
	return cp, nil
}

// checkExtends proves that newer extends older.
func (c *Client) checkExtends(ctx context.Context, older, newer Checkpoint) error {
	switch {
	case newer.Origin != older.Origin:
		return fmt.Errorf("%w: origin changed from %q to %q", ErrInconsistent, older.Origin, newer.Origin)
	case newer.Size < older.Size:
		return fmt.Errorf("%w: tree shrank from %d to %d entries", ErrInconsistent, older.Size, newer.Size)
	case newer.Size == older.Size:
		if !bytes.Equal(newer.Root, older.Root) {
			return &MismatchError{Err: ErrInconsistent, What: fmt.Sprintf("root of tree size %d", newer.Size),
				Expected: older.Root, Computed: newer.Root}
		}
		return nil
	}
	return c.VerifyConsistency(ctx, older, newer)
}

// VerifyConsistency fetches the consistency proof between two verified
// checkpoints and checks it. Failure is ErrInconsistent (wrapping the
// mismatch) or ErrInvalidProof.
func (c *Client) VerifyConsistency(ctx context.Context, older, newer Checkpoint) error {
	q := url.Values{"from": {strconv.FormatUint(older.Size, 10)}, "to": {strconv.FormatUint(newer.Size, 10)}}
	body, err := c.get(ctx, PathConsistencyProof, q)
	if err != nil {
		return err
	}
	p, err := DecodeConsistencyProof(body)
	if err != nil {
		return err
	}
	if p.From != older.Size || p.To != newer.Size {
		return fmt.Errorf("%w: asked for %d→%d, got %d→%d", ErrInvalidProof, older.Size, newer.Size, p.From, p.To)
	}
	if err := p.Verify(older.Root, newer.Root); err != nil {
		return fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	return nil
}

// VerifyEntry checks that e (with its Index) is in the log: its canonical
// leaf is included in the tree of the newest verified checkpoint, fetched
// first when the client has none or e lies beyond it.
func (c *Client) VerifyEntry(ctx context.Context, e Entry) error {
	leaf, err := e.Canonical()
	if err != nil {
		return err
	}
	return c.VerifyLeaf(ctx, e.Index, leaf)
}

// VerifyLeaf is VerifyEntry for a leaf given as bytes.
func (c *Client) VerifyLeaf(ctx context.Context, index uint64, leaf []byte) error {
	cp, ok := c.Latest()
	if !ok || index >= cp.Size {
		var err error
		if cp, err = c.Checkpoint(ctx); err != nil {
			return err
		}
	}
	if index >= cp.Size {
		return fmt.Errorf("%w: entry %d is not in the tree of size %d", ErrOutOfRange, index, cp.Size)
	}
	_, err := c.ProveInclusion(ctx, index, LeafHash(leaf), cp)
	return err
}

// ProveInclusion fetches the inclusion proof of entry index in the tree of
// the verified checkpoint cp and checks it leads from leafHash to cp's root.
func (c *Client) ProveInclusion(ctx context.Context, index uint64, leafHash []byte, cp Checkpoint) (InclusionProof, error) {
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "size": {strconv.FormatUint(cp.Size, 10)}}
	body, err := c.get(ctx, PathInclusionProof, q)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := DecodeInclusionProof(body)
	if err != nil {
		return InclusionProof{}, err
	}
	if p.Index != index || p.Size != cp.Size {
		return InclusionProof{}, fmt.Errorf("%w: asked for entry %d in size %d, got %d in %d",
			ErrInvalidProof, index, cp.Size, p.Index, p.Size)
	}
	if !bytes.Equal(p.LeafHash, leafHash) {
		return InclusionProof{}, &MismatchError{Err: ErrRootMismatch, What: fmt.Sprintf("leaf hash of entry %d", index),
			Expected: leafHash, Computed: p.LeafHash}
	}
	if err := p.Verify(cp.Root); err != nil {
		return InclusionProof{}, err
	}
	return p, nil
}

// HTTPError is a non-200 answer from the server.
type HTTPError struct {
	Status int
	Body   string // the start of the body, for diagnostics
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("audit: server answered %d: %s", e.Status, e.Body)
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := c.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if len(body) > 200 {
			body = body[:200]
		}
		return nil, &HTTPError{Status: resp.StatusCode, Body: string(body)}
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("audit: response to %s over %d bytes", path, maxResponse)
	}
	return body, nil
}
