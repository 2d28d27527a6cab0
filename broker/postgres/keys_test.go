package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

func wk(subject, keyID, wrapped string) broker.WrappedKey {
	return broker.WrappedKey{Subject: subject, KeyID: keyID, Wrapped: []byte(wrapped)}
}

func sameKey(a, b broker.WrappedKey) bool {
	return a.Subject == b.Subject && a.KeyID == b.KeyID && bytes.Equal(a.Wrapped, b.Wrapped)
}

func mustPut(ctx context.Context, t *testing.T, db *postgres.DB, keys ...broker.WrappedKey) {
	t.Helper()
	for _, k := range keys {
		got, err := db.SubjectKeys().PutSubjectKey(ctx, k)
		if err != nil {
			t.Fatalf("PutSubjectKey: %v", err)
		}
		if !sameKey(got, k) {
			t.Fatalf("PutSubjectKey returned %+v, want the new key %+v", got, k)
		}
	}
}

func TestSubjectKeyPutGetDelete(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustPut(ctx, t, db, wk("shp_a", "k1", "first"))

	tests := []struct {
		name     string
		put      broker.WrappedKey
		wantCode string
		want     broker.WrappedKey // what Put returns and Get reads afterwards
	}{
		{name: "second put keeps the first key", put: wk("shp_a", "k2", "second"), want: wk("shp_a", "k1", "first")},
		{name: "new subject is stored", put: wk("shp_b", "k2", "other"), want: wk("shp_b", "k2", "other")},
		{name: "missing subject is invalid", put: wk("", "k1", "x"), wantCode: broker.EInvalid},
		{name: "missing key id is invalid", put: wk("shp_c", "", "x"), wantCode: broker.EInvalid},
		{name: "empty wrapped key is invalid", put: wk("shp_c", "k1", ""), wantCode: broker.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.SubjectKeys().PutSubjectKey(ctx, tc.put)
			if code := broker.ErrorCode(err); code != tc.wantCode {
				t.Fatalf("PutSubjectKey error = %v, want code %q", err, tc.wantCode)
			}
			if tc.wantCode != "" {
				return
			}
			if !sameKey(got, tc.want) {
				t.Errorf("PutSubjectKey = %+v, want %+v", got, tc.want)
			}
			read, err := db.SubjectKeys().GetSubjectKey(ctx, tc.put.Subject)
			if err != nil || !sameKey(read, tc.want) {
				t.Errorf("GetSubjectKey = %+v, %v; want %+v", read, err, tc.want)
			}
		})
	}

	t.Run("get of an unknown subject is not found", func(t *testing.T) {
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_nobody"); !broker.IsNotFound(err) {
			t.Fatalf("GetSubjectKey error = %v, want not found", err)
		}
	})
	t.Run("delete destroys the key and is idempotent", func(t *testing.T) {
		for i := range 2 {
			if err := db.SubjectKeys().DeleteSubjectKey(ctx, "shp_a"); err != nil {
				t.Fatalf("DeleteSubjectKey #%d: %v", i+1, err)
			}
		}
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_a"); !broker.IsNotFound(err) {
			t.Fatalf("GetSubjectKey after delete: %v, want not found", err)
		}
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_b"); err != nil {
			t.Fatalf("delete touched another subject: %v", err)
		}
	})
}

func TestPutSubjectKeyConcurrentFirstWriterWins(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	const n = 16
	results := make([]broker.WrappedKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = db.SubjectKeys().PutSubjectKey(ctx, wk("shp_race", "k1", fmt.Sprintf("candidate-%d", i)))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("put %d: %v", i, errs[i])
		}
		if !sameKey(results[i], results[0]) {
			t.Fatalf("put %d saw %q, put 0 saw %q: callers disagree on the key", i, results[i].Wrapped, results[0].Wrapped)
		}
	}
	stored, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_race")
	if err != nil || !sameKey(stored, results[0]) {
		t.Fatalf("stored key %+v (%v) is not the one every caller got (%+v)", stored, err, results[0])
	}
}

func TestSubjectKeysNotWrappedToPages(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustPut(ctx, t, db,
		wk("shp_1", "old", "w1"), wk("shp_2", "new", "w2"), wk("shp_3", "old", "w3"),
		wk("shp_4", "older", "w4"), wk("shp_5", "old", "w5"))

	tests := []struct {
		name         string
		keyID, after string
		limit        int
		want         []string // subjects, in order
		wantCode     string
	}{
		{name: "all not wrapped to new", keyID: "new", limit: 10, want: []string{"shp_1", "shp_3", "shp_4", "shp_5"}},
		{name: "first page", keyID: "new", limit: 2, want: []string{"shp_1", "shp_3"}},
		{name: "page after a cursor", keyID: "new", after: "shp_3", limit: 2, want: []string{"shp_4", "shp_5"}},
		{name: "past the end", keyID: "new", after: "shp_5", limit: 2, want: nil},
		{name: "other target id", keyID: "old", limit: 10, want: []string{"shp_2", "shp_4"}},
		{name: "zero limit is invalid", keyID: "new", limit: 0, wantCode: broker.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := db.SubjectKeys().SubjectKeysNotWrappedTo(ctx, tc.keyID, tc.after, tc.limit)
			if code := broker.ErrorCode(err); code != tc.wantCode {
				t.Fatalf("error = %v, want code %q", err, tc.wantCode)
			}
			var got []string
			for _, k := range keys {
				if k.KeyID == tc.keyID || len(k.Wrapped) == 0 {
					t.Errorf("returned %+v", k)
				}
				got = append(got, k.Subject)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("subjects = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReplaceAndCountSubjectKeys(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustPut(ctx, t, db, wk("shp_1", "old", "w1"), wk("shp_2", "old", "w2"), wk("shp_3", "new", "w3"))
	if err := db.SubjectKeys().DeleteSubjectKey(ctx, "shp_2"); err != nil {
		t.Fatal(err)
	}

	t.Run("replaces existing rows and never resurrects deleted ones", func(t *testing.T) {
		err := db.SubjectKeys().ReplaceSubjectKeys(ctx, []broker.WrappedKey{wk("shp_1", "new", "r1"), wk("shp_2", "new", "r2")})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_1"); err != nil || !sameKey(got, wk("shp_1", "new", "r1")) {
			t.Errorf("shp_1 = %+v, %v", got, err)
		}
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_2"); !broker.IsNotFound(err) {
			t.Errorf("deleted key came back: %v", err)
		}
		var rewrapped bool
		if err := db.Pool.QueryRow(ctx, "SELECT rewrapped_at IS NOT NULL FROM subject_keys WHERE subject_id = 'shp_1'").Scan(&rewrapped); err != nil || !rewrapped {
			t.Errorf("rewrapped_at not set: %v", err)
		}
	})

	invalid := []struct {
		name string
		keys []broker.WrappedKey
	}{
		{name: "repeated subject", keys: []broker.WrappedKey{wk("shp_1", "x", "a"), wk("shp_1", "y", "b")}},
		{name: "empty wrapped key", keys: []broker.WrappedKey{wk("shp_1", "x", "")}},
		{name: "missing key id", keys: []broker.WrappedKey{wk("shp_1", "", "a")}},
	}
	for _, tc := range invalid {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			if err := db.SubjectKeys().ReplaceSubjectKeys(ctx, tc.keys); broker.ErrorCode(err) != broker.EInvalid {
				t.Fatalf("error = %v, want invalid", err)
			}
			if got, _ := db.SubjectKeys().GetSubjectKey(ctx, "shp_1"); !sameKey(got, wk("shp_1", "new", "r1")) {
				t.Fatalf("a rejected batch changed shp_1 to %+v", got)
			}
		})
	}

	t.Run("an empty batch is a no-op", func(t *testing.T) {
		if err := db.SubjectKeys().ReplaceSubjectKeys(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("count by key id", func(t *testing.T) {
		counts, err := db.SubjectKeys().CountSubjectKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 1 || counts["new"] != 2 {
			t.Fatalf("counts = %v, want map[new:2]", counts)
		}
	})
}

var errRollback = errors.New("roll back")

func TestSubjectKeysJoinTheCallersTransaction(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if db.SubjectKeys().TxIdentity(ctx) != nil {
		t.Fatal("TxIdentity outside a transaction is not nil")
	}
	err := db.InTx(ctx, func(ctx context.Context) error {
		id := db.SubjectKeys().TxIdentity(ctx)
		if id == nil || id != db.SubjectKeys().TxIdentity(context.WithValue(ctx, otherKey{}, 1)) {
			t.Error("TxIdentity inside a transaction is nil or unstable")
		}
		mustPut(ctx, t, db, wk("shp_tx", "k1", "uncommitted"))
		if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_tx"); err != nil {
			t.Errorf("the transaction does not see its own key: %v", err)
		}
		if _, err := db.SubjectKeys().GetSubjectKey(context.Background(), "shp_tx"); !broker.IsNotFound(err) {
			t.Errorf("an uncommitted key is visible outside the transaction: %v", err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_tx"); !broker.IsNotFound(err) {
		t.Fatalf("a rolled-back key survived: %v", err)
	}
}

func TestSubjectKeysNotWrappedToLocksAgainstErasure(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustPut(ctx, t, db, wk("shp_1", "old", "w1"))
	locked := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, func(ctx context.Context) error {
			if _, err := db.SubjectKeys().SubjectKeysNotWrappedTo(ctx, "new", "", 10); err != nil {
				return err
			}
			close(locked)
			<-release
			return db.SubjectKeys().ReplaceSubjectKeys(ctx, []broker.WrappedKey{wk("shp_1", "new", "r1")})
		})
	}()
	<-locked
	// The erasure must wait for the re-wrap to commit instead of being
	// overwritten by it.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := db.SubjectKeys().DeleteSubjectKey(short, "shp_1")
	cancel()
	if err == nil {
		t.Fatal("DeleteSubjectKey did not wait for the re-wrap holding the row")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.SubjectKeys().DeleteSubjectKey(ctx, "shp_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SubjectKeys().GetSubjectKey(ctx, "shp_1"); !broker.IsNotFound(err) {
		t.Fatalf("key survived its erasure: %v", err)
	}
}

// otherKey is an unrelated context key: TxIdentity must ignore it.
type otherKey struct{}
