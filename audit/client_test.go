package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-broker/sieve/audit"
)

// logServer serves a memLog over the broker's audit endpoints, honestly
// unless a hostile behaviour is set.
type logServer struct {
	t   *testing.T
	key ed25519.PrivateKey

	mu   sync.Mutex
	log  *memLog
	size uint64 // the size the checkpoint endpoint announces
	// tamper, when set, rewrites a response body before it is sent.
	tamper func(path string, body []byte) []byte
	token  string
}

func (s *logServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		http.Error(w, `{"error":{"code":"unauthorized","message":"token"}}`, http.StatusUnauthorized)
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	num := func(k string) uint64 { n, _ := strconv.ParseUint(q.Get(k), 10, 64); return n }
	var body []byte
	switch r.URL.Path {
	case audit.PathCheckpoint:
		body = signed(s.t, s.key, s.log, s.size)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	case audit.PathInclusionProof:
		idx, size := num("index"), num("size")
		hashes, err := audit.BuildInclusion(ctx, s.log, idx, size)
		if err != nil {
			http.Error(w, `{"error":{"code":"invalid","message":"range"}}`, http.StatusBadRequest)
			return
		}
		body, _ = json.Marshal(audit.InclusionProof{Index: idx, Size: size, LeafHash: s.log.hashes[idx], Hashes: hashes})
	case audit.PathConsistencyProof:
		from, to := num("from"), num("to")
		hashes, err := audit.BuildConsistency(ctx, s.log, from, to)
		if err != nil {
			http.Error(w, `{"error":{"code":"invalid","message":"range"}}`, http.StatusBadRequest)
			return
		}
		body, _ = json.Marshal(audit.ConsistencyProof{From: from, To: to, Hashes: hashes})
	default:
		http.NotFound(w, r)
		return
	}
	if s.tamper != nil {
		body = s.tamper(r.URL.Path, body)
	}
	w.Write(body)
}

func (s *logServer) set(f func(*logServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newLogServer(t *testing.T, n int) (*logServer, *audit.Client) {
	t.Helper()
	s := &logServer{t: t, key: testKey(7), log: sampleLog(t, n), size: uint64(n)}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := audit.NewClient(srv.URL, audit.PublicKey{Name: testOrigin, Key: pub(s.key)})
	c.HTTP = srv.Client()
	return s, c
}

// editJSON decodes a proof body, applies f and re-encodes it.
func editJSON[T any](body []byte, f func(*T)) []byte {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		panic(err)
	}
	f(&v)
	b, _ := json.Marshal(v)
	return b
}

func TestClientHonestServer(t *testing.T) {
	s, c := newLogServer(t, 20)
	s.set(func(s *logServer) { s.size = 13; s.token = "tok" })
	c.Token = "tok"
	ctx := context.Background()
	cp, err := c.Checkpoint(ctx)
	if err != nil || cp.Size != 13 {
		t.Fatalf("Checkpoint = %+v, %v", cp, err)
	}
	for i := uint64(0); i < 13; i++ {
		if err := c.VerifyEntry(ctx, sampleEntry(i)); err != nil {
			t.Fatalf("VerifyEntry(%d): %v", i, err)
		}
	}
	// The log grows: the next checkpoint is proven consistent, and an
	// entry beyond the old checkpoint makes the client fetch a new one.
	s.set(func(s *logServer) { s.size = 20 })
	if err := c.VerifyEntry(ctx, sampleEntry(17)); err != nil {
		t.Fatalf("VerifyEntry(17) after growth: %v", err)
	}
	if got, _ := c.Latest(); got.Size != 20 {
		t.Fatalf("latest size = %d, want 20", got.Size)
	}
	// An entry that is not the one logged fails.
	e := sampleEntry(4)
	e.Outcome = audit.OutcomeReleased + "x"
	if err := c.VerifyEntry(ctx, e); !errors.Is(err, audit.ErrRootMismatch) {
		t.Fatalf("altered entry: err = %v, want ErrRootMismatch", err)
	}
}

func TestClientRejectsHostileServer(t *testing.T) {
	otherKey := testKey(8)
	fork := sampleLog(t, 20)
	fork.leaves[2] = []byte("forked")
	fork.hashes[2] = audit.LeafHash(fork.leaves[2])

	tests := []struct {
		name string
		// setup runs after the client has verified a checkpoint of size 10.
		setup  func(s *logServer)
		action func(ctx context.Context, c *audit.Client) error
		want   error
	}{
		{
			name: "forged inclusion proof",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return editJSON(b, func(v *audit.InclusionProof) { v.Hashes[0][0] ^= 1 })
				}
			},
			action: verifyEntry(3), want: audit.ErrRootMismatch,
		},
		{
			name: "proof for another entry",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return editJSON(b, func(v *audit.InclusionProof) { v.Index++ })
				}
			},
			action: verifyEntry(3), want: audit.ErrInvalidProof,
		},
		{
			name: "leaf hash of another entry",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return editJSON(b, func(v *audit.InclusionProof) { v.LeafHash = s.log.hashes[4] })
				}
			},
			action: verifyEntry(3), want: audit.ErrRootMismatch,
		},
		{
			name: "truncated inclusion proof",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return editJSON(b, func(v *audit.InclusionProof) { v.Hashes = v.Hashes[:len(v.Hashes)-1] })
				}
			},
			action: verifyEntry(3), want: audit.ErrInvalidProof,
		},
		{
			name: "too many hashes",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return editJSON(b, func(v *audit.InclusionProof) {
						for len(v.Hashes) <= audit.MaxProofHashes {
							v.Hashes = append(v.Hashes, v.Hashes[0])
						}
					})
				}
			},
			action: verifyEntry(3), want: audit.ErrInvalidProof,
		},
		{
			name: "unknown field in proof",
			setup: func(s *logServer) {
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathInclusionProof {
						return b
					}
					return []byte(strings.Replace(string(b), "{", `{"trust_me":true,`, 1))
				}
			},
			action: verifyEntry(3), want: audit.ErrInvalidProof,
		},
		{
			name:   "checkpoint signed by another key",
			setup:  func(s *logServer) { s.key = otherKey; s.size = 12 },
			action: checkpoint, want: audit.ErrBadSignature,
		},
		{
			name: "checkpoint with an edited size",
			setup: func(s *logServer) {
				s.size = 12
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathCheckpoint {
						return b
					}
					return []byte(strings.Replace(string(b), "\n12\n", "\n14\n", 1))
				}
			},
			action: checkpoint, want: audit.ErrBadSignature,
		},
		{
			name:   "rollback to a smaller signed tree",
			setup:  func(s *logServer) { s.size = 8 },
			action: checkpoint, want: audit.ErrInconsistent,
		},
		{
			name:   "fork: another tree of the same size",
			setup:  func(s *logServer) { s.log = fork },
			action: checkpoint, want: audit.ErrInconsistent,
		},
		{
			name:   "fork: a larger tree that does not extend the old one",
			setup:  func(s *logServer) { s.log = fork; s.size = 16 },
			action: checkpoint, want: audit.ErrInconsistent,
		},
		{
			name: "forged consistency proof",
			setup: func(s *logServer) {
				s.size = 16
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathConsistencyProof {
						return b
					}
					return editJSON(b, func(v *audit.ConsistencyProof) { v.Hashes[1][5] ^= 0x80 })
				}
			},
			action: checkpoint, want: audit.ErrInconsistent,
		},
		{
			name: "consistency proof for other sizes",
			setup: func(s *logServer) {
				s.size = 16
				s.tamper = func(p string, b []byte) []byte {
					if p != audit.PathConsistencyProof {
						return b
					}
					return editJSON(b, func(v *audit.ConsistencyProof) { v.From = 0; v.Hashes = nil })
				}
			},
			action: checkpoint, want: audit.ErrInvalidProof,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newLogServer(t, 20)
			s.set(func(s *logServer) { s.size = 10 })
			ctx := context.Background()
			if _, err := c.Checkpoint(ctx); err != nil {
				t.Fatalf("honest checkpoint: %v", err)
			}
			s.set(tc.setup)
			err := tc.action(ctx, c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got, _ := c.Latest(); got.Size != 10 {
				t.Fatalf("the client moved to an unverified checkpoint of size %d", got.Size)
			}
		})
	}
}

func TestClientHTTPErrors(t *testing.T) {
	s, c := newLogServer(t, 4)
	s.set(func(s *logServer) { s.token = "secret" })
	_, err := c.Checkpoint(context.Background())
	var he *audit.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 HTTPError", err)
	}
	s.set(func(s *logServer) {
		s.token = ""
		s.tamper = func(string, []byte) []byte { return make([]byte, 1<<20) }
	})
	if _, err := c.Checkpoint(context.Background()); err == nil {
		t.Fatal("oversized response accepted")
	}
}

func verifyEntry(i uint64) func(context.Context, *audit.Client) error {
	return func(ctx context.Context, c *audit.Client) error { return c.VerifyEntry(ctx, sampleEntry(i)) }
}

func checkpoint(ctx context.Context, c *audit.Client) error {
	_, err := c.Checkpoint(ctx)
	return err
}
