package keydir

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
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
)

// LogSubdir is the directory under BROKER_KEY_DIR that holds the audit
// log's checkpoint keys.
const LogSubdir = "log"

const (
	currentFile  = "current"  // names the id of the key that signs
	handoverFile = "handover" // "<id> <RFC 3339 end>": the previous key co-signs until then
	lockFile     = ".lock"
	privSuffix   = ".pem" // PKCS#8 PEM private key; its absence means retired
	pubSuffix    = ".pub" // PKIX PEM public key, kept for every key
	privPEM      = "PRIVATE KEY"
	pubPEM       = "PUBLIC KEY"
	idLen        = 16       // base64url characters of the key's SHA-256
	maxKeyFile   = 16 << 10 // an Ed25519 PEM is ~120 bytes; refuse junk
)

// Key is one key of a ring. Private is nil once the key is retired: it
// then only verifies.
type Key struct {
	ID      string
	Public  ed25519.PublicKey
	Private ed25519.PrivateKey
}

// Retired reports whether only the public half of k is kept.
func (k Key) Retired() bool { return k.Private == nil }

// KeyID returns the id of an Ed25519 public key: the first 16 characters of
// the base64url (unpadded) SHA-256 of its 32 bytes. It is the JWT kid
// scheme too, so a signing key adopted as the first log key keeps its id.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:idLen]
}

// Ring is a directory of Ed25519 keys: one current key that signs, at most
// one previous key that co-signs until its handover ends, and any number of
// older keys (retired ones public only) that verify. It is safe for
// concurrent use.
type Ring struct {
	dir string
	now func() time.Time

	mu sync.RWMutex
	st *state
}

type state struct {
	current  string
	keys     map[string]*Key
	handover string    // the previous key while it co-signs
	until    time.Time // end of the handover
}

// Load loads the ring in dir. With create a missing directory or first key
// is created; without it (production) a missing key is an error, since a
// silently generated key would change the identity auditors pinned.
func Load(dir string, create bool) (*Ring, error) {
	return LoadAdopting(dir, create, "")
}

// LoadAdopting is Load for a ring that may take over an existing key: when
// dir holds no key yet and adoptFrom names a directory of PKCS#8 PEM keys
// with a "current" file (the JWT signing keys, which signed the log's
// checkpoints before the log had its own key), the current key there
// becomes this ring's current key, private half included, and the others
// are kept as public keys. A log whose key was shared with JWTs thus keeps
// its identity: monitors that pinned it keep verifying. Adoption copies; it
// happens in production too, since it creates no new identity.
func LoadAdopting(dir string, create bool, adoptFrom string) (*Ring, error) {
	if dir == "" {
		return nil, errors.New("log keys: no key directory (set BROKER_KEY_DIR)")
	}
	r := &Ring{dir: dir, now: time.Now}
	st, err := readState(dir)
	if err == nil {
		r.st = st
		return r, nil
	}
	if !errors.Is(err, errNoKey) {
		return nil, err
	}
	var adopt map[string]ed25519.PrivateKey
	var adoptCurrent string
	if adoptFrom != "" {
		if adopt, adoptCurrent, err = readAdoptable(adoptFrom); err != nil {
			return nil, err
		}
	}
	if len(adopt) == 0 && !create {
		return nil, fmt.Errorf("log keys: no key in %s; create one with `brokerctl keys init` (keys are not created automatically when BROKER_ENV=production)", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log keys: %w", err)
	}
	unlock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have created the ring while we waited.
	if st, err = readState(dir); err == nil {
		r.st = st
		return r, nil
	} else if !errors.Is(err, errNoKey) {
		return nil, err
	}
	cur := ""
	if len(adopt) > 0 {
		for id, priv := range adopt {
			if id == adoptCurrent {
				err = writeKey(dir, priv, true)
			} else {
				err = writeKey(dir, priv, false)
			}
			if err != nil {
				return nil, err
			}
		}
		cur = adoptCurrent
	} else {
		k, err := newKey(dir)
		if err != nil {
			return nil, err
		}
		cur = k.ID
	}
	if err := writeFileAtomic(filepath.Join(dir, currentFile), []byte(cur+"\n")); err != nil {
		return nil, err
	}
	if r.st, err = readState(dir); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the ring from disk, picking up a rotation, a retirement
// or the end of a handover made by another process.
func (r *Ring) Reload() error {
	st, err := readState(r.dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	return nil
}

// Dir is the ring's directory.
func (r *Ring) Dir() string { return r.dir }

// Current returns the key that signs.
func (r *Ring) Current() Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return *r.st.keys[r.st.current]
}

// Signers returns the keys that sign now: the current key, then the
// previous one while its handover lasts (and it was not retired early).
func (r *Ring) Signers() []Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []Key{*r.st.keys[r.st.current]}
	if k, ok := r.st.keys[r.st.handover]; ok && !k.Retired() && r.now().Before(r.st.until) {
		out = append(out, *k)
	}
	return out
}

// Handover returns the previous key's id and when it stops co-signing, if
// a handover was started and has not been cut short by a retirement.
func (r *Ring) Handover() (id string, until time.Time, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if k, found := r.st.keys[r.st.handover]; found && !k.Retired() {
		return r.st.handover, r.st.until, true
	}
	return "", time.Time{}, false
}

// Keys returns every key, current first, then the others by id: the keys
// that may have signed anything the ring ever signed.
func (r *Ring) Keys() []Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []Key{*r.st.keys[r.st.current]}
	ids := make([]string, 0, len(r.st.keys))
	for id := range r.st.keys {
		if id != r.st.current {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, *r.st.keys[id])
	}
	return out
}

// Has reports whether the ring holds a key (current, previous or retired)
// with this id.
func (r *Ring) Has(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.st.keys[id]
	return ok
}

// Rotate makes a new key current. The key that was current keeps signing
// beside it for handover (its signature lines follow the new key's), so
// that whoever pinned it keeps verifying while they learn the new one.
// announce, when not nil, is called with the new key before it becomes
// current, so that the caller can publish it (the log records it in an
// entry that the old key signs into a checkpoint); when announce fails the
// new key is deleted and nothing changes. The ring stays locked meanwhile.
func (r *Ring) Rotate(handover time.Duration, announce func(Key) error) (Key, error) {
	if handover < 0 {
		return Key{}, broker.Errorf(broker.EInvalid, "handover period must not be negative")
	}
	unlock, err := LockDir(r.dir)
	if err != nil {
		return Key{}, err
	}
	defer unlock()
	st, err := readState(r.dir) // another process may have rotated since we loaded
	if err != nil {
		return Key{}, err
	}
	k, err := newKey(r.dir)
	if err != nil {
		return Key{}, err
	}
	if announce != nil {
		if err := announce(*k); err != nil {
			_ = os.Remove(filepath.Join(r.dir, k.ID+privSuffix))
			_ = os.Remove(filepath.Join(r.dir, k.ID+pubSuffix))
			return Key{}, err
		}
	}
	until := r.now().Add(handover).UTC().Truncate(time.Second)
	if handover > 0 {
		until = until.Add(time.Second) // never shorter than asked, after truncation
	}
	// The handover file first: a crash between the two writes leaves the
	// old key current and co-signing with itself, which is harmless.
	line := st.current + " " + until.Format(time.RFC3339) + "\n"
	if err := writeFileAtomic(filepath.Join(r.dir, handoverFile), []byte(line)); err != nil {
		return Key{}, err
	}
	if err := writeFileAtomic(filepath.Join(r.dir, currentFile), []byte(k.ID+"\n")); err != nil {
		return Key{}, err
	}
	st.keys[k.ID] = k
	st.current, st.handover, st.until = k.ID, st.current, until
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	return *k, nil
}

// Retire deletes a key's private half and keeps its public half, so that
// whatever it signed still verifies. The current key cannot be retired;
// retiring the previous key ends its handover at once. Retiring a retired
// key is no error.
func (r *Ring) Retire(id string) error {
	unlock, err := LockDir(r.dir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(r.dir)
	if err != nil {
		return err
	}
	k, ok := st.keys[id]
	switch {
	case !ok:
		return broker.Errorf(broker.ENotFound, "no log key with that id")
	case id == st.current:
		return broker.Errorf(broker.EConflict, "the current log key cannot be retired; rotate first")
	}
	// The public half must be on disk before the private half goes.
	if err := writePublic(r.dir, k.Public); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(r.dir, id+privSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log keys: retire %s: %w", id, err)
	}
	k.Private = nil
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	return nil
}

var errNoKey = errors.New("log keys: no key")

// ReadKeyDir lists a key directory after checking that it is one and that
// only its owner can write it (whoever can write it can swap the keys).
// A directory that does not exist is an error wrapping fs.ErrNotExist;
// what names the keys in every other error.
func ReadKeyDir(dir, what string) ([]os.DirEntry, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: %s is not a directory", what, dir)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s: %s is writable by group or others; chmod 700 it", what, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return entries, nil
}

// readState loads every key in dir, the current one and the handover.
func readState(dir string) (*state, error) {
	entries, err := ReadKeyDir(dir, "log keys")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, err
	}
	st := &state{keys: map[string]*Key{}}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), pubSuffix) {
			continue
		}
		pub, err := readPublic(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		st.keys[KeyID(pub)] = &Key{ID: KeyID(pub), Public: pub}
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), privSuffix) {
			continue
		}
		priv, err := readPrivate(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		pub := priv.Public().(ed25519.PublicKey)
		st.keys[KeyID(pub)] = &Key{ID: KeyID(pub), Public: pub, Private: priv}
	}
	if len(st.keys) == 0 {
		return nil, errNoKey
	}
	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	if err != nil {
		return nil, fmt.Errorf("log keys: no %q file naming the current key in %s: %w", currentFile, dir, err)
	}
	st.current = strings.TrimSpace(string(cur))
	if k, ok := st.keys[st.current]; !ok || k.Retired() {
		return nil, fmt.Errorf("log keys: %s names a key whose private half is not in %s", filepath.Join(dir, currentFile), dir)
	}
	h, err := os.ReadFile(filepath.Join(dir, handoverFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("log keys: %w", err)
	default:
		id, until, ok := strings.Cut(strings.TrimSpace(string(h)), " ")
		t, terr := time.Parse(time.RFC3339, until)
		if !ok || terr != nil {
			return nil, fmt.Errorf("log keys: %s is not \"<id> <RFC 3339 time>\"", filepath.Join(dir, handoverFile))
		}
		if id != st.current {
			st.handover, st.until = id, t
		}
	}
	return st, nil
}

// readAdoptable reads the PKCS#8 PEM keys of another ring (the JWT signing
// keys) and the id of its current key. A missing directory is no error.
func readAdoptable(dir string) (map[string]ed25519.PrivateKey, string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("log keys: adopt: %w", err)
	}
	keys := map[string]ed25519.PrivateKey{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), privSuffix) {
			continue
		}
		priv, err := readPrivate(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, "", err
		}
		keys[KeyID(priv.Public().(ed25519.PublicKey))] = priv
	}
	if len(keys) == 0 {
		return nil, "", nil
	}
	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(keys) == 1:
		for id := range keys {
			return keys, id, nil
		}
	case err != nil:
		return nil, "", fmt.Errorf("log keys: adopt: no current key named in %s: %w", dir, err)
	}
	id := strings.TrimSpace(string(cur))
	if _, ok := keys[id]; !ok {
		return nil, "", fmt.Errorf("log keys: adopt: %s names a key that is not there", filepath.Join(dir, currentFile))
	}
	return keys, id, nil
}

func checkFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("log keys: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("log keys: %s is accessible to group or others; chmod 600 it", path)
	}
	if info.Size() > maxKeyFile {
		return fmt.Errorf("log keys: %s is not an Ed25519 key", path)
	}
	return nil
}

func readPEM(path, typ string) ([]byte, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("log keys: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("log keys: %s is not a PEM %s", path, typ)
	}
	return block.Bytes, nil
}

func readPrivate(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, privPEM)
	if err != nil {
		return nil, err
	}
	// Never put key material or the parser's view of it in an error.
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	priv, ok := parsed.(ed25519.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("log keys: %s is not a PKCS#8 PEM Ed25519 private key", path)
	}
	return priv, nil
}

func readPublic(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, pubPEM)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKIXPublicKey(der)
	pub, ok := parsed.(ed25519.PublicKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("log keys: %s is not a PKIX PEM Ed25519 public key", path)
	}
	return pub, nil
}

// newKey generates a key and writes both halves.
func newKey(dir string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("log keys: generate: %w", err)
	}
	if err := writeKey(dir, priv, true); err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{ID: KeyID(pub), Public: pub, Private: priv}, nil
}

// writeKey writes the public half of priv, and the private half too when
// withPrivate.
func writeKey(dir string, priv ed25519.PrivateKey, withPrivate bool) error {
	pub := priv.Public().(ed25519.PublicKey)
	if err := writePublic(dir, pub); err != nil {
		return err
	}
	if !withPrivate {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("log keys: encode: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, KeyID(pub)+privSuffix), pem.EncodeToMemory(&pem.Block{Type: privPEM, Bytes: der}))
}

func writePublic(dir string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("log keys: encode: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, KeyID(pub)+pubSuffix), pem.EncodeToMemory(&pem.Block{Type: pubPEM, Bytes: der}))
}

// WriteFileAtomic writes path (mode 0600) through a synced temporary file in
// the same directory and a rename, so a crash leaves the old file or the new
// one, never half of either.
func WriteFileAtomic(path string, data []byte) error { return writeFileAtomic(path, data) }

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
			err = fmt.Errorf("key directory: write %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // make the rename durable; not every platform can
		d.Close()
	}
	return nil
}
