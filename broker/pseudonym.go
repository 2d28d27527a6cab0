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
	pool sync.Pool // of hash.Hash keyed with the secret
}

// NewPseudonymizer returns a pseudonymizer keyed with key (at least 32 bytes).
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 32 {
		return nil, errors.New("pseudonym key must be at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	p := &Pseudonymizer{}
	p.pool.New = func() any { return hmac.New(sha256.New, k) }
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
