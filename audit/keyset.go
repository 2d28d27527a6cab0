package audit

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CheckpointVerifier verifies and parses a signed checkpoint note: a
// PublicKey, or a KeySet.
type CheckpointVerifier interface {
	VerifyCheckpoint(noteText []byte) (Checkpoint, error)
}

var (
	_ CheckpointVerifier = PublicKey{}
	_ CheckpointVerifier = KeySet(nil)
)

// KeySet is the keys a log may have signed with over its life: the current
// key, a previous one during a handover, and retired ones. A checkpoint
// verifies when any of them signed it, so a log that spans several keys
// verifies with all of them pinned.
type KeySet []PublicKey

// VerifyCheckpoint verifies noteText with the first key of ks that signed
// it. A malformed note is reported as such at once; a note none of the
// keys signed wraps ErrBadSignature.
func (ks KeySet) VerifyCheckpoint(noteText []byte) (Checkpoint, error) {
	if len(ks) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no key to verify with", ErrBadSignature)
	}
	var first error
	for _, k := range ks {
		cp, err := k.VerifyCheckpoint(noteText)
		if err == nil {
			return cp, nil
		}
		if !errors.Is(err, ErrBadSignature) {
			return Checkpoint{}, err
		}
		if first == nil {
			first = err
		}
	}
	if len(ks) == 1 {
		return Checkpoint{}, first
	}
	return Checkpoint{}, fmt.Errorf("%w: no valid signature by any of the %d keys (first: %v)", ErrBadSignature, len(ks), first)
}

// maxKeyListFile bounds a file of keys read by LoadPublicKeys.
const maxKeyListFile = 1 << 20

// LoadPublicKeys reads every key named by arg: a directory (each regular
// file in it that holds public keys, such as the .pub files of a log-key
// directory; other files, private keys included, are skipped), a file of
// one or more keys (PEM "PUBLIC KEY" blocks, or one key a line in any form
// ParsePublicKey takes, with '#' comments), or a key itself. It fails when
// it finds no key.
func LoadPublicKeys(arg string) (KeySet, error) {
	fi, err := os.Stat(arg)
	switch {
	case err != nil:
		k, perr := ParsePublicKey(arg)
		if perr != nil {
			return nil, fmt.Errorf("audit: %q is neither a key file nor a key: %w", arg, perr)
		}
		return KeySet{k}, nil
	case fi.IsDir():
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, fmt.Errorf("audit: key directory: %w", err)
		}
		var out KeySet
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			keys, err := readKeyFile(filepath.Join(arg, e.Name()))
			if err != nil {
				continue // not a key file: a directory holds other things too
			}
			out = append(out, keys...)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("audit: no public key in directory %s", arg)
		}
		return out, nil
	default:
		return readKeyFile(arg)
	}
}

func readKeyFile(path string) (KeySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyListFile+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read key file: %w", err)
	}
	if len(b) > maxKeyListFile {
		return nil, fmt.Errorf("audit: key file %s is too large", path)
	}
	ks, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ks, nil
}

// ParsePublicKeys parses a list of checkpoint public keys: PEM "PUBLIC
// KEY" blocks (other PEM blocks, private keys included, are skipped), or
// one key a line in any form ParsePublicKey takes, with '#' comments. It
// fails when it finds no key or a line that is not one.
func ParsePublicKeys(b []byte) (KeySet, error) {
	var out KeySet
	if strings.Contains(string(b), "-----BEGIN") {
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "PUBLIC KEY" {
				continue // a private key is not what verifies; never echo it
			}
			k, err := ParsePublicKey(string(pem.EncodeToMemory(blk)))
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
	} else {
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := ParsePublicKey(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("audit: no public key found")
	}
	return out, nil
}
