package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
)

// JWKSContentType is the media type of a JWK Set (RFC 7517 §8.5).
const JWKSContentType = "application/jwk-set+json"

// SigningSubdir is the directory under BROKER_KEY_DIR that holds the
// signing keys; other subdirectories belong to other key owners.
const SigningSubdir = "signing"

const (
	currentFile = "current" // names the kid that signs
	nextFile    = "next"    // "<kid> <RFC 3339 time>": a published key and when it starts signing
	keySuffix   = ".pem"
	pemType     = "PRIVATE KEY" // PKCS#8
	kidLen      = 16            // base64url characters: 96 bits of the key's hash
	maxKeyFile  = 16 << 10      // a PKCS#8 Ed25519 PEM is ~120 bytes; refuse junk
)

// Keyring holds the Ed25519 signing keys: the current one, which signs
// tokens and audit checkpoints, and the previous one, kept after a rotation
// so the tokens it signed verify until they expire. It is safe for
// concurrent use. Changes (Rotate, Retire) are written to disk first, under
// an exclusive lock, so brokerctl and brokerd sharing a key directory do not
// clobber each other; a process sees another's change after Reload.
type Keyring struct {
	dir string // <BROKER_KEY_DIR>/signing

	mu      sync.RWMutex
	current string
	keys    map[string]*ringKey // by kid
	jwks    []byte              // rebuilt whenever keys change
	// next is a key published in the JWKS that signs from nextAt on
	// (RotateAfter); until then current signs.
	next   string
	nextAt time.Time
	now    func() time.Time
}

type ringKey struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	path string
}

// KeyID returns the kid of an Ed25519 public key: the first 16 characters
// of the base64url (unpadded) SHA-256 of its 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:kidLen]
}

// LoadKeyring loads the signing keys under <keyDir>/signing. With create,
// missing directories and a missing first key are created (development and
// first start); without it (BROKER_ENV=production) a missing key is an
// error, since a silently generated key would invalidate every token and
// checkpoint signature partners and auditors hold.
func LoadKeyring(keyDir string, create bool) (*Keyring, error) {
	if keyDir == "" {
		return nil, errors.New("signing keys: no key directory (set BROKER_KEY_DIR)")
	}
	kr := &Keyring{dir: filepath.Join(keyDir, SigningSubdir), now: time.Now}
	if !create {
		if err := kr.Reload(); err != nil {
			if errors.Is(err, errNoKey) {
				return nil, fmt.Errorf("signing keys: no signing key in %s; create one with `brokerctl keys init` (keys are not created automatically when BROKER_ENV=production)", kr.dir)
			}
			return nil, err
		}
		return kr, nil
	}
	if err := os.MkdirAll(kr.dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	unlock, err := keydir.LockDir(kr.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := readRing(kr.dir)
	if errors.Is(err, errNoKey) {
		var k *ringKey
		if k, err = writeNewKey(kr.dir); err == nil {
			if err = writeCurrent(kr.dir, k.kid); err == nil {
				st = &ringState{current: k.kid, keys: map[string]*ringKey{k.kid: k}}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	kr.set(st)
	return kr, nil
}

// Reload re-reads the keyring from disk, picking up a rotation or a
// retirement made by another process (brokerctl keys rotate).
func (kr *Keyring) Reload() error {
	st, err := readRing(kr.dir)
	if err != nil {
		return err
	}
	kr.set(st)
	return nil
}

// Current returns the key that signs: its kid and private key. A key
// published by RotateAfter signs from its activation time on, without a
// reload: every process that loaded it switches at the same moment.
func (kr *Keyring) Current() (kid string, key ed25519.PrivateKey) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k := kr.keys[kr.current]
	if kr.next != "" && !kr.now().Before(kr.nextAt) {
		k = kr.keys[kr.next]
	}
	return k.kid, k.priv
}

// Next returns the key published ahead of signing, and when it starts to
// sign, if there is one that has not started yet.
func (kr *Keyring) Next() (kid string, at time.Time, ok bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	if kr.next == "" || !kr.now().Before(kr.nextAt) {
		return "", time.Time{}, false
	}
	return kr.next, kr.nextAt, true
}

// RotateAfter publishes a new key in the JWKS now and lets it sign only
// after delay, so that a client that cached the JWKS just before (for up to
// its max-age) already holds the key of every token it will be shown. The
// delay must be longer than the JWKS max-age. A key published earlier that
// has started to sign becomes current on disk first; one that has not is
// replaced (it never signed anything). It returns the new kid and when it
// starts to sign.
func (kr *Keyring) RotateAfter(delay time.Duration) (string, time.Time, error) {
	if delay <= 0 {
		kid, err := kr.Rotate()
		return kid, kr.now(), err
	}
	unlock, err := keydir.LockDir(kr.dir)
	if err != nil {
		return "", time.Time{}, err
	}
	defer unlock()
	st, err := readRing(kr.dir)
	if err != nil {
		return "", time.Time{}, err
	}
	now := kr.now()
	var errs []error
	if st.next != "" {
		if now.Before(st.nextAt) {
			// Never signed: drop it rather than keep three keys in flight.
			if err := os.Remove(st.keys[st.next].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", time.Time{}, fmt.Errorf("signing keys: drop unused %s: %w", st.next, err)
			}
			delete(st.keys, st.next)
		} else {
			// Active: it is the current key, the current one the previous.
			if err := writeCurrent(kr.dir, st.next); err != nil {
				return "", time.Time{}, err
			}
			prev := st.current
			st.current = st.next
			for kid, old := range st.keys {
				if kid == st.current || kid == prev {
					continue
				}
				if err := os.Remove(old.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("signing keys: retire %s: %w", kid, err))
					continue
				}
				delete(st.keys, kid)
			}
		}
		st.next, st.nextAt = "", time.Time{}
	}
	k, err := writeNewKey(kr.dir)
	if err != nil {
		return "", time.Time{}, err
	}
	at := now.Add(delay).UTC().Truncate(time.Second).Add(time.Second) // never sooner than asked
	if err := keydir.WriteFileAtomic(filepath.Join(kr.dir, nextFile), []byte(k.kid+" "+at.Format(time.RFC3339)+"\n")); err != nil {
		_ = os.Remove(k.path)
		return "", time.Time{}, err
	}
	st.keys[k.kid] = k
	st.next, st.nextAt = k.kid, at
	kr.set(st)
	return k.kid, at, errors.Join(errs...)
}

// PublicKey returns the public key named kid, if the ring holds it.
func (kr *Keyring) PublicKey(kid string) (ed25519.PublicKey, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k, ok := kr.keys[kid]
	if !ok {
		return nil, false
	}
	return k.pub, true
}

// KeyIDs returns the kids in the ring, the current one first.
func (kr *Keyring) KeyIDs() []string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.kidsLocked()
}

func (kr *Keyring) kidsLocked() []string {
	out := []string{kr.current}
	var rest []string
	for kid := range kr.keys {
		if kid != kr.current {
			rest = append(rest, kid)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// JWKS returns the public keys as a JSON Web Key Set (RFC 7517, Ed25519
// keys per RFC 8037), current key first, for /.well-known/jwks.json
// (media type application/jwk-set+json). The caller must not modify it.
func (kr *Keyring) JWKS() []byte {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.jwks
}

// Rotate makes a new key current. The key that was current stays in the
// ring (and the JWKS) as the previous key, so tokens it signed verify until
// they expire; any older key is retired, which keeps the ring at two keys.
// It returns the new kid. When an older key's file cannot be deleted the
// rotation still stands: the kid is returned with an error naming the key
// that stays in the ring.
func (kr *Keyring) Rotate() (string, error) {
	unlock, err := keydir.LockDir(kr.dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Start from the disk, not from memory: another process may have
	// rotated since we loaded.
	st, err := readRing(kr.dir)
	if err != nil {
		return "", err
	}
	if st.next != "" && !kr.now().Before(st.nextAt) {
		st.current = st.next // a published key that signs already is the one to keep
	}
	k, err := writeNewKey(kr.dir)
	if err != nil {
		return "", err
	}
	if err := writeCurrent(kr.dir, k.kid); err != nil {
		_ = os.Remove(k.path)
		return "", err
	}
	// An immediate rotation replaces any key published ahead.
	if err := os.Remove(filepath.Join(kr.dir, nextFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("signing keys: %w", err)
	}
	next := &ringState{current: k.kid, keys: map[string]*ringKey{k.kid: k}}
	var errs []error
	for kid, old := range st.keys {
		if kid == st.current {
			next.keys[kid] = old
			continue
		}
		if err := os.Remove(old.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Still on disk, so still in the ring: keep verifying with it
			// rather than pretend it is gone.
			next.keys[kid] = old
			errs = append(errs, fmt.Errorf("signing keys: retire %s: %w", kid, err))
		}
	}
	kr.set(next)
	return k.kid, errors.Join(errs...)
}

// Retire removes a non-current key from the ring and deletes its file.
// Tokens it signed stop verifying at once, cached verifications included;
// retire the previous key only once the tokens it signed have expired, or
// at once when it is compromised.
func (kr *Keyring) Retire(kid string) error {
	unlock, err := keydir.LockDir(kr.dir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readRing(kr.dir)
	if err != nil {
		return err
	}
	k, ok := st.keys[kid]
	switch {
	case !ok:
		// Another process may have retired it already: if we still hold
		// it, adopting the disk's view drops it here too.
		if _, inMemory := kr.PublicKey(kid); inMemory {
			kr.set(st)
			return nil
		}
		return broker.Errorf(broker.ENotFound, "no signing key with that kid")
	case kid == st.current && (st.next == "" || kr.now().Before(st.nextAt)),
		kid == st.next && !kr.now().Before(st.nextAt):
		return broker.Errorf(broker.EConflict, "the current signing key cannot be retired; rotate first")
	case kid == st.next:
		// Published but never used: withdraw it.
		if err := os.Remove(filepath.Join(kr.dir, nextFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("signing keys: %w", err)
		}
		st.next, st.nextAt = "", time.Time{}
	case kid == st.current:
		// The published key signs now: make that durable before the
		// previous one goes.
		if err := writeCurrent(kr.dir, st.next); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(kr.dir, nextFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("signing keys: %w", err)
		}
		st.current, st.next, st.nextAt = st.next, "", time.Time{}
	}
	if err := os.Remove(k.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("signing keys: retire %s: %w", kid, err)
	}
	delete(st.keys, kid)
	kr.set(st)
	return nil
}

// ringState is a consistent view of the ring, read from disk.
type ringState struct {
	current string
	keys    map[string]*ringKey
	next    string
	nextAt  time.Time
}

func (kr *Keyring) set(st *ringState) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.current, kr.keys, kr.next, kr.nextAt = st.current, st.keys, st.next, st.nextAt
	kr.jwks = buildJWKS(kr.kidsLocked(), kr.keys)
}

// jwk is one Ed25519 JSON Web Key (RFC 8037 §2).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

func buildJWKS(kids []string, keys map[string]*ringKey) []byte {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(kids))}
	for _, kid := range kids {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519",
			X: base64.RawURLEncoding.EncodeToString(keys[kid].pub), Kid: kid, Use: "sig", Alg: "EdDSA"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic("token: marshal JWKS: " + err.Error()) // strings only: cannot fail
	}
	return b
}

var errNoKey = errors.New("signing keys: no key")

// readRing loads every key file in dir and the name of the current one.
func readRing(dir string) (*ringState, error) {
	entries, err := keydir.ReadKeyDir(dir, "signing keys")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, err
	}
	st := &ringState{keys: map[string]*ringKey{}}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), keySuffix) {
			continue
		}
		k, err := readKey(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		st.keys[k.kid] = k
	}
	if len(st.keys) == 0 {
		return nil, errNoKey
	}
	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(st.keys) == 1:
		// A single key placed by hand: it can only be the current one.
		for kid := range st.keys {
			st.current = kid
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("signing keys: %d keys in %s but no %q file naming the current one", len(st.keys), dir, currentFile)
	case err != nil:
		return nil, fmt.Errorf("signing keys: %w", err)
	default:
		st.current = strings.TrimSpace(string(cur))
		if _, ok := st.keys[st.current]; !ok {
			return nil, fmt.Errorf("signing keys: %s names a key that is not in %s", filepath.Join(dir, currentFile), dir)
		}
	}
	nx, err := os.ReadFile(filepath.Join(dir, nextFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("signing keys: %w", err)
	default:
		kid, at, ok := strings.Cut(strings.TrimSpace(string(nx)), " ")
		t, terr := time.Parse(time.RFC3339, at)
		if _, known := st.keys[kid]; !ok || terr != nil || !known {
			return nil, fmt.Errorf("signing keys: %s is not \"<kid of a key here> <RFC 3339 time>\"", filepath.Join(dir, nextFile))
		}
		if kid != st.current {
			st.next, st.nextAt = kid, t
		}
	}
	return st, nil
}

func readKey(path string) (*ringKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing keys: %s is accessible to group or others; chmod 600 it", path)
	}
	if info.Size() > maxKeyFile {
		return nil, fmt.Errorf("signing keys: %s is not an Ed25519 key", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	// Never put key material or the parser's view of it in an error.
	bad := fmt.Errorf("signing keys: %s is not a PKCS#8 PEM Ed25519 private key", path)
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, bad
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, bad
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, bad
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &ringKey{kid: KeyID(pub), priv: priv, pub: pub, path: path}, nil
}

// writeNewKey generates a key and writes it as <kid>.pem, 0600.
func writeNewKey(dir string) (*ringKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing keys: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signing keys: encode: %w", err)
	}
	kid := KeyID(pub)
	path := filepath.Join(dir, kid+keySuffix)
	if err := keydir.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})); err != nil {
		return nil, err
	}
	return &ringKey{kid: kid, priv: priv, pub: pub, path: path}, nil
}

func writeCurrent(dir, kid string) error {
	return keydir.WriteFileAtomic(filepath.Join(dir, currentFile), []byte(kid+"\n"))
}
