package token_test

import (
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/sieve-broker/sieve/broker/token"
)

func TestNewSecret(t *testing.T) {
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		s := token.NewSecret()
		if !urlSafe.MatchString(s) {
			t.Fatalf("secret %q is not 43 characters of unpadded URL-safe base64", s)
		}
		if seen[s] {
			t.Fatal("NewSecret repeated itself")
		}
		seen[s] = true
	}
}

func TestHashAndCheckSecret(t *testing.T) {
	secret := token.NewSecret()
	h1, err := token.HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := token.HashSecret(secret)
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || h1 == h2 {
		t.Fatalf("HashSecret = %q, %q: want OWASP argon2id parameters and a fresh salt each time", h1, h2)
	}
	for _, tt := range []struct {
		name   string
		secret string
		want   bool
	}{
		{"right secret", secret, true},
		{"wrong secret", token.NewSecret(), false},
		{"empty", "", false},
		{"prefix", secret[:len(secret)-1], false},
		{"longer", secret + "x", false},
		{"huge", strings.Repeat("x", 1<<20), false},
	} {
		if got := token.CheckSecret(h1, tt.secret); got != tt.want {
			t.Errorf("%s: CheckSecret = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// phcFor hashes secret with explicit parameters through the library
// itself, so CheckSecret is tested against hashes it did not make.
func phcFor(secret string, m, tm uint32, p uint8, saltLen, keyLen int, paramStr string) string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(secret), salt, tm, m, p, uint32(keyLen))
	enc := base64.RawStdEncoding
	return "$argon2id$v=19$" + paramStr + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key)
}

func TestCheckSecretHonoursParameters(t *testing.T) {
	const secret = "s3cret"
	phc := phcFor(secret, 64, 1, 2, 8, 16, "m=64,t=1,p=2")
	if !token.CheckSecret(phc, secret) {
		t.Fatalf("CheckSecret rejects a valid hash with other parameters: %s", phc)
	}
}

// The malformed strings are built around the right secret, most of them so
// that a lax parser would accept them: a false shows the parser refused.
func TestCheckSecretRejectsMalformed(t *testing.T) {
	const secret = "s3cret"
	good := phcFor(secret, 64, 1, 1, 16, 32, "m=64,t=1,p=1")
	if !token.CheckSecret(good, secret) {
		t.Fatal("baseline hash rejected")
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, params, salt, hash
	join := func(p ...string) string { return strings.Join(p, "$") }
	tests := map[string]string{
		"empty":               "",
		"garbage":             "not a hash",
		"argon2i":             join("", "argon2i", parts[2], parts[3], parts[4], parts[5]),
		"no version":          join("", "argon2id", parts[3], parts[4], parts[5]),
		"version 16":          join("", "argon2id", "v=16", parts[3], parts[4], parts[5]),
		"params reordered":    join("", "argon2id", parts[2], "t=1,m=64,p=1", parts[4], parts[5]),
		"leading zero":        join("", "argon2id", parts[2], "m=064,t=1,p=1", parts[4], parts[5]),
		"extra param":         join("", "argon2id", parts[2], parts[3]+",k=1", parts[4], parts[5]),
		"padded salt":         join("", "argon2id", parts[2], parts[3], parts[4]+"==", parts[5]),
		"truncated hash":      join("", "argon2id", parts[2], parts[3], parts[4], parts[5][:20]),
		"extra segment":       good + "$x",
		"no leading dollar":   strings.TrimPrefix(good, "$"),
		"empty hash":          join("", "argon2id", parts[2], parts[3], parts[4], ""),
		"memory over the cap": phcFor(secret, 64, 1, 1, 16, 32, "m=4194304,t=1,p=1"),
		"time over the cap":   phcFor(secret, 64, 1, 1, 16, 32, "m=64,t=100,p=1"),
		"zero lanes":          phcFor(secret, 64, 1, 1, 16, 32, "m=64,t=1,p=0"),
		"memory below 8/lane": phcFor(secret, 64, 1, 1, 16, 32, "m=8,t=1,p=2"),
		"salt too short":      phcFor(secret, 64, 1, 1, 4, 32, "m=64,t=1,p=1"),
		"hash too short":      phcFor(secret, 64, 1, 1, 16, 8, "m=64,t=1,p=1"),
		"far too long":        good + strings.Repeat("A", 1000),
	}
	for name, phc := range tests {
		if token.CheckSecret(phc, secret) {
			t.Errorf("%s: CheckSecret accepted %q", name, phc)
		}
	}
}

// FuzzCheckSecret throws arbitrary PHC strings at the parser: no panic, no
// huge allocation, and whatever it accepts it must spell back exactly (one
// canonical form per hash).
func FuzzCheckSecret(f *testing.F) {
	good, err := token.HashSecret("s3cret")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "s3cret")
	f.Add(phcFor("x", 64, 1, 1, 16, 32, "m=64,t=1,p=1"), "x")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2id$v=19$m=99999999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, phc, secret string) {
		canonical, mem, passes, ok := token.ParsePHC(phc)
		if !ok {
			if token.CheckSecret(phc, secret) {
				t.Fatalf("CheckSecret accepted an unparseable PHC string %q", phc)
			}
			return
		}
		if canonical != phc {
			t.Fatalf("parsed %q but formats back as %q", phc, canonical)
		}
		if mem <= 1024 && passes <= 2 { // keep each run fast; bounds are tested above
			token.CheckSecret(phc, secret)
		}
	})
}
