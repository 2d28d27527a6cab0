package token_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/sieve-broker/sieve/broker"
)

// memStore is an in-memory broker.PartnerStore for this package's unit
// tests; the PostgreSQL store has its own tests in broker/postgres.
type memStore struct {
	mu       sync.Mutex
	partners []broker.Partner
	err      error // returned by every call when set
}

var _ broker.PartnerStore = (*memStore)(nil)

func (s *memStore) CreatePartner(_ context.Context, p broker.Partner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if slices.ContainsFunc(s.partners, func(q broker.Partner) bool { return q.ID == p.ID }) {
		return broker.Errorf(broker.EConflict, "already exists")
	}
	s.partners = append(s.partners, p)
	return nil
}

func (s *memStore) GetPartner(_ context.Context, id string) (broker.Partner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return broker.Partner{}, s.err
	}
	for _, p := range s.partners {
		if p.ID == id {
			return p, nil
		}
	}
	return broker.Partner{}, broker.ErrNotFound
}

func (s *memStore) ListPartners(context.Context) ([]broker.Partner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.partners), s.err
}

func (s *memStore) update(id string, fn func(*broker.Partner)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for i := range s.partners {
		if s.partners[i].ID == id {
			fn(&s.partners[i])
			return nil
		}
	}
	return broker.ErrNotFound
}

func (s *memStore) SetPartnerDisabled(_ context.Context, id string, disabled bool) error {
	return s.update(id, func(p *broker.Partner) { p.Disabled = disabled })
}

func (s *memStore) SetPartnerSecret(_ context.Context, id, hash string, sealed []byte) error {
	return s.update(id, func(p *broker.Partner) { p.SecretHash, p.SealedSecret = hash, sealed })
}

func (s *memStore) RetailerForStore(context.Context, string) (broker.Partner, error) {
	return broker.Partner{}, errors.New("not used by these tests")
}

func (s *memStore) RoutingStores(context.Context) ([]broker.Partner, error) {
	return nil, errors.New("not used by these tests")
}

// fakeVault "seals" by prefixing the name and reversing the bytes: enough
// to check that the name binds the ciphertext and that nothing is stored
// in the clear.
type fakeVault struct{}

func (fakeVault) SealSecret(_ context.Context, name string, pt []byte) ([]byte, error) {
	out := append([]byte(name+"\x00"), pt...)
	slices.Reverse(out[len(name)+1:])
	return out, nil
}

func (fakeVault) OpenSecret(_ context.Context, name string, sealed []byte) ([]byte, error) {
	prefix := []byte(name + "\x00")
	if !bytes.HasPrefix(sealed, prefix) {
		return nil, errors.New("fakeVault: wrong name")
	}
	pt := slices.Clone(sealed[len(prefix):])
	slices.Reverse(pt)
	return pt, nil
}
