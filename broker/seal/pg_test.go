package seal_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/seal"
)

// Tests against a real PostgreSQL store: the one the broker runs on.

func TestShredAcrossSealers(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	a := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	b := newSealer(t, kr, db.SubjectKeys(), seal.Options{}) // another process sharing the database
	pt := []byte(`{"wa_id":"919845000000","name":"Asha"}`)
	ident := broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: "shp_1"}
	sealed := mustSeal(t, a, "shp_1", ident, pt)
	other := mustSeal(t, a, "shp_2", ident, pt)
	mustOpen(t, b, "shp_1", ident, sealed, pt) // b now caches shp_1's key
	secret, err := a.SealSecret(ctx, "partner:p1", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}

	if err := a.Shred(ctx, "shp_1"); err != nil {
		t.Fatal(err)
	}
	b.Forget("shp_1") // what the erasure announcement does in b's process

	for name, s := range map[string]*seal.Sealer{"shredding sealer": a, "other sealer after Forget": b,
		"cold sealer": newSealer(t, kr, db.SubjectKeys(), seal.Options{})} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Open(ctx, "shp_1", ident, sealed)
			if !errors.Is(err, seal.ErrErased) || broker.ErrorCode(err) != broker.ENotFound || broker.ErrorMessage(err) != "data erased" {
				t.Fatalf("Open after Shred = %v, want ENotFound \"data erased\"", err)
			}
			mustOpen(t, s, "shp_2", ident, other, pt)
			if got, err := s.OpenSecret(ctx, "partner:p1", secret); err != nil || string(got) != "s3cret" {
				t.Fatalf("shopper erasure touched the vault: %q, %v", got, err)
			}
		})
	}
	if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_1"); !broker.IsNotFound(err) {
		t.Fatalf("key still stored: %v", err)
	}
}

func TestShredInsideATransaction(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	sealed := mustSeal(t, s, "shp_1", addr, []byte("x"))
	err := db.InTx(ctx, func(txCtx context.Context) error {
		if err := s.Shred(txCtx, "shp_1"); err != nil {
			return err
		}
		// Until commit, readers outside the transaction still see the key;
		// what they load must not stay cached past the commit.
		mustOpen(t, s, "shp_1", addr, sealed, []byte("x"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "shp_1", addr, sealed); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("Open after the erasure committed = %v, want ErrErased", err)
	}
}

func TestConcurrentFirstUseMakesOneKey(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	sealers := []*seal.Sealer{newSealer(t, kr, db.SubjectKeys(), seal.Options{}), newSealer(t, kr, db.SubjectKeys(), seal.Options{})}
	const perSealer = 16
	type rec struct {
		sealed []byte
		pt     []byte
	}
	var (
		mu      sync.Mutex
		records []rec
		start   = make(chan struct{})
		wg      sync.WaitGroup
	)
	for si, s := range sealers {
		for i := range perSealer {
			wg.Go(func() {
				<-start
				pt := []byte(fmt.Sprintf("record %d/%d", si, i))
				sealed, err := s.Seal(ctx, "shp_new", addr, pt)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				records = append(records, rec{sealed, pt})
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	counts, err := db.SubjectKeys().CountSubjectKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[kr.Current()] != 1 || len(counts) != 1 {
		t.Fatalf("keys after concurrent first use: %v, want exactly one", counts)
	}
	// Every record, from either sealer, opens under the one stored key.
	cold := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	for _, r := range records {
		mustOpen(t, cold, "shp_new", addr, r.sealed, r.pt)
	}
	if len(records) != 2*perSealer {
		t.Fatalf("%d records, want %d", len(records), 2*perSealer)
	}
}

// A key created inside a transaction that rolls back must not survive in
// the cache: records sealed later (a retry of the same work) would use a key
// the database never kept, and be lost once the cache forgets it.
func TestRolledBackKeyIsNotReused(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	rollback := errors.New("roll back")
	for attempt := range 2 {
		err := db.InTx(ctx, func(txCtx context.Context) error {
			sealed, err := s.Seal(txCtx, "shp_tx", addr, []byte("first"))
			if err != nil {
				return err
			}
			// Within the transaction its own key is usable.
			if got, err := s.Open(txCtx, "shp_tx", addr, sealed); err != nil || string(got) != "first" {
				t.Errorf("Open in the creating transaction = %q, %v", got, err)
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	var kept []byte
	err := db.InTx(ctx, func(txCtx context.Context) error {
		var err error
		kept, err = s.Seal(txCtx, "shp_tx", addr, []byte("kept"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	outside := mustSeal(t, s, "shp_tx", addr, []byte("outside"))
	cold := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	mustOpen(t, cold, "shp_tx", addr, kept, []byte("kept"))
	mustOpen(t, cold, "shp_tx", addr, outside, []byte("outside"))
	mustOpen(t, s, "shp_tx", addr, kept, []byte("kept"))
}

func TestRotateRewrapRetire(t *testing.T) {
	for _, pq := range []bool{false, true} {
		t.Run(map[bool]string{false: "X25519", true: "hybrid"}[pq], func(t *testing.T) {
			db := pgtest.New(t)
			dir := t.TempDir()
			kr, err := seal.LoadKeyring(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			old := kr.Current()
			s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
			const n = 7
			sealed := make([][]byte, n)
			for i := range n {
				sealed[i] = mustSeal(t, s, fmt.Sprintf("shp_%d", i), addr, []byte{byte(i)})
			}
			secret, err := s.SealSecret(ctx, "partner:p1", []byte("s3cret"))
			if err != nil {
				t.Fatal(err)
			}

			next, err := kr.Rotate(pq)
			if err != nil {
				t.Fatal(err)
			}
			if err := kr.Retire(ctx, old, db.SubjectKeys()); broker.ErrorCode(err) != broker.EConflict {
				t.Fatalf("Retire before re-wrapping = %v, want conflict", err)
			}
			var calls []int64
			if err := s.RewrapAll(ctx, func(done, total int64) {
				calls = append(calls, done)
				if total != n+1 {
					t.Errorf("total = %d, want %d", total, n+1)
				}
			}); err != nil {
				t.Fatal(err)
			}
			if len(calls) != 1 || calls[0] != n+1 {
				t.Errorf("progress calls %v, want one batch of %d", calls, n+1)
			}
			counts, err := db.SubjectKeys().CountSubjectKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(counts) != 1 || counts[next] != n+1 {
				t.Fatalf("counts after RewrapAll = %v, want all %d under %s", counts, n+1, next)
			}
			if err := kr.Retire(ctx, old, db.SubjectKeys()); err != nil {
				t.Fatalf("Retire after re-wrapping: %v", err)
			}

			// A process holding only the new identity opens everything.
			fresh, err := seal.LoadKeyring(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if ids := fresh.IDs(); len(ids) != 1 || ids[0] != next {
				t.Fatalf("identities on disk after Retire: %v", ids)
			}
			cold := newSealer(t, fresh, db.SubjectKeys(), seal.Options{})
			for i := range n {
				mustOpen(t, cold, fmt.Sprintf("shp_%d", i), addr, sealed[i], []byte{byte(i)})
			}
			if got, err := cold.OpenSecret(ctx, "partner:p1", secret); err != nil || string(got) != "s3cret" {
				t.Fatalf("vault secret after rotation: %q, %v", got, err)
			}
			// Nothing left to do: a rerun moves nothing.
			calls = nil
			if err := s.RewrapAll(ctx, func(done, _ int64) { calls = append(calls, done) }); err != nil || len(calls) != 0 {
				t.Fatalf("second RewrapAll: %v, progress %v", err, calls)
			}
		})
	}
}

func TestRewrapAllResumes(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	old := kr.Current()
	// More keys than one batch, stored directly (sealing records adds
	// nothing here).
	const n = seal.RewrapBatch + 100
	dek := make([]byte, 32)
	for i := range n {
		w, err := kr.Wrap(fmt.Sprintf("shp_%04d", i), dek)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SubjectKeys().PutSubjectKey(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	next, err := kr.Rotate(false)
	if err != nil {
		t.Fatal(err)
	}
	s := newSealer(t, kr, db.SubjectKeys(), seal.Options{})

	// Interrupted after the first batch.
	stop, cancel := context.WithCancel(ctx)
	err = s.RewrapAll(stop, func(done, total int64) {
		if done != seal.RewrapBatch || total != n {
			t.Errorf("first progress = %d/%d, want %d/%d", done, total, seal.RewrapBatch, n)
		}
		cancel()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted RewrapAll = %v, want context.Canceled", err)
	}
	counts, _ := db.SubjectKeys().CountSubjectKeys(ctx)
	if counts[next] != seal.RewrapBatch || counts[old] != 100 {
		t.Fatalf("after one batch: %v", counts)
	}

	// The rerun continues with what is left.
	var last [2]int64
	if err := s.RewrapAll(ctx, func(done, total int64) { last = [2]int64{done, total} }); err != nil {
		t.Fatal(err)
	}
	if last != [2]int64{100, 100} {
		t.Errorf("rerun progress = %v, want [100 100]", last)
	}
	counts, _ = db.SubjectKeys().CountSubjectKeys(ctx)
	if len(counts) != 1 || counts[next] != n {
		t.Fatalf("after the rerun: %v", counts)
	}
}

var _ broker.SubjectKeyStore = (*postgres.SubjectKeys)(nil)

// countingStore counts the key reads a Sealer makes of a real store; the
// embedded *postgres.SubjectKeys still says which transaction a context is
// in and when it commits.
type countingStore struct {
	*postgres.SubjectKeys
	mu         sync.Mutex
	gets, puts int
}

func (c *countingStore) GetSubjectKey(ctx context.Context, subject string) (broker.WrappedKey, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.SubjectKeys.GetSubjectKey(ctx, subject)
}

func (c *countingStore) PutSubjectKey(ctx context.Context, k broker.WrappedKey) (broker.WrappedKey, error) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.SubjectKeys.PutSubjectKey(ctx, k)
}

func (c *countingStore) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets, c.puts
}

var _ seal.CommitNotifier = (*postgres.SubjectKeys)(nil)

func TestSealNewSkipsTheLookupAndKeepsAnEarlierKey(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	cs := &countingStore{SubjectKeys: db.SubjectKeys()}
	s := newSealer(t, kr, cs, seal.Options{})
	pt := []byte("hello")
	sealed, err := s.SealNew(ctx, "shp_new", addr, pt)
	if err != nil {
		t.Fatal(err)
	}
	if gets, puts := cs.counts(); gets != 0 || puts != 1 {
		t.Fatalf("SealNew of a new subject: %d reads, %d writes of its key; want 0 and 1", gets, puts)
	}
	mustOpen(t, newSealer(t, kr, db.SubjectKeys(), seal.Options{}), "shp_new", addr, sealed, pt)

	// The hint is wrong: another process created the subject's key first.
	// The stored key wins, and what SealNew sealed opens everywhere.
	other := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	earlier := mustSeal(t, other, "shp_old", addr, []byte("first"))
	late, err := s.SealNew(ctx, "shp_old", addr, pt)
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, other, "shp_old", addr, late, pt)
	mustOpen(t, s, "shp_old", addr, earlier, []byte("first"))
}

func TestKeyCreatedInATransactionIsEveryonesAtCommit(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	cs := &countingStore{SubjectKeys: db.SubjectKeys()}
	s := newSealer(t, kr, cs, seal.Options{})
	var inside []byte
	if err := db.InTx(ctx, func(ctx context.Context) error {
		var err error
		inside, err = s.Seal(ctx, "shp_tx", addr, []byte("in"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gets, _ := cs.counts()
	// Committed: the cached key needs no second look at the store.
	outside := mustSeal(t, s, "shp_tx", addr, []byte("out"))
	mustOpen(t, s, "shp_tx", addr, inside, []byte("in"))
	if after, _ := cs.counts(); after != gets {
		t.Fatalf("%d key reads after the commit, want none", after-gets)
	}
	mustOpen(t, newSealer(t, kr, db.SubjectKeys(), seal.Options{}), "shp_tx", addr, outside, []byte("out"))

	// Rolled back: the key is gone, and the cache must not keep using it.
	rollback := errors.New("roll back")
	if err := db.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.Seal(ctx, "shp_rb", addr, []byte("x")); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v", err)
	}
	gets, _ = cs.counts()
	again := mustSeal(t, s, "shp_rb", addr, []byte("y"))
	if after, _ := cs.counts(); after == gets {
		t.Fatal("a key from a rolled-back transaction was used without a look at the store")
	}
	mustOpen(t, newSealer(t, kr, db.SubjectKeys(), seal.Options{}), "shp_rb", addr, again, []byte("y"))
}

func TestNewSubjectKeySealsBeforeTheSubjectIsStored(t *testing.T) {
	db := pgtest.New(t)
	kr := newKeyring(t)
	cs := &countingStore{SubjectKeys: db.SubjectKeys()}
	s := newSealer(t, kr, cs, seal.Options{})
	ident := broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: "shp_p"}
	k, err := s.NewSubjectKey("shp_p")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Discard()
	sealed, err := k.Seal(ident, []byte("me"))
	if err != nil {
		t.Fatal(err)
	}
	// What the new shopper's statement does with the wrapped key.
	if _, err := db.SubjectKeys().PutSubjectKey(ctx, k.Wrapped()); err != nil {
		t.Fatal(err)
	}
	k.Keep(ctx)
	mustOpen(t, s, "shp_p", ident, sealed, []byte("me"))
	more := mustSeal(t, s, "shp_p", addr, []byte("more"))
	if gets, puts := cs.counts(); gets != 0 || puts != 0 {
		t.Fatalf("%d reads and %d writes of a kept key, want none", gets, puts)
	}
	cold := newSealer(t, kr, db.SubjectKeys(), seal.Options{})
	mustOpen(t, cold, "shp_p", ident, sealed, []byte("me"))
	mustOpen(t, cold, "shp_p", addr, more, []byte("more"))

	// The category sealer's pending key is the contact key, and seals
	// nothing of another category.
	c := seal.NewCategorySealer(newSealer(t, kr, db.SubjectKeys(), seal.Options{}))
	ck, err := c.NewSubjectKey("shp_q")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Discard()
	if _, err := ck.Seal(broker.Binding{Table: "orders", Column: "sealed", RowID: "ord_1"}, []byte("x")); err == nil {
		t.Fatal("a fulfilment record sealed under the contact key")
	}
	if ck.Wrapped().Subject != "shp_q" {
		t.Fatalf("contact key stored under %q", ck.Wrapped().Subject)
	}
}
