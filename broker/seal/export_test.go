package seal

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sieve-broker/sieve/broker"
)

// MemStore is an in-memory broker.SubjectKeyStore for the tests that need no
// database. It counts reads and inserts, to tell cache hits from misses.
type MemStore struct {
	mu   sync.Mutex
	keys map[string]broker.WrappedKey

	Gets, Puts atomic.Int64
}

var _ broker.SubjectKeyStore = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{keys: make(map[string]broker.WrappedKey)} }

func (m *MemStore) GetSubjectKey(_ context.Context, subject string) (broker.WrappedKey, error) {
	m.Gets.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[subject]
	if !ok {
		return broker.WrappedKey{}, broker.ErrNotFound
	}
	return k, nil
}

func (m *MemStore) PutSubjectKey(_ context.Context, k broker.WrappedKey) (broker.WrappedKey, error) {
	m.Puts.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.keys[k.Subject]; ok {
		return old, nil
	}
	m.keys[k.Subject] = k
	return k, nil
}

func (m *MemStore) DeleteSubjectKey(_ context.Context, subject string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, subject)
	return nil
}

func (m *MemStore) SubjectKeysNotWrappedTo(_ context.Context, keyID, after string, limit int) ([]broker.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []broker.WrappedKey
	for _, k := range m.keys {
		if k.KeyID != keyID && k.Subject > after {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b broker.WrappedKey) int { return strings.Compare(a.Subject, b.Subject) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *MemStore) ReplaceSubjectKeys(_ context.Context, keys []broker.WrappedKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if _, ok := m.keys[k.Subject]; ok {
			m.keys[k.Subject] = k
		}
	}
	return nil
}

func (m *MemStore) CountSubjectKeys(context.Context) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := make(map[string]int64)
	for _, k := range m.keys {
		counts[k.KeyID]++
	}
	return counts, nil
}

// Set overwrites a stored key, as an attacker with write access could.
func (m *MemStore) Set(k broker.WrappedKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[k.Subject] = k
}

// CachedKeys returns how many data keys s holds unwrapped.
func (s *Sealer) CachedKeys() int { return s.cache.len() }
