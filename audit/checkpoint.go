package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a log's signed statement of its state, in the C2SP
// tlog-checkpoint format: the note text is the origin, the tree size in
// decimal and the standard-base64 root, one per line, signed with Ed25519
// by a key whose name is the origin.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// MaxCheckpointSize bounds a checkpoint note; parsers reject larger input
// before doing any work.
const MaxCheckpointSize = 16 << 10

// Text returns the checkpoint body (the signed part of the note).
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root) + "\n"
}

// OriginFromIssuer turns a BROKER_ISSUER URL into the checkpoint origin:
// the URL without its scheme and trailing slash ("http://127.0.0.1:8080"
// becomes "127.0.0.1:8080").
func OriginFromIssuer(issuer string) string {
	o := issuer
	if i := strings.Index(o, "://"); i >= 0 {
		o = o[i+3:]
	}
	return strings.TrimRight(o, "/")
}

// VerifierKey returns the note verifier key of pub under name:
// "<name>+<hash>+<base64(0x01 || pub)>". Publish it so that anyone can
// pin the log's key.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("audit: public key has %d bytes", len(pub))
	}
	return note.NewEd25519VerifierKey(name, pub)
}

// NewVerifier returns the note verifier of pub under name.
func NewVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// NewSigner returns a note signer for key under name. It builds the note
// signer key string "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>"
// from the raw key, so the broker needs no second key format.
func NewSigner(name string, key ed25519.PrivateKey) (note.Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: private key has %d bytes", len(key))
	}
	vkey, err := VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// vkey is name+hash+key and a valid name holds no '+'.
	parts := strings.Split(vkey, "+")
	skey := "PRIVATE+KEY+" + name + "+" + parts[1] + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	return note.NewSigner(skey)
}

// SignCheckpoint returns the signed checkpoint note for the tree of the
// given size and root, signed by key under the name origin.
func SignCheckpoint(key ed25519.PrivateKey, origin string, size uint64, root []byte) ([]byte, error) {
	if len(root) != HashSize {
		return nil, fmt.Errorf("audit: root has %d bytes", len(root))
	}
	if origin == "" || strings.ContainsAny(origin, "\n") {
		return nil, errors.New("audit: invalid checkpoint origin")
	}
	s, err := NewSigner(origin, key)
	if err != nil {
		return nil, err
	}
	c := Checkpoint{Origin: origin, Size: size, Root: root}
	return note.Sign(&note.Note{Text: c.Text()}, s)
}

// ParseCheckpoint verifies a signed checkpoint note with v and parses it.
// The origin must be v's name and the note must carry a valid signature by
// v (other signatures are ignored). Errors wrap ErrBadSignature or
// ErrMalformedCheckpoint.
func ParseCheckpoint(noteText []byte, v note.Verifier) (Checkpoint, error) {
	if len(noteText) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrMalformedCheckpoint, len(noteText))
	}
	n, err := note.Open(noteText, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, fmt.Errorf("%w: no valid signature by %q", ErrBadSignature, v.Name())
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	c, err := parseBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key name %q", ErrBadSignature, c.Origin, v.Name())
	}
	return c, nil
}

// parseBody parses the checkpoint text strictly: canonical decimal size,
// canonical base64 of a 32-byte root, and only non-empty extension lines.
func parseBody(text string) (Checkpoint, error) {
	bad := func(why string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrMalformedCheckpoint, why)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return bad("empty line")
		}
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return bad("size is not a canonical decimal")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return bad("root is not the base64 of 32 bytes")
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// NoteSigners returns the key names and hashes ("name+hash8") of the
// signature lines of a signed note, in order, without verifying them: enough
// to tell which key signed which checkpoint.
func NoteSigners(noteText []byte) []string {
	_, sigs, ok := bytes.Cut(noteText, []byte("\n\n"))
	if !ok {
		return nil
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		name, sig, ok2 := strings.Cut(rest, " ")
		raw, err := base64.StdEncoding.DecodeString(sig)
		if !ok || !ok2 || err != nil || len(raw) < 4 {
			continue
		}
		out = append(out, fmt.Sprintf("%s+%08x", name, binary.BigEndian.Uint32(raw)))
	}
	return out
}

// PublicKey is a pinned checkpoint key: an Ed25519 public key and, when it
// came as a note verifier key, its name (the log origin). An unnamed key
// verifies checkpoints of any origin; a named one only of its own.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey
}

// String returns the verifier key when the key is named, else the base64
// of the raw key.
func (k PublicKey) String() string {
	if k.Name != "" {
		if s, err := VerifierKey(k.Name, k.Key); err == nil {
			return s
		}
	}
	return base64.StdEncoding.EncodeToString(k.Key)
}

// Verifier returns the note verifier of k for a checkpoint of the given
// origin: under k's own name when it has one (a checkpoint of another
// origin then fails to verify), else under origin.
func (k PublicKey) Verifier(origin string) (note.Verifier, error) {
	name := k.Name
	if name == "" {
		name = origin
	}
	return NewVerifier(name, k.Key)
}

// VerifyCheckpoint verifies and parses a signed checkpoint note with k.
func (k PublicKey) VerifyCheckpoint(noteText []byte) (Checkpoint, error) {
	origin, _, _ := bytes.Cut(noteText, []byte("\n"))
	v, err := k.Verifier(string(origin))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	return ParseCheckpoint(noteText, v)
}

// ParsePublicKey parses a checkpoint public key given as a note verifier
// key ("name+hash+base64"), a PEM "PUBLIC KEY" block (PKIX), or the 32 raw
// bytes in hex or base64 (standard alphabet padded, URL alphabet padded or
// not).
func ParsePublicKey(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil || blk.Type != "PUBLIC KEY" {
			return PublicKey{}, errors.New("audit: PEM block is not a PUBLIC KEY")
		}
		pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return PublicKey{}, fmt.Errorf("audit: PEM public key: %w", err)
		}
		ed, ok := pk.(ed25519.PublicKey)
		if !ok {
			return PublicKey{}, errors.New("audit: PEM public key is not Ed25519")
		}
		return PublicKey{Key: ed}, nil
	}
	if strings.Count(s, "+") >= 2 && !strings.ContainsAny(s, " \t\n") {
		// A verifier key; the base64 alphabet has '+' too, so fall through
		// to raw base64 when this does not parse.
		if v, err := note.NewVerifier(s); err == nil {
			// name+hash+key: the key's base64 may hold '+' itself.
			raw, err := base64.StdEncoding.DecodeString(strings.SplitN(s, "+", 3)[2])
			if err == nil && len(raw) == 1+ed25519.PublicKeySize && raw[0] == 1 {
				return PublicKey{Name: v.Name(), Key: ed25519.PublicKey(raw[1:])}, nil
			}
		}
	}
	if len(s) == 2*ed25519.PublicKeySize {
		if raw, err := hex.DecodeString(s); err == nil {
			return PublicKey{Key: raw}, nil
		}
	}
	// Padded standard or URL base64, or unpadded URL base64. (Unpadded
	// standard base64 is left out: a 43-character file path can be one.)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
			return PublicKey{Key: raw}, nil
		}
	}
	return PublicKey{}, errors.New("audit: not an Ed25519 public key (want a verifier key, PEM, or 32 bytes in hex or base64)")
}

// LoadPublicKey reads the key from the file named arg when there is one,
// and otherwise parses arg itself as a key (see ParsePublicKey).
func LoadPublicKey(arg string) (PublicKey, error) {
	fi, err := os.Stat(arg)
	if err != nil || !fi.Mode().IsRegular() {
		return ParsePublicKey(arg)
	}
	f, err := os.Open(arg)
	if err != nil {
		return PublicKey{}, fmt.Errorf("audit: key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return PublicKey{}, fmt.Errorf("audit: read key file: %w", err)
	}
	return ParsePublicKey(string(b))
}
