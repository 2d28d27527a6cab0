package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
)

// Pseudonymizer derives keyed pseudonyms. Without the key nobody can link a
// pseudonym to a phone number or to another partner's pseudonym, and two
// partners never get the same reference for one shopper.
type Pseudonymizer struct {
	pool     sync.Pool // of hash.Hash keyed with the secret
	provider sync.Pool // of hash.Hash keyed with the provider-id sub-key
}

// NewPseudonymizer returns a pseudonymizer keyed with key (at least 32 bytes).
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 32 {
		return nil, errors.New("pseudonym key must be at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	p := &Pseudonymizer{}
	p.pool.New = func() any { return hmac.New(sha256.New, k) }
	// Provider ids get their own sub-key (HMAC of the key under a label no
	// other use shares), so that no hash stored for them can ever equal a
	// pseudonym, blind index or audit name computed with the main key.
	sub := hmac.New(sha256.New, k)
	sub.Write([]byte("sieve/provider-id/key/v1"))
	pk := sub.Sum(nil)
	p.provider.New = func() any { return hmac.New(sha256.New, pk) }
	return p, nil
}

func (p *Pseudonymizer) mac(domain string, parts ...string) []byte {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(domain))
	for _, s := range parts {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	sum := h.Sum(nil)
	p.pool.Put(h)
	return sum
}

// Partner returns the pairwise pseudonym of subject for partner: "cus_…".
func (p *Pseudonymizer) Partner(partnerID, subject string) string {
	return "cus_" + idEncoding.EncodeToString(p.mac("sieve/partner/v1", partnerID, subject)[:16])
}

// Audit returns the subject's pseudonym in the audit log: "sub_…".
func (p *Pseudonymizer) Audit(subject string) string {
	return "sub_" + idEncoding.EncodeToString(p.mac("sieve/audit/v1", subject)[:16])
}

// BlindIndex returns a keyed hash of an identifier (a phone number, a
// BSUID) for lookups, so the identifier itself is never stored in plaintext.
func (p *Pseudonymizer) BlindIndex(kind, value string) []byte {
	return p.mac("sieve/index/v1", kind, value)
}

// ProviderKeyPrefix starts every value ProviderKey returns; stored values
// without it are plaintext from before provider ids were hashed.
const ProviderKeyPrefix = "k:"

// ProviderKey returns the keyed hash under which a provider identifier
// that belongs to one shopper is stored: a WhatsApp message id (which holds
// the phone number), a status or payment event id, a deduplication key
// built from them. It hashes the shopper's subject id with the identifier,
// so deduplication and status matching are per shopper: a message id one
// sender reuses cannot suppress or update another shopper's. The result is
// "k:" and 26 base32 characters (128 bits).
func (p *Pseudonymizer) ProviderKey(subject, id string) string {
	h := p.provider.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var buf [sha256.Size]byte
	sum := h.Sum(buf[:0])
	p.provider.Put(h)
	return ProviderKeyPrefix + idEncoding.EncodeToString(sum[:16])
}
