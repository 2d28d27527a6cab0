package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
)

const (
	ageDir      = "age"     // under BROKER_KEY_DIR
	currentName = "current" // file naming the current key id
	keySuffix   = ".key"    // identity files: <key id>.key
	// retiredSuffix names the public record left of a retired identity.
	retiredSuffix = ".retired"
	keyIDLen      = 16 // hex digits of SHA-256(recipient)

	dekSize       = 32   // data key bytes (XChaCha20-Poly1305 key)
	wrapVersion   = 1    // first byte of a wrapped key's age plaintext
	maxSubjectLen = 1024 // bytes; subject ids are short, this bounds the wrapped payload
)

// ErrUnknownIdentity means a wrapped key names an age identity this
// keyring does not hold: it was retired, or the key directory of this
// process is not the one that wrapped the key. Deploy the identity file.
var ErrUnknownIdentity = errors.New("seal: no age identity for key id")

// ErrNoIdentity means the key directory holds no age identity and the
// keyring was loaded without permission to create one (BROKER_ENV=production).
var ErrNoIdentity = errors.New("seal: no age identity")

// Keyring holds the broker's age identities, which wrap the per-shopper data
// keys. It is safe for concurrent use.
type Keyring struct {
	dir string // <BROKER_KEY_DIR>/age

	mu      sync.RWMutex
	ids     map[string]*identity
	current string
}

type identity struct {
	id        string
	pq        bool
	created   time.Time // from the file's "# created:" line, else its mtime
	identity  age.Identity
	recipient age.Recipient
}

// LoadKeyring loads the age identities under <keyDir>/age. With create set
// (development, or "brokerctl keys init") a missing directory or identity is
// created, X25519 by default; with create unset (BROKER_ENV=production) a
// missing identity is an error naming the directory.
func LoadKeyring(keyDir string, create bool) (*Keyring, error) {
	if !create {
		return openKeyring(keyDir)
	}
	k, _, err := InitKeyring(keyDir, false)
	return k, err
}

// InitKeyring loads the keyring under <keyDir>/age, creating the directory
// and a first identity when there is none; pq chooses an age hybrid
// (ML-KEM-768 + X25519) identity for it instead of X25519. created reports
// whether this call made the identity; pq matters only then. Processes
// racing to initialise the same directory agree on one identity.
func InitKeyring(keyDir string, pq bool) (k *Keyring, created bool, err error) {
	if keyDir == "" {
		return nil, false, errors.New("seal: BROKER_KEY_DIR is empty")
	}
	dir := filepath.Join(keyDir, ageDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("seal: create key directory: %w", err)
	}
	unlock, err := keydir.LockDir(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	k, err = openKeyring(keyDir)
	if !errors.Is(err, ErrNoIdentity) {
		return k, false, err
	}
	k = &Keyring{dir: dir}
	id, err := k.newIdentity(pq, time.Now())
	if err != nil {
		return nil, false, err
	}
	// Identity first, then the current file: a reader in between sees a
	// lone identity, which counts as current.
	if err := writeFileAtomic(dir, currentName, []byte(id.id+"\n")); err != nil {
		return nil, false, err
	}
	if err := k.reload(); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

func openKeyring(keyDir string) (*Keyring, error) {
	if keyDir == "" {
		return nil, errors.New("seal: BROKER_KEY_DIR is empty")
	}
	k := &Keyring{dir: filepath.Join(keyDir, ageDir)}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Current returns the key id that new data keys are wrapped to.
func (k *Keyring) Current() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// IDs returns the key ids of every identity held, sorted.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]string, 0, len(k.ids))
	for id := range k.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// PostQuantum reports whether keyID names a hybrid post-quantum identity.
func (k *Keyring) PostQuantum(keyID string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	id := k.ids[keyID]
	return id != nil && id.pq
}

// Dir returns the directory holding the identity files.
func (k *Keyring) Dir() string { return k.dir }

// Rotate adds a new identity (hybrid post-quantum if pq, else X25519) and
// makes it current. Older identities stay to unwrap the keys still wrapped
// to them; re-wrap those (Sealer.RewrapAll), then Retire the old identity.
func (k *Keyring) Rotate(pq bool) (newKeyID string, err error) {
	return k.rotateAt(pq, time.Now())
}

// rotateAt is Rotate with the creation time recorded in the new identity's
// file, which the rotation schedule (Rotation) reads back.
func (k *Keyring) rotateAt(pq bool, created time.Time) (newKeyID string, err error) {
	unlock, err := keydir.LockDir(k.dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	id, err := k.newIdentity(pq, created)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(k.dir, currentName, []byte(id.id+"\n")); err != nil {
		return "", err
	}
	if err := k.reload(); err != nil {
		return "", err
	}
	return id.id, nil
}

// KeyCounter counts stored data keys by the identity wrapping them;
// broker.SubjectKeyStore is one.
type KeyCounter interface {
	CountSubjectKeys(ctx context.Context) (map[string]int64, error)
}

// Created returns when the identity keyID was created (the "# created:"
// line of its file, else the file's modification time); ok is false for an
// identity this keyring does not hold.
func (k *Keyring) Created(keyID string) (created time.Time, ok bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	id := k.ids[keyID]
	if id == nil {
		return time.Time{}, false
	}
	return id.created, true
}

// Retire deletes the identity keyID, after which nothing wrapped to it can be
// unwrapped: database backups holding keys of since-erased shoppers become
// unreadable. It refuses (EConflict) to retire the current identity or one
// that still wraps keys according to counter, and answers ENotFound for an
// unknown id. Run it after RewrapAll has moved every key off keyID.
//
// The file is overwritten with random bytes and synced before it is
// unlinked, so that the secret does not stay in the freed blocks of an
// ordinary file system; copy-on-write file systems, SSD wear levelling and
// copies of the key directory (its own backups) are beyond what a process
// can overwrite, so keep the key directory out of database backups. The
// public part stays in <key id>.retired: which recipient it was, when it was
// created and retired, for the record.
func (k *Keyring) Retire(ctx context.Context, keyID string, counter KeyCounter) error {
	return k.retireAt(ctx, keyID, counter, time.Now())
}

func (k *Keyring) retireAt(ctx context.Context, keyID string, counter KeyCounter, now time.Time) error {
	unlock, err := keydir.LockDir(k.dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := k.reload(); err != nil { // see rotations made by other processes
		return err
	}
	k.mu.RLock()
	_, held := k.ids[keyID]
	current := k.current
	k.mu.RUnlock()
	switch {
	case !held:
		return broker.Errorf(broker.ENotFound, "no age identity %q", keyID)
	case keyID == current:
		return broker.Errorf(broker.EConflict, "age identity %s is current; rotate before retiring it", keyID)
	}
	counts, err := counter.CountSubjectKeys(ctx)
	if err != nil {
		return err
	}
	if n := counts[keyID]; n > 0 {
		return broker.Errorf(broker.EConflict,
			"age identity %s still wraps %d data keys; re-wrap them first (brokerctl keys rotate)", keyID, n)
	}
	k.mu.RLock()
	id := k.ids[keyID]
	k.mu.RUnlock()
	record := fmt.Sprintf("# Sieve broker age identity, retired: its secret key was destroyed.\n"+
		"# key id: %s\n# created: %s\n# retired: %s\n# recipient: %s\n",
		keyID, id.created.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), id.recipient)
	if err := writeFileAtomic(k.dir, keyID+retiredSuffix, []byte(record)); err != nil {
		return err
	}
	if err := shredFile(filepath.Join(k.dir, keyID+keySuffix)); err != nil {
		return fmt.Errorf("seal: retire %s: %w", keyID, err)
	}
	if err := syncDir(k.dir); err != nil {
		return err
	}
	k.mu.Lock()
	delete(k.ids, keyID)
	k.mu.Unlock()
	return nil
}

// Reload re-reads the key directory: identities added or retired and the
// current id set by another process (brokerctl keys rotate).
func (k *Keyring) Reload() error { return k.reload() }

// Wrap wraps dek (32 bytes) for subject to the current identity.
func (k *Keyring) Wrap(subject string, dek []byte) (broker.WrappedKey, error) {
	if len(dek) != dekSize {
		return broker.WrappedKey{}, fmt.Errorf("seal: data key is %d bytes, want %d", len(dek), dekSize)
	}
	if subject == "" || len(subject) > maxSubjectLen {
		return broker.WrappedKey{}, broker.Errorf(broker.EInvalid, "subject id is empty or too long")
	}
	k.reloadIfRotated()
	k.mu.RLock()
	id := k.ids[k.current]
	k.mu.RUnlock()
	if id == nil {
		return broker.WrappedKey{}, fmt.Errorf("%w in %s", ErrNoIdentity, k.dir)
	}
	pt := make([]byte, 0, 1+dekSize+len(subject))
	pt = append(pt, wrapVersion)
	pt = append(pt, dek...)
	pt = append(pt, subject...)
	defer clear(pt)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, id.recipient)
	if err != nil {
		return broker.WrappedKey{}, fmt.Errorf("seal: wrap: %w", err)
	}
	if _, err := w.Write(pt); err != nil {
		return broker.WrappedKey{}, fmt.Errorf("seal: wrap: %w", err)
	}
	if err := w.Close(); err != nil {
		return broker.WrappedKey{}, fmt.Errorf("seal: wrap: %w", err)
	}
	return broker.WrappedKey{Subject: subject, KeyID: id.id, Wrapped: buf.Bytes()}, nil
}

// Unwrap returns the data key inside w, checking that it was wrapped for
// w.Subject. The caller should clear the returned slice after use.
func (k *Keyring) Unwrap(w broker.WrappedKey) ([]byte, error) {
	id := k.identity(w.KeyID)
	if id == nil {
		k.reloadFor(w.KeyID) // maybe rotated in by another process
		if id = k.identity(w.KeyID); id == nil {
			return nil, fmt.Errorf("%w %q in %s", ErrUnknownIdentity, w.KeyID, k.dir)
		}
	}
	r, err := age.Decrypt(bytes.NewReader(w.Wrapped), id.identity)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap data key (key id %s): %w", w.KeyID, err)
	}
	pt, err := io.ReadAll(io.LimitReader(r, 1+dekSize+maxSubjectLen+1))
	defer clear(pt)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap data key (key id %s): %w", w.KeyID, err)
	}
	if len(pt) < 1+dekSize || pt[0] != wrapVersion {
		return nil, fmt.Errorf("seal: unwrap data key (key id %s): unknown format", w.KeyID)
	}
	// The subject is not secret, but a wrapped key moved to another
	// subject's row must not open that subject's records.
	if string(pt[1+dekSize:]) != w.Subject {
		return nil, fmt.Errorf("seal: unwrap data key (key id %s): wrapped for another subject", w.KeyID)
	}
	return bytes.Clone(pt[1 : 1+dekSize]), nil
}

func (k *Keyring) identity(keyID string) *identity {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ids[keyID]
}

// newIdentity generates an identity and writes its file.
func (k *Keyring) newIdentity(pq bool, created time.Time) (*identity, error) {
	var (
		secret, recipient string
		err               error
	)
	if pq {
		var i *age.HybridIdentity
		if i, err = age.GenerateHybridIdentity(); err == nil {
			secret, recipient = i.String(), i.Recipient().String()
		}
	} else {
		var i *age.X25519Identity
		if i, err = age.GenerateX25519Identity(); err == nil {
			secret, recipient = i.String(), i.Recipient().String()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("seal: generate age identity: %w", err)
	}
	id := keyID(recipient)
	kind := "X25519"
	if pq {
		kind = "hybrid post-quantum (ML-KEM-768 + X25519)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Sieve broker age identity (%s), wraps per-shopper data keys.\n", kind)
	fmt.Fprintf(&b, "# key id: %s\n# created: %s\n# recipient: %s\n", id,
		created.UTC().Format(time.RFC3339Nano), recipient)
	b.WriteString(secret)
	b.WriteString("\n")
	if err := writeFileAtomic(k.dir, id+keySuffix, []byte(b.String())); err != nil {
		return nil, err
	}
	return &identity{id: id, pq: pq, created: created}, nil
}

// reload reads every identity file and the current id. A rotation by
// another process writes the identity before the current file, so a current
// id without its identity only means we read in between: read again.
func (k *Keyring) reload() error {
	var lastErr error
	for range 3 {
		ids, err := readIdentities(k.dir)
		if err != nil {
			return err
		}
		current, err := readCurrent(k.dir)
		if err != nil {
			return err
		}
		switch {
		case len(ids) == 0:
			return fmt.Errorf("%w in %s: create one with \"brokerctl keys init\" "+
				"(keys are created automatically only outside BROKER_ENV=production)", ErrNoIdentity, k.dir)
		case current == "" && len(ids) == 1:
			// Created but not yet named current (a crash in between): the
			// only identity is the current one.
			for id := range ids {
				current = id
			}
		case current == "":
			return fmt.Errorf("seal: %s holds %d age identities but no %q file naming the current one",
				k.dir, len(ids), currentName)
		case ids[current] == nil:
			lastErr = fmt.Errorf("seal: %s/%s names key id %q, which has no identity file",
				k.dir, currentName, current)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		k.mu.Lock()
		k.ids, k.current = ids, current
		k.mu.Unlock()
		return nil
	}
	return lastErr
}

// reloadIfRotated reloads when the current file names another identity, so
// that a process wraps new keys to an identity rotated in by another one.
// Reading 17 bytes costs microseconds against the ~0.2 ms of an age wrap,
// and unlike a modification time it cannot miss two rotations within one
// clock tick.
func (k *Keyring) reloadIfRotated() {
	current, err := readCurrent(k.dir)
	if err != nil || current == "" || current == k.Current() {
		return // on error keep wrapping to the identity we know
	}
	_ = k.reload() // on failure the in-memory keyring stays usable
}

// reloadFor reloads when keyID, unknown in memory, has an identity file:
// rotated in by another process. A key id without one costs a stat, never a
// reload, however often it turns up.
func (k *Keyring) reloadFor(keyID string) {
	if !validKeyID(keyID) { // it names a file: no path tricks from the store
		return
	}
	if _, err := os.Stat(filepath.Join(k.dir, keyID+keySuffix)); err == nil {
		_ = k.reload()
	}
}

func validKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func readIdentities(dir string) (map[string]*identity, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read key directory: %w", err)
	}
	ids := make(map[string]*identity)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, keySuffix) || strings.HasPrefix(name, ".") {
			continue // temporary files start with "."
		}
		id, err := readIdentity(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(name, keySuffix); id.id != want {
			return nil, fmt.Errorf("seal: %s holds the identity of key id %s, not %s", filepath.Join(dir, name), id.id, want)
		}
		ids[id.id] = id
	}
	return ids, nil
}

func readIdentity(path string) (*identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	// Like ssh: a secret key others can read is refused rather than used.
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: age identity %s is accessible by others (mode %04o); chmod 600 it", path, perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer clear(raw)
	created := createdLine(raw)
	if created.IsZero() { // a hand-made file: its age is the best we know
		created = st.ModTime()
	}
	parsed, err := age.ParseIdentities(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", path, err)
	}
	if len(parsed) != 1 {
		return nil, fmt.Errorf("seal: %s holds %d identities, want 1", path, len(parsed))
	}
	switch i := parsed[0].(type) {
	case *age.X25519Identity:
		r := i.Recipient()
		return &identity{id: keyID(r.String()), created: created, identity: i, recipient: r}, nil
	case *age.HybridIdentity:
		r := i.Recipient()
		return &identity{id: keyID(r.String()), pq: true, created: created, identity: i, recipient: r}, nil
	default:
		return nil, fmt.Errorf("seal: %s: unsupported identity type %T", path, i)
	}
}

// createdLine returns the time on the "# created:" comment line that
// newIdentity writes, or the zero time.
func createdLine(raw []byte) time.Time {
	const prefix = "# created: "
	for line := range bytes.Lines(raw) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte(prefix)); ok {
			if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// shredFile overwrites path with random bytes, syncs it and unlinks it. A
// missing file is no error, so that a retirement interrupted after the
// unlink can be finished.
func shredFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		junk := make([]byte, st.Size())
		_, _ = rand.Read(junk) // never fails (crypto/rand.Read)
		if _, err = f.WriteAt(junk, 0); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func readCurrent(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, currentName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// keyID is a short, stable name for an identity: public, and the same in
// every process that holds the identity.
func keyID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:])[:keyIDLen]
}

// writeFileAtomic replaces dir/name with data (keydir.WriteFileAtomic).
func writeFileAtomic(dir, name string, data []byte) error {
	return keydir.WriteFileAtomic(filepath.Join(dir, name), data)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("seal: sync key directory: %w", err)
	}
	return nil
}
