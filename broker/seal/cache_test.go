package seal

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

func keyOf(b byte) *[dekSize]byte {
	var k [dekSize]byte
	for i := range k {
		k[i] = b
	}
	return &k
}

// get looks subject up as tx and returns the key it found.
func (c *keyCache) get(subject string, tx any) (lookupResult, [dekSize]byte) {
	var key [dekSize]byte
	res, _, _ := c.use(subject, tx, func(a cipher.AEAD) { key = *aeadKey(a) })
	return res, key
}

func TestAEADKeyCanBeZeroed(t *testing.T) {
	if !canZeroAEAD {
		t.Fatal("the x/crypto XChaCha20-Poly1305 layout changed: cached keys are no longer zeroed on eviction; update zeroAEAD")
	}
	a := newAEAD(keyOf(7))
	zeroAEAD(a)
	if *aeadKey(a) != [dekSize]byte{} {
		t.Fatal("zeroAEAD left key bytes")
	}
	// The AEAD now works under the all-zero key: the bytes zeroed were the key.
	ct := a.Seal(nil, make([]byte, nonceSize), []byte("x"), nil)
	if _, err := newAEAD(&[dekSize]byte{}).Open(nil, make([]byte, nonceSize), ct, nil); err != nil {
		t.Fatal("zeroed bytes were not the AEAD's key")
	}
}

func TestCacheEvictsOldestAndZeroes(t *testing.T) {
	c := newKeyCache(2, time.Hour)
	defer c.close()
	c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
	aeadA := c.entries["a"].aead
	c.put("b", keyOf(2), c.generation(), nil, broker.WrappedKey{})
	c.put("c", keyOf(3), c.generation(), nil, broker.WrappedKey{})
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2", c.len())
	}
	tests := []struct {
		subject string
		want    lookupResult
		key     byte
	}{
		{subject: "a", want: miss},
		{subject: "b", want: hit, key: 2},
		{subject: "c", want: hit, key: 3},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			res, key := c.get(tc.subject, nil)
			if res != tc.want || (res == hit && key != *keyOf(tc.key)) {
				t.Fatalf("lookup = %v, key %x", res, key[:4])
			}
		})
	}
	if *aeadKey(aeadA) != [dekSize]byte{} {
		t.Error("evicted key not zeroed")
	}
}

func TestCacheExpiresOnItsOwn(t *testing.T) {
	c := newKeyCache(10, 30*time.Millisecond)
	defer c.close()
	c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
	a := c.entries["a"].aead
	if res, _ := c.get("a", nil); res != hit {
		t.Fatal("fresh entry missed")
	}
	// No lookups: the sweep timer alone must clear the key.
	deadline := time.Now().Add(2 * time.Second)
	for c.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.len() != 0 {
		t.Fatal("expired key still cached with the process idle")
	}
	c.mu.RLock()
	zeroed := *aeadKey(a) == [dekSize]byte{}
	c.mu.RUnlock()
	if !zeroed {
		t.Error("expired key not zeroed")
	}
}

func TestCacheNeverOutlivesAnErasure(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *keyCache) // ends with a put of "a" that must not stick
	}{
		{name: "load in flight during the erasure", run: func(c *keyCache) {
			gen := c.generation() // the load starts, reads the store...
			c.forget("zzz")       // ...an erasure (of anyone) happens...
			c.put("a", keyOf(1), gen, nil, broker.WrappedKey{})
		}},
		{name: "load after an erasure not yet committed", run: func(c *keyCache) {
			c.forget("a") // Shred inside a transaction still open
			c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
		}},
		{name: "cached before the erasure", run: func(c *keyCache) {
			c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
			c.forget("a")
		}},
		{name: "after close", run: func(c *keyCache) {
			c.close()
			c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newKeyCache(10, time.Hour)
			defer c.close()
			tc.run(c)
			if res, _ := c.get("a", nil); res != miss {
				t.Fatalf("lookup = %v, want miss", res)
			}
		})
	}
}

func TestCacheTombstoneEnds(t *testing.T) {
	c := newKeyCache(10, 20*time.Millisecond)
	defer c.close()
	c.forget("a")
	time.Sleep(30 * time.Millisecond)
	c.put("a", keyOf(1), c.generation(), nil, broker.WrappedKey{})
	if res, _ := c.get("a", nil); res != hit {
		t.Fatalf("lookup = %v after the tombstone ended, want hit", res)
	}
	if len(c.tombs) != 0 || len(c.tombQ) != 0 {
		t.Errorf("tombstones not pruned: %v %v", c.tombs, c.tombQ)
	}
}

func TestCacheTransactionScopedEntries(t *testing.T) {
	c := newKeyCache(10, time.Hour)
	defer c.close()
	txA, txB := new(int), new(int)
	seen := broker.WrappedKey{Subject: "a", KeyID: "k", Wrapped: []byte("w")}
	c.put("a", keyOf(1), c.generation(), txA, seen)
	nop := func(cipher.AEAD) {}
	tests := []struct {
		name string
		tx   any
		want lookupResult
	}{
		{name: "same transaction", tx: txA, want: hit},
		{name: "other transaction", tx: txB, want: verify},
		{name: "no transaction", tx: nil, want: verify},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, e, w := c.use("a", tc.tx, nop)
			if res != tc.want {
				t.Fatalf("lookup = %v, want %v", res, tc.want)
			}
			if res == verify && (e == nil || !bytes.Equal(w.Wrapped, seen.Wrapped)) {
				t.Fatalf("verify without the entry or what was seen")
			}
		})
	}
	_, e, _ := c.use("a", nil, nop)
	if !c.confirm(e) {
		t.Fatal("confirm failed")
	}
	if res, key := c.get("a", txB); res != hit || key != *keyOf(1) {
		t.Fatalf("confirmed entry: lookup = %v, want hit for everyone", res)
	}
}

// TestKnownAnswer pins the stored format: a record sealed by an earlier
// build must open in every later one.
func TestKnownAnswer(t *testing.T) {
	raw, err := os.ReadFile("testdata/record-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Key       string `json:"key"`
		Subject   string `json:"subject"`
		Table     string `json:"table"`
		Column    string `json:"column"`
		RowID     string `json:"row_id"`
		Plaintext string `json:"plaintext"`
		AAD       string `json:"aad"`
		Sealed    string `json:"sealed"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b := broker.Binding{Table: v.Table, Column: v.Column, RowID: v.RowID}
	if got := hex.EncodeToString(AppendAAD(nil, v.Subject, b)); got != v.AAD {
		t.Fatalf("AppendAAD = %s, want %s", got, v.AAD)
	}
	var key [dekSize]byte
	kb, _ := hex.DecodeString(v.Key)
	copy(key[:], kb)
	sealed, _ := hex.DecodeString(v.Sealed)
	pt, err := openRecord(newAEAD(&key), v.Subject, b, sealed)
	if err != nil || string(pt) != v.Plaintext {
		t.Fatalf("openRecord = %q, %v; want %q", pt, err, v.Plaintext)
	}
}

func (r lookupResult) String() string {
	switch r {
	case miss:
		return "miss"
	case hit:
		return "hit"
	case verify:
		return "verify"
	}
	return fmt.Sprintf("lookupResult(%d)", int(r))
}
