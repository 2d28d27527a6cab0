package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// signaturePrefix precedes the hex HMAC in X-Hub-Signature-256.
const signaturePrefix = "sha256="

// signatureHeaderLen is len("sha256=") + 64 hex digits.
const signatureHeaderLen = len(signaturePrefix) + 2*sha256.Size

// Sign returns the X-Hub-Signature-256 value of body: "sha256=" followed by
// the lowercase hex HMAC-SHA256 of the exact bytes, keyed with the app secret.
func Sign(appSecret, body []byte) string {
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is a valid X-Hub-Signature-256 of
// the raw request body: exactly "sha256=" and 64 hex digits (either case),
// compared in constant time. An empty app secret never verifies.
func VerifySignature(appSecret, rawBody []byte, header string) bool {
	if len(appSecret) == 0 || len(header) != signatureHeaderLen || header[:len(signaturePrefix)] != signaturePrefix {
		return false
	}
	got, err := hex.DecodeString(header[len(signaturePrefix):])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(rawBody)
	return hmac.Equal(mac.Sum(nil), got)
}

// VerifyToken reports whether got equals the expected webhook verify token,
// in constant time (lengths are hidden by comparing digests). An empty
// expected token never matches.
func VerifyToken(expected, got string) bool {
	if expected == "" {
		return false
	}
	e := sha256.Sum256([]byte(expected))
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(e[:], g[:]) == 1
}
