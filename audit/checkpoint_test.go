package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sieve-broker/sieve/audit"
)

func TestCheckpointRoundTrip(t *testing.T) {
	k := testKey(1)
	m := sampleLog(t, 5)
	n := signed(t, k, m, 5)
	body, _, _ := strings.Cut(string(n), "\n\n")
	want := testOrigin + "\n5\n" + base64.StdEncoding.EncodeToString(m.root(5))
	if body != want {
		t.Fatalf("note text = %q, want %q", body, want)
	}
	if !strings.Contains(string(n), "\n\n— "+testOrigin+" ") {
		t.Fatalf("no signature line by %s in %q", testOrigin, n)
	}
	v, err := audit.NewVerifier(testOrigin, pub(k))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ParseCheckpoint(n, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != testOrigin || cp.Size != 5 || !bytes.Equal(cp.Root, m.root(5)) {
		t.Fatalf("checkpoint = %+v", cp)
	}
	// The note package's own verifier, from the published key, agrees.
	vkey, err := audit.VerifierKey(testOrigin, pub(k))
	if err != nil {
		t.Fatal(err)
	}
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(n, note.VerifierList(nv)); err != nil {
		t.Fatalf("note.Open with the published key: %v", err)
	}
}

func TestOriginFromIssuer(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":        "127.0.0.1:8080",
		"https://broker.example/":      "broker.example",
		"https://broker.example/sieve": "broker.example/sieve",
		"broker.example":               "broker.example",
	} {
		if got := audit.OriginFromIssuer(in); got != want {
			t.Errorf("OriginFromIssuer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	k := testKey(1)
	m := sampleLog(t, 5)
	good := signed(t, k, m, 5)
	v, _ := audit.NewVerifier(testOrigin, pub(k))
	other, _ := audit.NewVerifier(testOrigin, pub(testKey(2)))
	otherName, _ := audit.NewVerifier("other.example", pub(k))
	signer, _ := audit.NewSigner(testOrigin, k)
	signText := func(text string) []byte {
		n, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	root := base64.StdEncoding.EncodeToString(m.root(5))
	tests := []struct {
		name string
		note []byte
		v    note.Verifier
		want error
	}{
		{"size edited", bytes.Replace(good, []byte("\n5\n"), []byte("\n6\n"), 1), v, audit.ErrBadSignature},
		{"root edited", bytes.Replace(good, []byte(root[:4]), []byte("AAAA"), 1), v, audit.ErrBadSignature},
		{"other key", good, other, audit.ErrBadSignature},
		{"other key name", good, otherName, audit.ErrBadSignature},
		{"origin is not the key name", func() []byte {
			s, _ := audit.NewSigner("other.example", k)
			n, _ := note.Sign(&note.Note{Text: "audit.test.example:8080\n5\n" + root + "\n"}, s)
			return n
		}(), otherName, audit.ErrBadSignature},
		{"no signature", []byte(testOrigin + "\n5\n" + root + "\n"), v, audit.ErrMalformedCheckpoint},
		{"two lines", signText(testOrigin + "\n5\n"), v, audit.ErrMalformedCheckpoint},
		{"leading zero size", signText(testOrigin + "\n05\n" + root + "\n"), v, audit.ErrMalformedCheckpoint},
		{"signed size", signText(testOrigin + "\n+5\n" + root + "\n"), v, audit.ErrMalformedCheckpoint},
		{"short root", signText(testOrigin + "\n5\n" + base64.StdEncoding.EncodeToString([]byte("short")) + "\n"), v, audit.ErrMalformedCheckpoint},
		{"unpadded root", signText(testOrigin + "\n5\n" + strings.TrimRight(root, "=") + "\n"), v, audit.ErrMalformedCheckpoint},
		{"empty extension line", signText(testOrigin + "\n5\n" + root + "\n\n"), v, audit.ErrMalformedCheckpoint},
		{"oversized", append(bytes.Repeat([]byte("x"), audit.MaxCheckpointSize), good...), v, audit.ErrMalformedCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseCheckpoint(tc.note, tc.v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseCheckpoint = %v, want %v", err, tc.want)
			}
		})
	}
	// Extension lines are allowed by C2SP and ignored.
	if _, err := audit.ParseCheckpoint(signText(testOrigin+"\n5\n"+root+"\nextension\n"), v); err != nil {
		t.Errorf("extension line rejected: %v", err)
	}
}

func TestParsePublicKey(t *testing.T) {
	k := pub(testKey(3))
	vkey, _ := audit.VerifierKey(testOrigin, k)
	der, _ := x509.MarshalPKIXPublicKey(k)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	file := filepath.Join(t.TempDir(), "audit.pub")
	if err := os.WriteFile(file, []byte(vkey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		named    bool
	}{
		{"verifier key", vkey, true},
		{"verifier key with newline", vkey + "\n", true},
		{"hex", hex.EncodeToString(k), false},
		{"base64", base64.StdEncoding.EncodeToString(k), false},
		{"raw url base64", base64.RawURLEncoding.EncodeToString(k), false},
		{"url base64", base64.URLEncoding.EncodeToString(k), false},
		{"pem", pemKey, false},
		{"file", file, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.LoadPublicKey(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Key, k) || (got.Name != "") != tc.named {
				t.Fatalf("key = %+v", got)
			}
		})
	}
	for _, bad := range []string{"", "nope", hex.EncodeToString(k[:31]), "name+0000+AAAA", filepath.Join(t.TempDir(), "absent"),
		"/tmp/abcdefghijklmnopqrstuvwxyz0123456789ABC", base64.RawStdEncoding.EncodeToString(k)} {
		if _, err := audit.LoadPublicKey(bad); err == nil {
			t.Errorf("LoadPublicKey(%q) succeeded", bad)
		}
	}
}

func TestPublicKeyVerifyCheckpoint(t *testing.T) {
	k := testKey(4)
	m := sampleLog(t, 3)
	n := signed(t, k, m, 3)
	raw := audit.PublicKey{Key: pub(k)}
	if cp, err := raw.VerifyCheckpoint(n); err != nil || cp.Size != 3 {
		t.Fatalf("unnamed key: %+v %v", cp, err)
	}
	named := audit.PublicKey{Name: "another.origin", Key: pub(k)}
	if _, err := named.VerifyCheckpoint(n); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("key named for another origin: err = %v", err)
	}
	wrong := audit.PublicKey{Key: ed25519.PublicKey(pub(testKey(5)))}
	if _, err := wrong.VerifyCheckpoint(n); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("wrong key: err = %v", err)
	}
}

func TestNoteSigners(t *testing.T) {
	m := sampleLog(t, 2)
	a, b := signed(t, testKey(1), m, 2), signed(t, testKey(2), m, 2)
	sa, sb := audit.NoteSigners(a), audit.NoteSigners(b)
	if len(sa) != 1 || len(sb) != 1 || sa[0] == sb[0] || !strings.HasPrefix(sa[0], testOrigin+"+") {
		t.Fatalf("signers %v %v", sa, sb)
	}
	vkey, _ := audit.VerifierKey(testOrigin, pub(testKey(1)))
	if !strings.HasPrefix(vkey, sa[0]+"+") {
		t.Fatalf("signer %q is not the prefix of the verifier key %q", sa[0], vkey)
	}
	if got := audit.NoteSigners([]byte("no signatures")); got != nil {
		t.Fatalf("NoteSigners of an unsigned text = %v", got)
	}
}
