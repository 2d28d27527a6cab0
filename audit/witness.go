package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Witnesses (SPEC §6). A witness policy names the independent witnesses of
// the log and how many of them must cosign a checkpoint (the quorum), in
// the spirit of the C2SP tlog-policy drafts:
//
//	# comments and blank lines are ignored
//	witness NAME VKEY URL
//	quorum N
//
// VKEY is the witness's note verifier key for C2SP tlog-cosignature/v1
// (timestamped Ed25519 cosignatures, algorithm byte 0x04); URL is the
// witness's tlog-witness endpoint prefix (POST URL/add-checkpoint).

// ErrNoQuorum: a checkpoint lacks the cosignatures its witness policy
// requires. Without the quorum nothing outside the operator vouches that
// the log was not forked or cut back.
var ErrNoQuorum = errors.New("audit: checkpoint lacks its witness quorum")

// MaxPolicySize bounds a witness policy file.
const MaxPolicySize = 64 << 10

// MaxWitnesses bounds the witnesses of a policy.
const MaxWitnesses = 64

// Witness is one witness of a policy.
type Witness struct {
	Name     string            // the policy's label for it
	VKey     string            // its cosignature verifier key
	URL      string            // its tlog-witness endpoint prefix (no trailing slash)
	Verifier note.Verifier     // verifies its cosignatures
	Key      ed25519.PublicKey // its public key
	KeyName  string            // the name in its cosignature lines
}

// Policy is a parsed witness policy.
type Policy struct {
	Witnesses []Witness
	Quorum    int
}

// algCosignatureV1 is the signature type byte of C2SP tlog-cosignature/v1
// verifier keys.
const algCosignatureV1 = 0x04

// ParsePolicy parses a witness policy. Every line is checked; an unknown
// keyword, a bad key, a duplicate witness or a quorum larger than the
// number of witnesses is an error (fail closed: a typo must not weaken
// the policy).
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("audit: witness policy of %d bytes is too large", len(b))
	}
	p := &Policy{Quorum: -1}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		bad := func(why string) (*Policy, error) {
			return nil, fmt.Errorf("audit: witness policy line %d: %s", n, why)
		}
		switch f[0] {
		case "witness":
			if len(f) != 4 {
				return bad("want: witness NAME VKEY URL")
			}
			w, err := newWitness(f[1], f[2], f[3])
			if err != nil {
				return bad(err.Error())
			}
			if seen[w.Name] || seen["key:"+w.VKey] {
				return bad("duplicate witness " + w.Name)
			}
			seen[w.Name], seen["key:"+w.VKey] = true, true
			p.Witnesses = append(p.Witnesses, w)
			if len(p.Witnesses) > MaxWitnesses {
				return bad(fmt.Sprintf("more than %d witnesses", MaxWitnesses))
			}
		case "quorum":
			if len(f) != 2 || p.Quorum >= 0 {
				return bad("want one line: quorum N")
			}
			q, err := strconv.Atoi(f[1])
			if err != nil || q < 0 || strconv.Itoa(q) != f[1] {
				return bad("quorum is a whole number")
			}
			p.Quorum = q
		case "log":
			// The tlog-policy drafts also name the log; the broker knows its
			// own, so the line is accepted and ignored.
		default:
			return bad(fmt.Sprintf("unknown keyword %q", f[0]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: witness policy: %w", err)
	}
	if p.Quorum < 0 {
		return nil, errors.New("audit: witness policy has no quorum line")
	}
	if p.Quorum > len(p.Witnesses) {
		return nil, fmt.Errorf("audit: witness policy quorum %d exceeds its %d witnesses", p.Quorum, len(p.Witnesses))
	}
	return p, nil
}

// LoadPolicy reads and parses the witness policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: witness policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("audit: witness policy: %w", err)
	}
	return ParsePolicy(b)
}

func newWitness(name, vkey, rawURL string) (Witness, error) {
	if !validNoteName(name) {
		return Witness{}, fmt.Errorf("invalid witness name %q", name)
	}
	v, pub, err := NewCosignatureVerifier(vkey)
	if err != nil {
		return Witness{}, err
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Witness{}, fmt.Errorf("witness URL %q is not an http(s) URL", rawURL)
	}
	return Witness{Name: name, VKey: vkey, URL: strings.TrimRight(rawURL, "/"), Verifier: v, Key: pub, KeyName: v.Name()}, nil
}

func validNoteName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// NewCosignatureVerifier parses a C2SP tlog-cosignature/v1 verifier key
// ("name+hash+base64(0x04 || Ed25519 public key)") and returns a note
// verifier of its cosignatures, which checks the timestamped signature
// over "cosignature/v1\ntime T\n" followed by the checkpoint text.
// (golang.org/x/mod/sumdb/note verifies only plain Ed25519 notes.)
func NewCosignatureVerifier(vkey string) (note.Verifier, ed25519.PublicKey, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || !validNoteName(parts[0]) || len(parts[1]) != 8 {
		return nil, nil, fmt.Errorf("witness key %q is not a verifier key name+hash+key", vkey)
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	raw, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || err2 != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algCosignatureV1 {
		return nil, nil, fmt.Errorf("witness key %q is not a tlog-cosignature/v1 Ed25519 key", parts[0])
	}
	if uint32(hash) != noteKeyHash(parts[0], raw) {
		return nil, nil, fmt.Errorf("witness key %q: key hash does not match", parts[0])
	}
	pub := ed25519.PublicKey(raw[1:])
	return &cosigVerifier{name: parts[0], hash: uint32(hash), key: pub}, pub, nil
}

// CosignatureVerifierKey returns the tlog-cosignature/v1 verifier key of
// pub under name (what a witness publishes).
func CosignatureVerifierKey(name string, pub ed25519.PublicKey) string {
	raw := append([]byte{algCosignatureV1}, pub...)
	return fmt.Sprintf("%s+%08x+%s", name, noteKeyHash(name, raw), base64.StdEncoding.EncodeToString(raw))
}

func noteKeyHash(name string, raw []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(raw)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }

// Verify checks a cosignature: an 8-byte big-endian timestamp and an
// Ed25519 signature of the cosigned message. The message must parse as a
// checkpoint body.
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	if _, err := parseBody(string(msg)); err != nil {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	m := make([]byte, 0, 40+len(msg))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	m = append(m, msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

// Cosigners returns the names (policy labels) of the policy's witnesses
// whose valid cosignature the note carries, in policy order. Signature
// lines of other keys are ignored; a line that claims a policy witness's
// key but does not verify is an error.
func (p *Policy) Cosigners(noteText []byte) ([]string, error) {
	if len(p.Witnesses) == 0 {
		return nil, nil
	}
	vs := make([]note.Verifier, len(p.Witnesses))
	for i, w := range p.Witnesses {
		vs[i] = w.Verifier
	}
	n, err := note.Open(noteText, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var out []string
	for _, w := range p.Witnesses {
		for _, s := range n.Sigs {
			if s.Name == w.KeyName && s.Hash == w.Verifier.KeyHash() {
				out = append(out, w.Name)
				break
			}
		}
	}
	return out, nil
}

// CheckQuorum verifies that a checkpoint note carries valid cosignatures
// of at least the policy's quorum of witnesses. It does not check the
// log's own signature (VerifyCheckpoint does). The error wraps ErrNoQuorum.
func (p *Policy) CheckQuorum(noteText []byte) error {
	got, err := p.Cosigners(noteText)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoQuorum, err)
	}
	if len(got) < p.Quorum {
		return fmt.Errorf("%w: %d of the %d cosignatures required", ErrNoQuorum, len(got), p.Quorum)
	}
	return nil
}

// AddSignatureLines appends signature lines ("— name base64\n") to a
// signed note, skipping lines the note already carries.
func AddSignatureLines(noteText []byte, lines ...string) []byte {
	out := bytes.Clone(noteText)
	for _, l := range lines {
		if l == "" || bytes.Contains(noteText, []byte(l)) {
			continue
		}
		out = append(out, l...)
		if !strings.HasSuffix(l, "\n") {
			out = append(out, '\n')
		}
	}
	return out
}

// SignatureLines returns the signature lines of a signed note (each with
// its newline), or nil when it has none.
func SignatureLines(noteText []byte) []string {
	i := bytes.LastIndex(noteText, []byte("\n\n"))
	if i < 0 {
		return nil
	}
	var out []string
	for _, l := range strings.SplitAfter(string(noteText[i+2:]), "\n") {
		if strings.HasPrefix(l, "\u2014 ") && strings.HasSuffix(l, "\n") {
			out = append(out, l)
		}
	}
	return out
}

// VerifyExportPolicy is VerifyExport that also requires the export's
// checkpoint to carry the witness quorum of p (the export carries the
// cosignature lines after the log's signature). An export cut back and
// re-signed by the operator's key alone fails here.
func VerifyExportPolicy(r io.Reader, key CheckpointVerifier, p *Policy, progress func(done, total uint64)) (size uint64, root []byte, err error) {
	if p == nil {
		return 0, nil, errors.New("audit: no witness policy")
	}
	return verifyExport(r, key, p, progress)
}
