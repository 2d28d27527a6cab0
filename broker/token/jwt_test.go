package token_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

const testIssuer = "https://broker.example"

// t0 is the tests' fixed clock: tokens are built relative to it.
var t0 = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

func newIssuer(t testing.TB) (*token.Issuer, *token.Keyring) {
	t.Helper()
	kr, _ := newKeyring(t)
	iss := token.NewIssuer(kr, testIssuer, 0)
	token.SetNow(iss, func() time.Time { return t0 })
	return iss, kr
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// signEd builds a JWT by hand, so a test controls every header and claim.
func signEd(t testing.TB, key ed25519.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + b64(ed25519.Sign(key, []byte(input)))
}

// goodHeader and goodClaims make a token the issuer accepts; each attack
// changes one thing, so the table proves that one thing is checked.
func goodHeader(kid string) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": testIssuer, "sub": "cli_partner", "client_id": "cli_partner", "aud": testIssuer + "/v1",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(9 * time.Minute).Unix(), "jti": "jti-1",
		"scope": "orders:read orders:write",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

func TestVerifyAccepts(t *testing.T) {
	iss, kr := newIssuer(t)
	kid, key := kr.Current()
	issued, expiresIn, err := iss.Issue("cli_partner", []string{broker.ScopeOrdersWrite, broker.ScopeOrdersRead, broker.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	if expiresIn != 600 {
		t.Errorf("expiresIn = %d, want the 10-minute default", expiresIn)
	}
	tests := []struct {
		name string
		raw  string
	}{
		{"issued", issued},
		{"hand-built baseline", signEd(t, key, goodHeader(kid), goodClaims())},
		{"typ application/at+jwt", signEd(t, key, with(goodHeader(kid), "typ", "application/at+jwt"), goodClaims())},
		{"typ in upper case", signEd(t, key, with(goodHeader(kid), "typ", "AT+JWT"), goodClaims())},
		{"aud as an array holding ours", signEd(t, key, goodHeader(kid),
			with(goodClaims(), "aud", []string{"https://other.example", testIssuer + "/v1"}))},
		{"iat within the leeway", signEd(t, key, goodHeader(kid),
			with(goodClaims(), "iat", t0.Add(20*time.Second).Unix()))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := iss.Verify(tt.raw)
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if c.Subject != "cli_partner" || c.ClientID != "cli_partner" || c.Issuer != testIssuer || c.ID == "" ||
				!slices.Equal(c.Scopes, []string{"orders:read", "orders:write"}) ||
				!slices.Contains(c.Audience, testIssuer+"/v1") || !c.HasScope(broker.ScopeOrdersRead) ||
				c.HasScope(broker.ScopeAuditRead) {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

func TestIssueShape(t *testing.T) {
	iss, kr := newIssuer(t)
	raw, _, err := iss.Issue("cli_partner", []string{broker.ScopeDeliveryRead})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	var header map[string]any
	var claims map[string]any
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	kid, _ := kr.Current()
	if !maps.Equal(header, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}) {
		t.Errorf("header = %v", header)
	}
	// aud is one string, not an array: RFC 9068 consumers compare it so.
	want := map[string]any{"iss": testIssuer, "sub": "cli_partner", "client_id": "cli_partner",
		"aud": testIssuer + "/v1", "iat": float64(t0.Unix()), "exp": float64(t0.Add(10 * time.Minute).Unix()),
		"scope": "delivery:read"}
	jti, _ := claims["jti"].(string)
	delete(claims, "jti")
	if !maps.Equal(claims, want) || len(jti) < 20 {
		t.Errorf("claims = %v (jti %q), want %v and a random jti", claims, jti, want)
	}
	again, _, _ := iss.Issue("cli_partner", []string{broker.ScopeDeliveryRead})
	if again == raw {
		t.Error("two tokens are identical: jti is not random")
	}

	for _, bad := range [][]string{{"orders:read orders:write"}, {"admin"}} {
		if _, _, err := iss.Issue("cli_partner", bad); broker.ErrorCode(err) != broker.EInvalid {
			t.Errorf("Issue(scopes %q) = %v, want EInvalid", bad, err)
		}
	}
	if _, _, err := iss.Issue("", nil); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("Issue without client id = %v, want EInvalid", err)
	}
}

func TestLifetimeBounds(t *testing.T) {
	kr, _ := newKeyring(t)
	for _, tt := range []struct{ in, want time.Duration }{
		{0, token.DefaultLifetime}, {-time.Minute, token.DefaultLifetime},
		{5 * time.Minute, 5 * time.Minute}, {time.Hour, token.MaxLifetime},
	} {
		iss := token.NewIssuer(kr, testIssuer, tt.in)
		_, expiresIn, err := iss.Issue("cli_x", nil)
		if err != nil || iss.Lifetime() != tt.want || expiresIn != int(tt.want.Seconds()) {
			t.Errorf("NewIssuer(lifetime %v): Lifetime %v, expires_in %d, %v; want %v", tt.in, iss.Lifetime(), expiresIn, err, tt.want)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	iss, kr := newIssuer(t)
	kid, key := kr.Current()
	pub, _ := kr.PublicKey(kid)
	_, foreign, _ := ed25519.GenerateKey(nil)
	good := signEd(t, key, goodHeader(kid), goodClaims())
	if _, err := token.VerifyUncached(iss, good); err != nil {
		t.Fatalf("baseline token rejected: %v", err) // else the table proves nothing
	}

	hs256 := func() string { // alg confusion: HMAC keyed with the public key
		input := segment(t, with(goodHeader(kid), "alg", "HS256")) + "." + segment(t, goodClaims())
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}()
	edited := func() string { // payload swapped after signing
		parts := strings.Split(good, ".")
		return parts[0] + "." + segment(t, with(goodClaims(), "scope", "orders:read audit:read")) + "." + parts[2]
	}()
	huge := signEd(t, key, goodHeader(kid), with(goodClaims(), "pad", strings.Repeat("A", 100<<10)))

	tests := []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"garbage", "not a token"},
		{"three dots of garbage", "a.b.c"},
		{"only dots", strings.Repeat(".", 1000)},
		{"alg none", segment(t, with(goodHeader(kid), "alg", "none")) + "." + segment(t, goodClaims()) + "."},
		{"HS256 keyed with the public key", hs256},
		{"foreign key, copied kid", signEd(t, foreign, goodHeader(kid), goodClaims())},
		{"payload edited after signing", edited},
		{"signature stripped", strings.Join(strings.Split(good, ".")[:2], ".") + "."},
		{"expired", signEd(t, key, goodHeader(kid), with(goodClaims(),
			"iat", t0.Add(-12*time.Minute).Unix(), "exp", t0.Add(-2*time.Minute).Unix()))},
		{"iat in the future", signEd(t, key, goodHeader(kid), with(goodClaims(),
			"iat", t0.Add(5*time.Minute).Unix(), "exp", t0.Add(15*time.Minute).Unix()))},
		{"nbf in the future", signEd(t, key, goodHeader(kid), with(goodClaims(), "nbf", t0.Add(5*time.Minute).Unix()))},
		{"wrong iss", signEd(t, key, goodHeader(kid), with(goodClaims(), "iss", "https://evil.example"))},
		{"missing iss", signEd(t, key, goodHeader(kid), with(goodClaims(), "iss", nil))},
		{"wrong aud", signEd(t, key, goodHeader(kid), with(goodClaims(), "aud", testIssuer))},
		{"aud array without ours", signEd(t, key, goodHeader(kid), with(goodClaims(), "aud", []string{"https://other.example/v1"}))},
		{"missing aud", signEd(t, key, goodHeader(kid), with(goodClaims(), "aud", nil))},
		{"wrong typ", signEd(t, key, with(goodHeader(kid), "typ", "JWT"), goodClaims())},
		{"missing typ", signEd(t, key, with(goodHeader(kid), "typ", nil), goodClaims())},
		{"typ not a string", signEd(t, key, with(goodHeader(kid), "typ", 1), goodClaims())},
		{"crit header", signEd(t, key, with(goodHeader(kid), "crit", []string{"exp"}), goodClaims())},
		{"missing exp", signEd(t, key, goodHeader(kid), with(goodClaims(), "exp", nil))},
		{"exp not a number", signEd(t, key, goodHeader(kid), with(goodClaims(), "exp", "tomorrow"))},
		{"missing iat", signEd(t, key, goodHeader(kid), with(goodClaims(), "iat", nil))},
		{"lifetime over 15 minutes", signEd(t, key, goodHeader(kid), with(goodClaims(), "exp", t0.Add(2*time.Hour).Unix()))},
		{"missing sub", signEd(t, key, goodHeader(kid), with(goodClaims(), "sub", nil))},
		{"sub differs from client_id", signEd(t, key, goodHeader(kid), with(goodClaims(), "sub", "cli_other"))},
		{"missing client_id", signEd(t, key, goodHeader(kid), with(goodClaims(), "client_id", nil))},
		{"missing jti", signEd(t, key, goodHeader(kid), with(goodClaims(), "jti", nil))},
		{"unknown kid", signEd(t, key, with(goodHeader(kid), "kid", "AAAAAAAAAAAAAAAA"), goodClaims())},
		{"missing kid", signEd(t, key, with(goodHeader(kid), "kid", nil), goodClaims())},
		{"100 KB token", huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, verify := range []func(string) (*token.Claims, error){iss.Verify, func(raw string) (*token.Claims, error) {
				return token.VerifyUncached(iss, raw)
			}} {
				c, err := verify(tt.raw)
				if err == nil {
					t.Fatalf("accepted: %+v", c)
				}
				if broker.ErrorCode(err) != broker.EUnauthorized || broker.ErrorMessage(err) != "invalid access token" {
					t.Errorf("error = %v, want EUnauthorized with the fixed message", err)
				}
				if len(tt.raw) > 8 && strings.Contains(err.Error(), tt.raw) {
					t.Errorf("error echoes the token")
				}
			}
		})
	}
	if n := token.CacheLen(iss); n != 0 {
		t.Errorf("%d rejected tokens were cached", n)
	}
}

func TestVerifyCache(t *testing.T) {
	iss, _ := newIssuer(t)
	now := t0
	token.SetNow(iss, func() time.Time { return now })
	raw, _, err := iss.Issue("cli_partner", []string{broker.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := iss.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if token.CacheLen(iss) != 1 {
		t.Fatalf("cache holds %d entries after one verification, want 1", token.CacheLen(iss))
	}
	c1.Scopes[0] = "audit:read" // a caller scribbling on its copy
	c2, err := iss.Verify(raw)
	if err != nil || !slices.Equal(c2.Scopes, []string{broker.ScopeOrdersRead}) {
		t.Fatalf("cached Verify = %+v, %v: want the original scopes", c2, err)
	}

	// Past exp + leeway, the cached entry no longer vouches for the token.
	now = t0.Add(token.DefaultLifetime + token.Leeway + time.Second)
	if _, err := iss.Verify(raw); broker.ErrorCode(err) != broker.EUnauthorized {
		t.Fatalf("expired cached token: Verify = %v, want EUnauthorized", err)
	}
	if token.CacheLen(iss) != 0 {
		t.Fatalf("expired entry still cached")
	}
}

func TestRotationOverlap(t *testing.T) {
	iss, kr := newIssuer(t)
	oldKid, _ := kr.Current()
	oldTok, _, err := iss.Issue("cli_partner", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(oldTok); err != nil { // now cached
		t.Fatal(err)
	}
	newKid, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, err := iss.Issue("cli_partner", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := headerOf(t, newTok); h["kid"] != newKid {
		t.Fatalf("token after rotation signed by %v, want %s", h["kid"], newKid)
	}
	for name, raw := range map[string]string{"previous key, cached": oldTok, "current key": newTok} {
		if _, err := iss.Verify(raw); err != nil {
			t.Errorf("%s: Verify = %v", name, err)
		}
	}
	if _, err := token.VerifyUncached(iss, oldTok); err != nil {
		t.Errorf("previous key, uncached: Verify = %v", err)
	}

	if err := kr.Retire(oldKid); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(oldTok); broker.ErrorCode(err) != broker.EUnauthorized {
		t.Fatalf("token of a retired key, cached: Verify = %v, want EUnauthorized", err)
	}
	if _, err := token.VerifyUncached(iss, oldTok); broker.ErrorCode(err) != broker.EUnauthorized {
		t.Fatalf("token of a retired key: Verify = %v, want EUnauthorized", err)
	}
	if _, err := iss.Verify(newTok); err != nil {
		t.Fatalf("current key after retiring the previous: %v", err)
	}
}

func headerOf(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestJWKSVerifiesTokens plays a partner's resource server: it knows only
// the published JWKS and must verify our tokens with a stock library.
func TestJWKSVerifiesTokens(t *testing.T) {
	iss, kr := newIssuer(t)
	before, _, _ := iss.Issue("cli_partner", nil)
	if _, err := kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	after, _, _ := iss.Issue("cli_partner", nil)

	var set struct {
		Keys []struct{ Kid, X string } `json:"keys"`
	}
	if err := json.Unmarshal(kr.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			t.Fatal(err)
		}
		keys[k.Kid] = x
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(testIssuer+"/v1"),
		jwt.WithTimeFunc(func() time.Time { return t0 }))
	for name, raw := range map[string]string{"signed before rotation": before, "signed after": after} {
		_, err := p.Parse(raw, func(tok *jwt.Token) (any, error) {
			kid, _ := tok.Header["kid"].(string)
			if k, ok := keys[kid]; ok {
				return k, nil
			}
			return nil, jwt.ErrTokenUnverifiable
		})
		if err != nil {
			t.Errorf("%s: JWKS does not verify the token: %v", name, err)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	iss, kr := newIssuer(t)
	raw, _, _ := iss.Issue("cli_partner", nil)
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for range 50 {
				if _, err = iss.Verify(raw); err != nil {
					break
				}
				if g == 0 {
					_ = kr.JWKS()
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzVerify feeds arbitrary strings to Verify. Nothing may panic, every
// refusal is EUnauthorized, and since a fuzzer cannot forge an Ed25519
// signature the only string accepted is the genuine token itself.
func FuzzVerify(f *testing.F) {
	iss, kr := newIssuer(f)
	valid, _, err := iss.Issue("cli_partner", []string{broker.ScopeOrdersRead})
	if err != nil {
		f.Fatal(err)
	}
	kid, key := kr.Current()
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(segment(f, with(goodHeader(kid), "alg", "none")) + "." + parts[1] + ".")
	f.Add(signEd(f, key, with(goodHeader(kid), "typ", "JWT"), goodClaims()))
	f.Add(parts[0] + "." + parts[1] + "=." + parts[2])
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := iss.Verify(raw)
		if err != nil {
			if broker.ErrorCode(err) != broker.EUnauthorized {
				t.Fatalf("error code %q, want unauthorized", broker.ErrorCode(err))
			}
			return
		}
		if raw != valid {
			t.Fatalf("accepted a token that is not the one we signed: %q", raw)
		}
		if c.ClientID != "cli_partner" || c.Subject != c.ClientID {
			t.Fatalf("claims = %+v", c)
		}
	})
}
