package partnerhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the header that carries a partner webhook's signature.
const Header = "Sieve-Signature"

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock: long enough for retries in flight and clock skew,
// short enough that a captured request cannot be replayed much later.
const DefaultTolerance = 5 * time.Minute

const (
	maxSignatureHeader = 1024
	maxSignatures      = 8 // several v1 values let us sign with two secrets during a rotation
)

// Errors of Verify. A receiver answers any of them with a 4xx and
// drops the request.
var (
	ErrHeader    = errors.New("webhook: malformed Sieve-Signature header")
	ErrStale     = errors.New("webhook: timestamp outside the tolerance")
	ErrSignature = errors.New("webhook: no signature matches")
)

// Sign returns the Sieve-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>". Signing
// the timestamp with the body is what lets the receiver refuse replays.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Sieve-Signature header against the raw body, as a
// partner receiving our webhooks should: the timestamp must be within
// tolerance of now (DefaultTolerance when tolerance ≤ 0) and one of
// the v1 signatures must match, compared in constant time. Unknown keys in
// the header are ignored, so new signature schemes can be added beside v1.
//
// Verify the bytes exactly as received, before any JSON decoding.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if len(header) > maxSignatureHeader {
		return ErrHeader
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrHeader
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrHeader // two timestamps: which one was signed?
			}
			ts = v
		case "v1":
			// Lower-case hex only, as Sign writes it: one spelling
			// per signature, like the timestamp.
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size || len(sigs) == maxSignatures || v != strings.ToLower(v) {
				return ErrHeader
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrHeader
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(unix, 10) != ts {
		return ErrHeader // one spelling per timestamp: it is part of the MAC
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignature
}
