package seal

import (
	"crypto/cipher"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// keyCache holds unwrapped data keys, bounded in size and lifetime, and
// zeroes each key as it leaves.
//
// A key is held only inside its AEAD (built once, when cached), which is
// used under the read lock: so there is one copy of each key in memory, no
// allocation per record, and no record can be sealed with a key that an
// eviction is zeroing at the same moment.
//
// Entries expire CacheTTL after they were unwrapped, whatever their use: the
// lifetime bounds how long a process can keep serving a key that another
// process erased without telling it. Since the lifetime is fixed, the entry
// loaded first is also the one that expires first, so one FIFO list serves
// both expiry and the size bound, and a hit changes nothing: lookups share a
// read lock.
type keyCache struct {
	mu      sync.RWMutex
	entries map[string]*cacheEntry
	oldest  *cacheEntry // FIFO by load time, oldest first
	newest  *cacheEntry
	max     int
	ttl     time.Duration
	base    time.Time // expiry times are monotonic offsets from base

	// gen changes with every erasure this process sees; a load that began
	// under another generation may have read a key erased since, and is
	// not cached.
	gen uint64
	// tombs holds subjects erased less than ttl ago, with the time their
	// tombstone ends: their keys are not cached meanwhile, so an erasure in
	// a transaction not yet committed cannot be undone by a concurrent read
	// of the still-visible key.
	tombs map[string]time.Duration
	tombQ []tombstone // in expiry order

	timer  *time.Timer // fires when the oldest entry expires
	armed  bool
	closed bool
}

type cacheEntry struct {
	subject string
	aead    cipher.AEAD // XChaCha20-Poly1305 under the subject's data key
	expires time.Duration
	// tx is non-nil while the key has been seen only inside that
	// transaction, which may still roll back; wrapped is what was seen,
	// to check the key against the store once outside it.
	tx           any
	wrapped      broker.WrappedKey
	older, newer *cacheEntry
}

type tombstone struct {
	subject string
	until   time.Duration
}

type lookupResult int

const (
	miss   lookupResult = iota
	hit                 // the key was used
	verify              // the key was seen only in another transaction: check it
)

func newKeyCache(max int, ttl time.Duration) *keyCache {
	return &keyCache{
		entries: make(map[string]*cacheEntry),
		tombs:   make(map[string]time.Duration),
		max:     max,
		ttl:     ttl,
		base:    time.Now(),
	}
}

func (c *keyCache) now() time.Duration { return time.Since(c.base) }

// use calls fn with the subject's AEAD, under the read lock, on a hit. For
// a key seen only in another transaction than tx it returns verify, the
// entry and what was seen; the caller checks the store and calls confirm or
// remove. fn must not call back into the cache.
//
// Expiry is not checked here but by the sweep timer, which removes each
// entry at its deadline: that keeps the clock read off the hot path, at the
// price of an entry outliving its TTL by the timer's latency.
func (c *keyCache) use(subject string, tx any, fn func(cipher.AEAD)) (lookupResult, *cacheEntry, broker.WrappedKey) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.entries[subject]
	switch {
	case e == nil:
		return miss, nil, broker.WrappedKey{}
	case e.tx != nil && e.tx != tx:
		return verify, e, e.wrapped
	}
	fn(e.aead)
	return hit, nil, broker.WrappedKey{}
}

// confirm marks e as committed: the store showed the same key outside the
// transaction that first saw it. It fails if e left the cache meanwhile.
func (c *keyCache) confirm(e *cacheEntry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.subject] != e {
		return false
	}
	e.tx, e.wrapped = nil, broker.WrappedKey{}
	return true
}

// generation returns the erasure generation, to be passed to put by a load.
func (c *keyCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches key for subject unless an erasure happened since gen was read
// or the subject was erased recently. tx is the transaction the key was
// seen in (nil: committed), w what was seen. The cache keeps its own copy:
// the caller still owns (and clears) key. It returns the entry, or nil when
// the key was not cached.
func (c *keyCache) put(subject string, key *[dekSize]byte, gen uint64, tx any, w broker.WrappedKey) *cacheEntry {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneTombsLocked(now)
	if c.closed || gen != c.gen {
		return nil
	}
	if _, erased := c.tombs[subject]; erased {
		return nil
	}
	if old := c.entries[subject]; old != nil {
		c.removeLocked(old)
	}
	for len(c.entries) >= c.max && c.oldest != nil {
		c.removeLocked(c.oldest)
	}
	e := &cacheEntry{subject: subject, aead: newAEAD(key), expires: now + c.ttl, tx: tx}
	if tx != nil {
		e.wrapped = w
	}
	c.entries[subject] = e
	e.older = c.newest
	if c.newest != nil {
		c.newest.newer = e
	} else {
		c.oldest = e
	}
	c.newest = e
	c.armLocked(now)
	return e
}

// remove drops e if it is still cached.
func (c *keyCache) remove(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.subject] == e {
		c.removeLocked(e)
	}
}

// forget drops the subject's key, makes in-flight loads not cache what they
// read, and keeps the subject out of the cache for ttl.
func (c *keyCache) forget(subject string) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e := c.entries[subject]; e != nil {
		c.removeLocked(e)
	}
	if c.closed {
		return
	}
	until := now + c.ttl
	c.tombs[subject] = until
	c.tombQ = append(c.tombQ, tombstone{subject: subject, until: until})
	c.pruneTombsLocked(now)
}

// len returns the number of cached keys.
func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// close zeroes and drops every key; the cache caches nothing afterwards.
func (c *keyCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.oldest != nil {
		c.removeLocked(c.oldest)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.armed = false
	c.tombs, c.tombQ = map[string]time.Duration{}, nil
}

func (c *keyCache) removeLocked(e *cacheEntry) {
	delete(c.entries, e.subject)
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		c.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		c.newest = e.older
	}
	e.older, e.newer = nil, nil
	zeroAEAD(e.aead)
	e.aead, e.tx, e.wrapped = nil, nil, broker.WrappedKey{}
}

func (c *keyCache) expireLocked(now time.Duration) {
	for c.oldest != nil && now >= c.oldest.expires {
		c.removeLocked(c.oldest)
	}
}

func (c *keyCache) pruneTombsLocked(now time.Duration) {
	n := 0
	for n < len(c.tombQ) && now >= c.tombQ[n].until {
		t := c.tombQ[n]
		// A later erasure of the same subject extended its tombstone.
		if c.tombs[t.subject] == t.until {
			delete(c.tombs, t.subject)
		}
		n++
	}
	if n > 0 {
		c.tombQ = append(c.tombQ[:0], c.tombQ[n:]...)
	}
}

// armLocked schedules a sweep for when the oldest entry expires, so that
// keys leave memory on time even when the process goes idle.
func (c *keyCache) armLocked(now time.Duration) {
	if c.armed || c.closed || c.oldest == nil {
		return
	}
	d := max(c.oldest.expires-now, time.Millisecond)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.sweep)
	} else {
		c.timer.Reset(d)
	}
	c.armed = true
}

func (c *keyCache) sweep() {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	c.expireLocked(now)
	c.pruneTombsLocked(now)
	c.armLocked(now)
}
