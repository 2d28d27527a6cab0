package token

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: the OWASP Password Storage Cheat Sheet's first
// option (19 MiB, 2 passes, 1 lane). Client secrets are 256-bit random
// values, so the hash guards a leaked table against nothing a fast hash
// could not, but keeping the password-grade setting costs ~20 ms per token
// request without a cached check and leaves no weak spot if a human-chosen
// secret ever reaches this code.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32

	secretBytes = 32

	// Bounds on what CheckSecret accepts, so that a corrupt or hostile
	// stored hash cannot make one check take gigabytes or minutes.
	maxPHCLen     = 256
	maxSecretLen  = 1024
	maxArgonMem   = 256 * 1024 // KiB
	maxArgonTime  = 16
	maxArgonLanes = 16
)

// phcB64 is the PHC string format's base64: standard alphabet, no padding.
// Strict, so each hash has exactly one spelling.
var phcB64 = base64.RawStdEncoding.Strict()

// NewSecret returns a new client secret: 32 random bytes in URL-safe base64
// without padding (43 characters), safe in a form body, a Basic header and
// a shell argument alike.
func NewSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret returns the argon2id hash of secret as a PHC string:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashSecret(secret string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	p := phc{memory: argonMemory, time: argonTime, threads: argonThreads, salt: salt}
	p.hash = argon2.IDKey([]byte(secret), salt, p.time, p.memory, p.threads, argonKeyLen)
	return p.String(), nil
}

// CheckSecret reports whether secret matches the PHC string phc. The hash
// comparison is constant-time; a malformed or out-of-bounds PHC string
// matches nothing.
func CheckSecret(phcString, secret string) bool {
	if len(secret) > maxSecretLen {
		return false
	}
	p, ok := parsePHC(phcString)
	if !ok {
		return false
	}
	got := argon2.IDKey([]byte(secret), p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
	return subtle.ConstantTimeCompare(got, p.hash) == 1
}

// phc is a parsed argon2id PHC string.
type phc struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

func (p phc) String() string {
	return "$argon2id$v=19$m=" + strconv.FormatUint(uint64(p.memory), 10) +
		",t=" + strconv.FormatUint(uint64(p.time), 10) +
		",p=" + strconv.FormatUint(uint64(p.threads), 10) +
		"$" + phcB64.EncodeToString(p.salt) + "$" + phcB64.EncodeToString(p.hash)
}

// parsePHC parses the one canonical spelling of an argon2id v19 hash:
// parameters in the order m, t, p, decimal without leading zeros, within
// bounds; salt of 8–64 bytes and hash of 16–64 bytes in strict base64.
func parsePHC(s string) (phc, bool) {
	if len(s) > maxPHCLen {
		return phc{}, false
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return phc{}, false
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return phc{}, false
	}
	m, ok1 := param(params[0], "m=", maxArgonMem)
	t, ok2 := param(params[1], "t=", maxArgonTime)
	lanes, ok3 := param(params[2], "p=", maxArgonLanes)
	// argon2 needs at least 8 KiB per lane.
	if !ok1 || !ok2 || !ok3 || m < 8*lanes {
		return phc{}, false
	}
	// Go's base64 decoders skip '\r' and '\n' even in strict mode, so a
	// field holding them would decode and still not be the canonical
	// string: refuse anything outside the alphabet first.
	if !b64Field(parts[4]) || !b64Field(parts[5]) {
		return phc{}, false
	}
	salt, err := phcB64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return phc{}, false
	}
	hash, err := phcB64.DecodeString(parts[5])
	if err != nil || len(hash) < 16 || len(hash) > 64 {
		return phc{}, false
	}
	return phc{memory: m, time: t, threads: uint8(lanes), salt: salt, hash: hash}, true
}

// b64Field reports whether s holds only characters of the standard
// base64 alphabet (no padding, no line breaks).
func b64Field(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// param parses "<prefix><n>" with 1 ≤ n ≤ max and no leading zero or sign.
func param(s, prefix string, max uint32) (uint32, bool) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" || v[0] == '0' || len(v) > 10 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 1 || n > uint64(max) {
		return 0, false
	}
	return uint32(n), true
}
