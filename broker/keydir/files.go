package keydir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sieve-broker/sieve/audit"
)

// PseudonymKey loads the 32-byte pseudonym key (hex) from
// dir/pseudonym.key, creating it when allowed. Two processes creating it at
// once agree on one key: the file appears by a hard link, which never
// replaces a key another process wrote first.
func PseudonymKey(dir string, create bool) ([]byte, error) {
	path := filepath.Join(dir, "pseudonym.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		// A temporary file of its own per creator: a shared name would let
		// one creator remove or overwrite another's before it is linked.
		if err := linkNew(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pseudonym key %s is missing (run brokerctl keys init)", path)
		}
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("pseudonym key %s is malformed", path)
	}
	return key, nil
}

// linkNew writes data to a fresh temporary file beside path and links it
// as path, unless path exists already (then the existing file wins).
func linkNew(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// TrustFile keeps the last verified audit checkpoint in a file outside the
// database (BROKER_TRUSTED_CHECKPOINT), written atomically: the dashboard's
// witness (ui.TrustStore) compares each new checkpoint with it.
type TrustFile struct{ Path string }

// Load returns the checkpoint note kept, or "" when there is none yet. A
// file larger than a checkpoint is an error, not a truncated note.
func (f TrustFile) Load() (string, error) {
	fh, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, audit.MaxCheckpointSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > audit.MaxCheckpointSize {
		return "", fmt.Errorf("%s is larger than a checkpoint", f.Path)
	}
	return string(b), nil
}

// Save replaces the checkpoint kept, atomically.
func (f TrustFile) Save(note string) error { return writeFileAtomic(f.Path, []byte(note)) }
