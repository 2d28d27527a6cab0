package partnerhook_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/partnerhook"
)

func TestSignKnownAnswer(t *testing.T) {
	// HMAC-SHA256("whsec_test", "1700000000." + body), computed with Python's hmac.
	got := partnerhook.Sign([]byte("whsec_test"), time.Unix(1700000000, 0), []byte(`{"event":"order.placed"}`))
	want := "t=1700000000,v1=503860053b39d82b328e7b2088b20b6af15a9b1d14b1a06b42989a79e777936d"
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("whsec_test")
	body := []byte(`{"event":"order.placed","order_id":"ord_1"}`)
	sent := time.Unix(1700000000, 0)
	header := partnerhook.Sign(secret, sent, body)
	sig := header[strings.Index(header, "v1="):]
	otherSig := partnerhook.Sign([]byte("old secret"), sent, body)
	otherSig = otherSig[strings.Index(otherSig, "v1="):]

	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, header, body, sent, nil},
		{"valid, receiver clock 4 min ahead", secret, header, body, sent.Add(4 * time.Minute), nil},
		{"valid, receiver clock 4 min behind", secret, header, body, sent.Add(-4 * time.Minute), nil},
		{"spaces and an unknown scheme", secret, "t=1700000000, v0=abc, " + sig, body, sent, nil},
		{"several v1, one matching (rotation)", secret, "t=1700000000," + otherSig + "," + sig, body, sent, nil},
		{"tampered body", secret, header, []byte(`{"event":"order.placed","order_id":"ord_2"}`), sent, partnerhook.ErrSignature},
		{"wrong secret", []byte("other"), header, body, sent, partnerhook.ErrSignature},
		{"stale", secret, header, body, sent.Add(6 * time.Minute), partnerhook.ErrStale},
		{"from the future", secret, header, body, sent.Add(-6 * time.Minute), partnerhook.ErrStale},
		{"timestamp changed", secret, strings.Replace(header, "t=1700000000", "t=1700000001", 1), body, sent, partnerhook.ErrSignature},
		{"empty", secret, "", body, sent, partnerhook.ErrHeader},
		{"no timestamp", secret, sig, body, sent, partnerhook.ErrHeader},
		{"no signature", secret, "t=1700000000", body, sent, partnerhook.ErrHeader},
		{"two timestamps", secret, "t=1700000000,t=1700000000," + sig, body, sent, partnerhook.ErrHeader},
		{"timestamp with a plus", secret, "t=+1700000000," + sig, body, sent, partnerhook.ErrHeader},
		{"timestamp not a number", secret, "t=now," + sig, body, sent, partnerhook.ErrHeader},
		{"signature not hex", secret, "t=1700000000,v1=zz", body, sent, partnerhook.ErrHeader},
		{"signature too short", secret, "t=1700000000,v1=abcd", body, sent, partnerhook.ErrHeader},
		{"part without =", secret, "t=1700000000,junk," + sig, body, sent, partnerhook.ErrHeader},
		{"too many signatures", secret, "t=1700000000" + strings.Repeat(","+otherSig, 9) + "," + sig, body, sent, partnerhook.ErrHeader},
		{"huge header", secret, header + "," + strings.Repeat("x=y,", 1000), body, sent, partnerhook.ErrHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := partnerhook.Verify(tt.secret, tt.header, tt.body, tt.now, 0); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// An explicit tolerance replaces the default.
	if err := partnerhook.Verify(secret, header, body, sent.Add(2*time.Minute), time.Minute); !errors.Is(err, partnerhook.ErrStale) {
		t.Fatalf("1-minute tolerance, 2 minutes late: %v", err)
	}
}

// FuzzVerify: arbitrary headers never panic, and none verifies
// unless it carries the genuine signature for the genuine timestamp.
func FuzzVerify(f *testing.F) {
	secret := []byte("whsec_test")
	body := []byte(`{"event":"order.placed"}`)
	sent := time.Unix(1700000000, 0)
	good := partnerhook.Sign(secret, sent, body)
	f.Add(good)
	f.Add("t=1700000000,v1=")
	f.Add("t=-1,v1=00")
	f.Add(",,,=,=")
	f.Fuzz(func(t *testing.T, header string) {
		err := partnerhook.Verify(secret, header, body, sent, 0)
		if err == nil && !strings.Contains(header, good[strings.Index(good, "v1="):]) {
			t.Fatalf("accepted a header without the genuine signature: %q", header)
		}
	})
}
