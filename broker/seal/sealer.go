package seal

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sieve-broker/sieve/broker"
)

// Sealed record format: formatV1, then the nonce, then ciphertext and tag.
const (
	formatV1   = 0x01
	nonceSize  = chacha20poly1305.NonceSizeX // 24: safe to draw at random
	headerSize = 1 + nonceSize
	tagSize    = chacha20poly1305.Overhead
	// Overhead is how many bytes sealing adds to a record.
	Overhead = headerSize + tagSize
)

// aadDomain starts the associated data of every record. It names the format
// version, so a record cannot be reinterpreted under a future one.
const aadDomain = "sieve/seal/v1 record\x00"

// maxAADField bounds each associated-data field; row ids and column names
// are short, and the bound keeps the length prefixes far from overflow.
const maxAADField = 4096

// SystemSubject is the subject whose data key seals the broker's own secrets
// (the broker.Vault). It is reserved: shopper operations refuse the
// "system:" prefix, so shopper erasure can never shred it.
const SystemSubject = "system:vault"

const systemPrefix = "system:"

// Associated data of vault secrets: the secret's name is the row.
const (
	vaultTable  = "vault"
	vaultColumn = "secret"
)

// Defaults of Options.
const (
	DefaultCacheSize = 10000
	DefaultCacheTTL  = 10 * time.Minute
)

// ErrErased is returned by Open when the subject's data key no longer
// exists: the shopper was erased (crypto-shredded) and the record is gone
// for good. It is a broker.Error with code ENotFound.
var ErrErased = &broker.Error{Code: broker.ENotFound, Message: "data erased"}

// ErrCorrupt is returned by Open for a record that does not authenticate:
// tampered with, truncated, of an unknown format version, sealed under
// another subject's key, or moved from the table, column or row it was
// sealed for. It is an internal error: stored data is damaged.
var ErrCorrupt = errors.New("seal: sealed record does not authenticate")

// TxIdentifier is implemented by stores whose methods join a transaction
// carried by the context (postgres.SubjectKeys is one). TxIdentity returns a
// comparable value naming that transaction, or nil outside one. With it, a
// Sealer caches a key seen inside a transaction only for that transaction
// until the key is seen outside it; without it, every context counts as
// outside any transaction.
type TxIdentifier interface {
	TxIdentity(ctx context.Context) any
}

// CommitNotifier is what a store that is a TxIdentifier may also implement:
// AfterCommit arranges for fn to run once the transaction of ctx has
// committed, and reports false when it cannot (no transaction, or one whose
// commit it does not see). A key a transaction created or read is then
// everyone's from its commit on, instead of being checked against the store
// again on its first use outside the transaction.
type CommitNotifier interface {
	AfterCommit(ctx context.Context, fn func()) bool
}

// Options tune a Sealer. Zero values take the defaults.
type Options struct {
	// CacheSize bounds the unwrapped data keys held in memory.
	CacheSize int
	// CacheTTL is how long an unwrapped key stays cached, counted from its
	// unwrapping. It also bounds how long this process may go on serving a
	// key erased by another process that did not reach Forget.
	CacheTTL time.Duration
}

// SetDefaults fills zero fields with the defaults.
func (o *Options) SetDefaults() {
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
}

// Validate reports every invalid field at once.
func (o Options) Validate() error {
	var errs []error
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("seal: CacheSize %d is negative", o.CacheSize))
	}
	if o.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("seal: CacheTTL %s is negative", o.CacheTTL))
	}
	return errors.Join(errs...)
}

// Sealer seals shoppers' records under their data keys and the broker's own
// secrets under the system key. It is safe for concurrent use; several
// Sealers, in one process or many, may share one store.
type Sealer struct {
	kr      *Keyring
	store   broker.SubjectKeyStore
	txs     TxIdentifier   // nil if the store does not say
	commits CommitNotifier // nil if the store does not say
	cache   *keyCache

	mu      sync.Mutex
	flights map[flightKey]*flight
}

var (
	_ broker.Sealer = (*Sealer)(nil)
	_ broker.Vault  = (*Sealer)(nil)
)

// flightKey names one key load; loads inside a transaction see what only
// that transaction sees, so they are not shared with others.
type flightKey struct {
	subject string
	mode    keyMode
	tx      any
}

// keyMode is what a key load may do when the store has no key.
type keyMode uint8

const (
	loadKey   keyMode = iota // read it; ErrErased when there is none
	createKey                // read it, else create one
	newKey                   // create one without reading first (a new subject)
)

// flight is a key load in progress that others wait for instead of paying
// for the same age unwrap (or creating the same key) again.
type flight struct {
	done chan struct{}
	err  error
}

// NewSealer returns a Sealer wrapping data keys with kr and storing them in
// store.
func NewSealer(kr *Keyring, store broker.SubjectKeyStore, opts Options) (*Sealer, error) {
	if kr == nil || store == nil {
		return nil, errors.New("seal: NewSealer needs a keyring and a key store")
	}
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Sealer{
		kr:      kr,
		store:   store,
		cache:   newKeyCache(opts.CacheSize, opts.CacheTTL),
		flights: make(map[flightKey]*flight),
	}
	s.txs, _ = store.(TxIdentifier)
	if s.txs != nil {
		s.commits, _ = store.(CommitNotifier)
	}
	return s, nil
}

// Close zeroes and drops every cached key. The Sealer keeps working, without
// a cache.
func (s *Sealer) Close() { s.cache.close() }

// Seal encrypts plaintext for subject, bound to b and the subject, creating
// the subject's data key on first use.
func (s *Sealer) Seal(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	return s.seal(ctx, subject, b, plaintext)
}

// SealNew is Seal for a subject this caller has just created (in the
// transaction of ctx): the data key is created without first being looked
// for, which saves a round trip on the path of every new shopper. It is a
// hint, never a risk: when the subject has a key after all (another caller
// created it first), the store keeps that one and the record is sealed
// under it.
func (s *Sealer) SealNew(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	var out []byte
	err := s.withAEAD(ctx, subject, newKey, func(aead cipher.AEAD) {
		out = sealRecord(aead, subject, b, plaintext)
	})
	return out, err
}

// NewSubjectKey makes a data key for a subject whose rows are not written
// yet (see broker.PendingKey). The caller stores Wrapped with the subject,
// in one statement, and then calls Keep.
func (s *Sealer) NewSubjectKey(subject string) (broker.PendingKey, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	k := &pendingKey{s: s, subject: subject, gen: s.cache.generation()}
	_, _ = rand.Read(k.key[:]) // never fails (crypto/rand.Read)
	w, err := s.kr.Wrap(subject, k.key[:])
	if err != nil {
		clear(k.key[:])
		return nil, err
	}
	k.wrapped = w
	return k, nil
}

// pendingKey is a Sealer's broker.PendingKey.
type pendingKey struct {
	s       *Sealer
	subject string
	gen     uint64 // the cache's erasure generation when it was made
	key     [dekSize]byte
	wrapped broker.WrappedKey
}

func (k *pendingKey) Wrapped() broker.WrappedKey { return k.wrapped }

func (k *pendingKey) Seal(b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	aead := newAEAD(&k.key)
	defer zeroAEAD(aead)
	return sealRecord(aead, k.subject, b, plaintext), nil
}

func (k *pendingKey) Keep(ctx context.Context) {
	tx := k.s.txOf(ctx)
	e := k.s.cache.put(k.subject, &k.key, k.gen, tx, k.wrapped)
	if e != nil && tx != nil && k.s.commits != nil {
		k.s.commits.AfterCommit(ctx, func() { k.s.cache.confirm(e) })
	}
}

func (k *pendingKey) Discard() { clear(k.key[:]) }

// Open decrypts a record sealed by Seal for the same subject and binding.
// It fails with ErrErased after the subject was shredded, and with
// ErrCorrupt when the record does not authenticate.
func (s *Sealer) Open(ctx context.Context, subject string, b broker.Binding, sealed []byte) ([]byte, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	return s.open(ctx, subject, b, sealed)
}

// Shred destroys the subject's data key (crypto-shredding): every record
// sealed for the subject becomes unreadable, in backups too once the
// identity that wrapped the key is retired. It also evicts the key from this
// process's cache; other processes must be told to Forget it. Shredding an
// absent key is no error. Called in a transaction, the erasure takes effect
// at commit; until then readers outside it still see the key, but this
// process will not cache it.
func (s *Sealer) Shred(ctx context.Context, subject string) error {
	if err := checkSubject(subject); err != nil {
		return err
	}
	// Delete first, then evict: a load that read the key before the delete
	// is evicted here or refused by the cache's erasure generation.
	err := s.store.DeleteSubjectKey(ctx, subject)
	s.cache.forget(subject)
	return err
}

// Forget evicts the subject's key from this process's cache, for when
// another process announces that it erased the subject.
func (s *Sealer) Forget(subject string) { s.cache.forget(subject) }

// SealSecret seals a broker-owned secret under the system data key, bound to
// name. It implements broker.Vault.
func (s *Sealer) SealSecret(ctx context.Context, name string, plaintext []byte) ([]byte, error) {
	if name == "" {
		return nil, broker.Errorf(broker.EInvalid, "secret name is empty")
	}
	return s.seal(ctx, SystemSubject, vaultBinding(name), plaintext)
}

// OpenSecret opens a secret sealed by SealSecret under the same name. It
// implements broker.Vault.
func (s *Sealer) OpenSecret(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	if name == "" {
		return nil, broker.Errorf(broker.EInvalid, "secret name is empty")
	}
	return s.open(ctx, SystemSubject, vaultBinding(name), sealed)
}

func vaultBinding(name string) broker.Binding {
	return broker.Binding{Table: vaultTable, Column: vaultColumn, RowID: name}
}

func (s *Sealer) seal(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	var out []byte
	err := s.withAEAD(ctx, subject, createKey, func(aead cipher.AEAD) {
		out = sealRecord(aead, subject, b, plaintext)
	})
	return out, err
}

func (s *Sealer) open(ctx context.Context, subject string, b broker.Binding, sealed []byte) ([]byte, error) {
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	// Reject malformed records before paying for a key.
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than any sealed record", ErrCorrupt, len(sealed))
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, sealed[0])
	}
	var (
		plaintext []byte
		openErr   error
	)
	err := s.withAEAD(ctx, subject, loadKey, func(aead cipher.AEAD) {
		plaintext, openErr = openRecord(aead, subject, b, sealed)
	})
	if err != nil {
		return nil, err
	}
	return plaintext, openErr
}

// aadPool recycles associated-data buffers: the AEAD is called through an
// interface, so a stack buffer would escape and cost an allocation per call.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func sealRecord(aead cipher.AEAD, subject string, b broker.Binding, plaintext []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = formatV1
	_, _ = rand.Read(out[1:headerSize]) // never fails (crypto/rand.Read)
	buf := aadPool.Get().(*[]byte)
	ad := AppendAAD(*buf, subject, b)
	out = aead.Seal(out, out[1:headerSize], plaintext, ad)
	*buf = ad[:0]
	aadPool.Put(buf)
	return out
}

func openRecord(aead cipher.AEAD, subject string, b broker.Binding, sealed []byte) ([]byte, error) {
	buf := aadPool.Get().(*[]byte)
	ad := AppendAAD(*buf, subject, b)
	plaintext, err := aead.Open(nil, sealed[1:headerSize], sealed[headerSize:], ad)
	*buf = ad[:0]
	aadPool.Put(buf)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plaintext, nil
}

// AppendAAD appends to dst the associated data that binds a record to subject and
// b: aadDomain, then Table, Column, RowID and subject, each as a 4-byte
// big-endian length and its bytes. With fixed-size length prefixes no two
// different bindings encode alike ("ab"+"c" differs from "a"+"bc"). The
// encoding is part of the stored format: changing it breaks every record.
func AppendAAD(dst []byte, subject string, b broker.Binding) []byte {
	dst = append(dst, aadDomain...)
	for _, f := range [...]string{b.Table, b.Column, b.RowID, subject} {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

func checkBinding(b broker.Binding) error {
	if b.Table == "" || b.Column == "" || b.RowID == "" {
		return broker.Errorf(broker.EInvalid, "a sealed record must be bound to a table, column and row")
	}
	if len(b.Table) > maxAADField || len(b.Column) > maxAADField || len(b.RowID) > maxAADField {
		return broker.Errorf(broker.EInvalid, "table, column or row id too long to bind")
	}
	return nil
}

func checkSubject(subject string) error {
	switch {
	case subject == "":
		return broker.Errorf(broker.EInvalid, "subject id is empty")
	case len(subject) > maxSubjectLen:
		return broker.Errorf(broker.EInvalid, "subject id is too long")
	case strings.HasPrefix(subject, systemPrefix):
		return broker.Errorf(broker.EInvalid, "subject ids starting with %q are reserved", systemPrefix)
	}
	return nil
}

// withAEAD calls fn with the AEAD under the subject's data key: the cached
// one, else one built from the key in the store (unwrapped, and cached for
// next time), else, if create, from a new key stored unless another caller
// stored one first. Concurrent misses for one subject share a single load.
func (s *Sealer) withAEAD(ctx context.Context, subject string, mode keyMode, fn func(cipher.AEAD)) error {
	tx := s.txOf(ctx)
	if ok, err := s.fromCache(ctx, subject, tx, fn); err != nil || ok {
		return err
	}
	// Loads inside a transaction see what only that transaction sees, so
	// they are shared only within it.
	fk := flightKey{subject: subject, mode: mode, tx: tx}
	s.mu.Lock()
	if f := s.flights[fk]; f != nil {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return f.err
		}
		if ok, err := s.fromCache(ctx, subject, tx, fn); err != nil || ok {
			return err
		}
		// The leader gave up on its own context, or its key could not be
		// cached (an erasure meanwhile): load for ourselves.
		return s.fetchAndUse(ctx, subject, mode, tx, fn)
	}
	f := &flight{done: make(chan struct{})}
	s.flights[fk] = f
	s.mu.Unlock()
	defer func() { // even if fetch panics, nobody waits forever
		s.mu.Lock()
		delete(s.flights, fk)
		s.mu.Unlock()
		close(f.done)
	}()
	f.err = s.fetchAndUse(ctx, subject, mode, tx, fn)
	return f.err
}

func (s *Sealer) txOf(ctx context.Context) any {
	if s.txs == nil {
		return nil
	}
	return s.txs.TxIdentity(ctx)
}

// fromCache calls fn with the cached AEAD, if any, and reports whether it
// did. A key cached by another transaction is first checked against the
// store: seen outside the transaction that first saw it, the key has been
// committed, and the entry becomes everyone's.
func (s *Sealer) fromCache(ctx context.Context, subject string, tx any, fn func(cipher.AEAD)) (bool, error) {
	res, e, seen := s.cache.use(subject, tx, fn)
	if res != verify {
		return res == hit, nil
	}
	stored, err := s.store.GetSubjectKey(ctx, subject)
	switch {
	case err == nil && sameWrapped(stored, seen) && s.cache.confirm(e):
		res, _, _ = s.cache.use(subject, tx, fn)
		return res == hit, nil
	case err == nil || broker.IsNotFound(err):
		// Rolled back, erased, or re-wrapped since: load afresh.
		s.cache.remove(e)
		return false, nil
	default:
		return false, err
	}
}

// fetchAndUse loads the key (see fetch) and calls fn with an AEAD under it.
func (s *Sealer) fetchAndUse(ctx context.Context, subject string, mode keyMode, tx any, fn func(cipher.AEAD)) error {
	var key [dekSize]byte
	defer clear(key[:])
	if err := s.fetch(ctx, subject, mode, tx, &key); err != nil {
		return err
	}
	aead := newAEAD(&key)
	fn(aead)
	zeroAEAD(aead)
	return nil
}

// fetch reads (or, by mode, creates) the key in the store, unwraps it into
// dst and caches it. A key seen inside a transaction is cached for that
// transaction, and for everyone once it commits (when the store tells).
func (s *Sealer) fetch(ctx context.Context, subject string, mode keyMode, tx any, dst *[dekSize]byte) error {
	gen := s.cache.generation()
	var stored broker.WrappedKey
	var err error = broker.ErrNotFound
	if mode != newKey {
		stored, err = s.store.GetSubjectKey(ctx, subject)
	}
	switch {
	case err == nil:
		if err := s.unwrapInto(stored, subject, dst); err != nil {
			return err
		}
	case !broker.IsNotFound(err):
		return err
	case mode == loadKey:
		return ErrErased
	default:
		var fresh [dekSize]byte
		defer clear(fresh[:])
		_, _ = rand.Read(fresh[:]) // never fails (crypto/rand.Read)
		mine, err := s.kr.Wrap(subject, fresh[:])
		if err != nil {
			return err
		}
		stored, err = s.store.PutSubjectKey(ctx, mine)
		if err != nil {
			return err
		}
		if sameWrapped(stored, mine) {
			*dst = fresh
		} else if err := s.unwrapInto(stored, subject, dst); err != nil { // another caller won
			return err
		}
	}
	e := s.cache.put(subject, dst, gen, tx, stored)
	if e != nil && tx != nil && s.commits != nil {
		// Committed, the key is what the store holds for everyone (an
		// erasure meanwhile drops the entry, and confirm then does nothing).
		s.commits.AfterCommit(ctx, func() { s.cache.confirm(e) })
	}
	return nil
}

func (s *Sealer) unwrapInto(w broker.WrappedKey, subject string, dst *[dekSize]byte) error {
	if w.Subject != subject {
		return fmt.Errorf("seal: key store returned the key of another subject")
	}
	dek, err := s.kr.Unwrap(w)
	if err != nil {
		return err
	}
	copy(dst[:], dek)
	clear(dek)
	return nil
}

func sameWrapped(a, b broker.WrappedKey) bool {
	return a.Subject == b.Subject && a.KeyID == b.KeyID && bytes.Equal(a.Wrapped, b.Wrapped)
}
