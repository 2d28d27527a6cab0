package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSignKnownVector(t *testing.T) {
	// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
	got := Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte(DevAppSecret)
	// Non-ASCII bytes, escaped slash and an invalid UTF-8 byte: the signature
	// covers the raw bytes, whatever they are.
	body := []byte("{\"text\":{\"body\":\"Namaste 🙏 café \\/ ok \xff\"}}")
	good := Sign(secret, body)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	raw := hex.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   bool
	}{
		{"valid", secret, body, good, true},
		{"valid uppercase hex", secret, body, "sha256=" + strings.ToUpper(raw), true},
		{"wrong secret", []byte("other-secret"), body, good, false},
		{"empty secret", nil, body, Sign(nil, body), false},
		{"body changed", secret, append([]byte(nil), append(body, ' ')...), good, false},
		{"re-encoded body", secret, []byte("{\"text\":{\"body\":\"Namaste \\ud83d\\ude4f caf\\u00e9 / ok \\ufffd\"}}"), good, false},
		{"missing prefix", secret, body, raw, false},
		{"sha1 prefix", secret, body, "sha1=" + raw, false},
		{"prefix uppercase", secret, body, "SHA256=" + raw, false},
		{"too short", secret, body, good[:len(good)-1], false},
		{"too long", secret, body, good + "0", false},
		{"trailing space", secret, body, good[:len(good)-1] + " ", false},
		{"non-hex", secret, body, "sha256=" + strings.Repeat("z", 64), false},
		{"empty", secret, body, "", false},
		{"space after prefix", secret, body, "sha256= " + raw[:63], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySignature(tt.secret, tt.body, tt.header); got != tt.want {
				t.Errorf("VerifySignature = %v, want %v", got, tt.want)
			}
		})
	}
	if len(good) != 71 {
		t.Errorf("header length %d, want 71", len(good))
	}
}

func TestVerifyToken(t *testing.T) {
	tests := []struct {
		expected, got string
		want          bool
	}{
		{"dev-verify-token", "dev-verify-token", true},
		{"dev-verify-token", "dev-verify-toke", false},
		{"dev-verify-token", "dev-verify-tokenX", false},
		{"dev-verify-token", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := VerifyToken(tt.expected, tt.got); got != tt.want {
			t.Errorf("VerifyToken(%q, %q) = %v, want %v", tt.expected, tt.got, got, tt.want)
		}
	}
}
