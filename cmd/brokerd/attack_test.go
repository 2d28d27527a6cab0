package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
)

// This file holds the JWT attack test of the partner API (SPEC §4: every
// forged, stale or misdirected token is a 401) and the helpers the other
// hardening tests share: a harness whose logger and HTTP dependencies the
// test chooses, a token forger, and a strict check of the error shape.

// harnessOpts are what newHarnessWith can set beyond newHarness.
type harnessOpts struct {
	log    *slog.Logger        // nil: discard
	extra  func(*httpapi.Deps) // Main.Extra
	adjust []func(*config.Config)
}

// newHarnessWith starts brokerd on 127.0.0.1:0 with a fresh database, keys
// and fake Send API, a chosen logger (nil discards) and Main.Extra.
func newHarnessWith(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	wa := newFakeSendAPI(t)
	cfg := config.FromEnv(func(string) string { return "" })
	cfg.Database.URL = pgtest.NewURL(t)
	cfg.Keys.Dir = t.TempDir()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.Issuer = "http://sieve.test"
	cfg.WhatsApp.APIBase = wa.srv.URL + "/v25.0"
	cfg.SetDefaults()
	for _, a := range o.adjust {
		a(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Main{Config: cfg, Log: log, Extra: o.extra}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("brokerd: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if _, err := m.Sys.Stores.Catalog.UpsertProducts(context.Background(), commerce.DemoCatalog()); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, m: m, base: "http://" + m.Addr(), wa: wa, seen: map[string]int{}}
	h.checkDecisionIDs() // after Close's cleanup, so it runs first
	return h
}

// lockedBuffer is a log sink that tests can read while the broker writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// creds are a registered partner's credentials.
type creds struct {
	ID, Secret, Bearer string
}

// partnerWith registers a partner from a full spec (webhook URL included)
// and gets a token with every granted scope.
func (h *harness) partnerWith(spec token.PartnerSpec) creds {
	h.t.Helper()
	id, secret, err := token.CreatePartner(context.Background(), h.m.Sys.DB.Partners(), h.m.Sys.Sealer, spec)
	if err != nil {
		h.t.Fatal(err)
	}
	a := h.tokenRequest(id, secret, "")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &tok) != nil || tok.AccessToken == "" {
		h.t.Fatalf("token for %s: %d %s", spec.Name, a.status, a.body)
	}
	return creds{ID: id, Secret: secret, Bearer: tok.AccessToken}
}

// tokenRequest asks /oauth/token for a token with HTTP Basic credentials.
func (h *harness) tokenRequest(id, secret, scope string) answer {
	h.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest("POST", h.base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return send(h.t, req)
}

// purchase runs a whole purchase for wa and returns the placed order's id.
func (h *harness) purchase(wa string) string {
	h.t.Helper()
	orderID, ref, total := h.checkout(wa)
	h.pay(wa, ref, total)
	h.waitIdle()
	return orderID
}

// answer is one HTTP exchange, read completely.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send performs req and reads the whole answer.
func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// getWith sends GET path with the Authorization header set to authz (none
// when empty).
func (h *harness) getWith(path, authz string) answer {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.base+path, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return send(h.t, req)
}

// codeFor is the error code each status must carry (SPEC §4, the httpapi
// error table). 403 is either a scope refusal or a policy denial.
var codeFor = map[int][]string{
	400: {broker.EInvalid},
	401: {broker.EUnauthorized},
	403: {broker.EForbidden, broker.EDenied},
	404: {broker.ENotFound},
	405: {broker.EMethod},
	409: {broker.EConflict},
	413: {broker.ETooLarge},
	415: {broker.EUnsupported},
	429: {broker.ERateLimited},
	431: {"header_too_large"},
}

// checkJSONError reports how a body fails to be exactly the API's error
// shape {"error":{"code","message"}} with the code matching the status; ""
// when it is.
func checkJSONError(a answer) string {
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "Content-Type " + strconv.Quote(ct) + ", want application/json"
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &top); err != nil {
		return "body is not a JSON object: " + err.Error()
	}
	if len(top) != 1 || top["error"] == nil {
		return "body has keys other than \"error\""
	}
	var e map[string]any
	if err := json.Unmarshal(top["error"], &e); err != nil {
		return "error is not an object"
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if len(e) != 2 || code == "" || msg == "" {
		return "error is not exactly {code, message} with non-empty strings"
	}
	if want, ok := codeFor[a.status]; ok && !contains1(want, code) {
		return "code " + strconv.Quote(code) + " does not fit status " + strconv.Itoa(a.status)
	}
	return ""
}

func contains1(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rfc6749Codes are the error codes of RFC 6749 §5.2, and the one the token
// endpoint borrows from §4.1.2.1 for its 429 and 503 answers.
var rfc6749Codes = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "temporarily_unavailable"}

// checkOAuthError reports how a body fails to be an RFC 6749 §5.2 error.
func checkOAuthError(a answer) string {
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "Content-Type " + strconv.Quote(ct) + ", want application/json"
	}
	var e map[string]any
	if err := json.Unmarshal(a.body, &e); err != nil {
		return "body is not a JSON object: " + err.Error()
	}
	code, ok := e["error"].(string)
	if !ok || !contains1(rfc6749Codes, code) {
		return "error is not an RFC 6749 code"
	}
	for k, v := range e {
		if _, isStr := v.(string); !isStr || (k != "error" && k != "error_description" && k != "error_uri") {
			return "unexpected member " + strconv.Quote(k)
		}
	}
	if a.header.Get("Cache-Control") != "no-store" {
		return "no Cache-Control: no-store"
	}
	return ""
}

// forger builds access tokens as an attacker would: with the JWT library
// directly, never through the broker's Issuer.
type forger struct {
	kid      string
	key      ed25519.PrivateKey
	pub      ed25519.PublicKey
	issuer   string
	audience string
}

func newForger(h *harness) *forger {
	kid, key := h.m.Sys.SignKeys.Current()
	iss := h.m.Config.Server.Issuer
	return &forger{kid: kid, key: key, pub: key.Public().(ed25519.PublicKey), issuer: iss,
		audience: iss + token.AudienceSuffix}
}

// claims is a valid claim set for clientID: signed with the real key it
// is accepted (the control case of the attack table proves it).
func (f *forger) claims(clientID string, scopes ...string) jwt.MapClaims {
	now := time.Now()
	var jti [12]byte
	rand.Read(jti[:]) //nolint:errcheck
	return jwt.MapClaims{"iss": f.issuer, "sub": clientID, "client_id": clientID, "aud": f.audience,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]), "scope": strings.Join(scopes, " ")}
}

// sign signs claims with method and key; header entries override the
// default typ at+jwt and the real kid (a nil value removes the entry).
func (f *forger) sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = token.TokenType
	tok.Header["kid"] = f.kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forging a token: %v", err)
	}
	return s
}

// good signs claims with the real key.
func (f *forger) good(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	return f.sign(t, jwt.SigningMethodEdDSA, f.key, nil, claims)
}

// with returns a copy of c with the given changes (nil deletes).
func with(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// jwtAttack is one forged or unacceptable bearer credential.
type jwtAttack struct {
	name  string
	authz string // the whole Authorization header value; "" sends none
}

// jwtAttacks lists the credentials that must all be refused with 401 on a
// route that clientID, holding scopes, may otherwise use.
func jwtAttacks(t *testing.T, f *forger, clientID string, scopes []string) []jwtAttack {
	t.Helper()
	base := f.claims(clientID, scopes...)
	now := time.Now()
	bearer := func(tok string) string { return "Bearer " + tok }
	valid := f.good(t, base)
	parts := strings.Split(valid, ".")

	foreignPub, foreignKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkix, _ := x509.MarshalPKIXPublicKey(f.pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	jwkX := base64.RawURLEncoding.EncodeToString(f.pub)

	escalated := with(base, map[string]any{"scope": strings.Join(broker.AllScopes, " ")})
	switched := with(base, map[string]any{"sub": "cli_someoneelse", "client_id": "cli_someoneelse"})
	other := f.good(t, with(base, map[string]any{"jti": "another"}))
	header := map[string]any{"alg": "EdDSA", "typ": token.TokenType, "kid": f.kid}

	return []jwtAttack{
		{"no token", ""},
		{"garbage", "Bearer gArBaGe-not-a-jwt"},
		{"empty bearer", "Bearer "},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":secret"))},
		{"token without scheme", valid},
		{"two dots only", "Bearer .."},
		{"alg none", bearer(f.sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, base))},
		{"alg NONE, hand-made", bearer(b64json(with(header, map[string]any{"alg": "NONE"})) + "." + b64json(base) + ".")},
		{"alg EdDSA, signature stripped", bearer(parts[0] + "." + parts[1] + ".")},
		{"HS256 keyed with the raw public key", bearer(f.sign(t, jwt.SigningMethodHS256, []byte(f.pub), nil, base))},
		{"HS256 keyed with the JWK x value", bearer(f.sign(t, jwt.SigningMethodHS256, []byte(jwkX), nil, base))},
		{"HS256 keyed with the PEM public key", bearer(f.sign(t, jwt.SigningMethodHS256, pubPEM, nil, base))},
		{"HS512 keyed with the raw public key", bearer(f.sign(t, jwt.SigningMethodHS512, []byte(f.pub), nil, base))},
		{"ES256 from a foreign key, copied kid", bearer(f.sign(t, jwt.SigningMethodES256, ecKey, nil, base))},
		{"foreign Ed25519 key, copied kid", bearer(f.sign(t, jwt.SigningMethodEdDSA, foreignKey, nil, base))},
		{"foreign Ed25519 key, embedded jwk", bearer(f.sign(t, jwt.SigningMethodEdDSA, foreignKey, map[string]any{"kid": nil,
			"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(foreignPub)}}, base))},
		{"foreign key, kid path traversal", bearer(f.sign(t, jwt.SigningMethodEdDSA, foreignKey,
			map[string]any{"kid": "../../" + token.SigningSubdir + "/current"}, base))},
		{"payload edited after signing: scopes escalated", bearer(parts[0] + "." + b64json(escalated) + "." + parts[2])},
		{"payload edited after signing: other client", bearer(parts[0] + "." + b64json(switched) + "." + parts[2])},
		{"signature of another token", bearer(parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2])},
		{"expired", bearer(f.good(t, with(base, map[string]any{"iat": now.Add(-10 * time.Minute).Unix(),
			"exp": now.Add(-2 * time.Minute).Unix()})))},
		{"iat in the future", bearer(f.good(t, with(base, map[string]any{"iat": now.Add(10 * time.Minute).Unix(),
			"exp": now.Add(14 * time.Minute).Unix()})))},
		{"nbf in the future", bearer(f.good(t, with(base, map[string]any{"nbf": now.Add(5 * time.Minute).Unix()})))},
		{"no exp", bearer(f.good(t, with(base, map[string]any{"exp": nil})))},
		{"lifetime over 15 minutes", bearer(f.good(t, with(base, map[string]any{"exp": now.Add(2 * time.Hour).Unix()})))},
		{"wrong iss", bearer(f.good(t, with(base, map[string]any{"iss": "http://evil.test"})))},
		{"no iss", bearer(f.good(t, with(base, map[string]any{"iss": nil})))},
		{"wrong aud", bearer(f.good(t, with(base, map[string]any{"aud": "http://evil.test/v1"})))},
		{"aud is the issuer, not the API", bearer(f.good(t, with(base, map[string]any{"aud": f.issuer})))},
		{"no aud", bearer(f.good(t, with(base, map[string]any{"aud": nil})))},
		{"wrong typ", bearer(f.sign(t, jwt.SigningMethodEdDSA, f.key, map[string]any{"typ": "JWT"}, base))},
		{"no typ", bearer(f.sign(t, jwt.SigningMethodEdDSA, f.key, map[string]any{"typ": nil}, base))},
		{"unknown crit header", bearer(f.sign(t, jwt.SigningMethodEdDSA, f.key, map[string]any{"crit": []string{"exp"}}, base))},
		{"sub differs from client_id", bearer(f.good(t, with(base, map[string]any{"sub": "cli_someoneelse"})))},
		{"no jti", bearer(f.good(t, with(base, map[string]any{"jti": nil})))},
		{"unknown client, real key", bearer(f.good(t, with(base, map[string]any{"sub": "cli_nobody", "client_id": "cli_nobody"})))},
		{"token over 4 KB", bearer(f.good(t, with(base, map[string]any{"pad": strings.Repeat("x", 5000)})))},
		{"100 KB Authorization header", "Bearer " + strings.Repeat("A", 100<<10)},
	}
}

// checkUnauthorized asserts a 401 in the JSON error shape with a
// WWW-Authenticate challenge that reveals nothing of secret.
func checkUnauthorized(t *testing.T, a answer, secrets ...string) {
	t.Helper()
	if a.status != 401 {
		t.Errorf("status %d, want 401: %.300s", a.status, a.body)
		return
	}
	if msg := checkJSONError(a); msg != "" {
		t.Errorf("error shape: %s: %.300s", msg, a.body)
	}
	if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", a.header.Get("WWW-Authenticate"))
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(a.body, []byte(s)) {
			t.Errorf("the answer reveals %q: %s", s, a.body)
		}
	}
}

// TestJWTAttacks runs every forged or unacceptable credential against the
// real server, on a retailer route and on a compliance route; a token
// forged with the real key and valid claims (the control) is accepted, so
// each refusal is due to the one thing the attack changed.
func TestJWTAttacks(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}})
	officer := h.partnerWith(token.PartnerSpec{Name: "Compliance desk", Kind: broker.KindCompliance,
		Scopes: []string{"audit:read"}})
	orderID := h.purchase("919811150001")
	f := newForger(h)

	for _, target := range []struct {
		name, path, client string
		scopes             []string
	}{
		{"retailer order", "/v1/orders/" + orderID, retail.ID, []string{"orders:read", "orders:write"}},
		{"audit entries", "/v1/audit/entries", officer.ID, []string{"audit:read"}},
	} {
		t.Run(target.name, func(t *testing.T) {
			control := f.good(t, f.claims(target.client, target.scopes...))
			if a := h.getWith(target.path, "Bearer "+control); a.status != 200 {
				t.Fatalf("control: a token forged with the real key and valid claims got %d, want 200: %.300s", a.status, a.body)
			}
			for _, at := range jwtAttacks(t, f, target.client, target.scopes) {
				t.Run(at.name, func(t *testing.T) {
					a := h.getWith(target.path, at.authz)
					checkUnauthorized(t, a, orderID, at.authz[min(len(at.authz), 7):])
				})
			}
		})
	}
}

// TestAuthorizationOutcomes covers the answers other than 401: a missing
// scope, an ungranted scope at the token endpoint, another partner's
// order, and a disabled partner's still-valid token.
func TestAuthorizationOutcomes(t *testing.T) {
	h := newHarness(t)
	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}})
	readOnly := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart reader", Kind: broker.KindRetailer, Store: "998",
		Scopes: []string{"orders:read"}})
	other := h.partnerWith(token.PartnerSpec{Name: "Other Mart", Kind: broker.KindRetailer, Store: "999",
		Scopes: []string{"orders:read", "orders:write"}})
	logi := h.partnerWith(token.PartnerSpec{Name: "Couriers", Kind: broker.KindLogistics,
		Scopes: []string{"delivery:read", "delivery:message"}})
	orderID := h.purchase("919811150002")

	t.Run("valid token without the scope is 403", func(t *testing.T) {
		for _, c := range []struct{ name, method, path, bearer, body string }{
			{"logistics lists orders", "GET", "/v1/orders", logi.Bearer, ""},
			{"logistics reads the retailer view", "GET", "/v1/orders/" + orderID, logi.Bearer, ""},
			{"read-only retailer updates a status", "POST", "/v1/orders/" + orderID + "/status", readOnly.Bearer, `{"status":"accepted"}`},
			{"retailer reads the audit log", "GET", "/v1/audit/entries", retail.Bearer, ""},
			{"retailer asks for data", "POST", "/v1/data-requests", retail.Bearer, `{"subject":"cus_x","purpose":"analytics","fields":["order.total"]}`},
			{"retailer erases a shopper", "POST", "/v1/subjects/erase", retail.Bearer, `{"wa_id":"919811150002","confirm":true}`},
		} {
			t.Run(c.name, func(t *testing.T) {
				var rd io.Reader
				if c.body != "" {
					rd = strings.NewReader(c.body)
				}
				req, _ := http.NewRequest(c.method, h.base+c.path, rd)
				req.Header.Set("Authorization", "Bearer "+c.bearer)
				req.Header.Set("Content-Type", "application/json")
				a := send(t, req)
				if a.status != 403 {
					t.Fatalf("status %d, want 403: %s", a.status, a.body)
				}
				if msg := checkJSONError(a); msg != "" {
					t.Errorf("error shape: %s: %s", msg, a.body)
				}
				if !strings.Contains(a.header.Get("WWW-Authenticate"), "insufficient_scope") {
					t.Errorf("WWW-Authenticate %q lacks insufficient_scope", a.header.Get("WWW-Authenticate"))
				}
			})
		}
		if h.orderStatus(orderID) != commerce.StatusPlaced {
			t.Errorf("a refused status update changed the order to %s", h.orderStatus(orderID))
		}
	})

	t.Run("token endpoint refuses an ungranted scope", func(t *testing.T) {
		for _, scope := range []string{"audit:read", "orders:read subjects:write", "admin", "orders:read\taudit:read"} {
			a := h.tokenRequest(readOnly.ID, readOnly.Secret, scope)
			var e struct {
				Error string `json:"error"`
			}
			if a.status != 400 || json.Unmarshal(a.body, &e) != nil || e.Error != "invalid_scope" {
				t.Errorf("scope %q: %d %s, want 400 invalid_scope", scope, a.status, a.body)
				continue
			}
			if msg := checkOAuthError(a); msg != "" {
				t.Errorf("scope %q: %s", scope, msg)
			}
		}
		// The control: a granted scope is issued.
		if a := h.tokenRequest(readOnly.ID, readOnly.Secret, "orders:read"); a.status != 200 {
			t.Errorf("granted scope refused: %d %s", a.status, a.body)
		}
	})

	t.Run("another partner's order is 404", func(t *testing.T) {
		for _, c := range []struct{ name, method, path, body string }{
			{"read", "GET", "/v1/orders/" + orderID, ""},
			{"status", "POST", "/v1/orders/" + orderID + "/status", `{"status":"accepted"}`},
		} {
			var rd io.Reader
			if c.body != "" {
				rd = strings.NewReader(c.body)
			}
			req, _ := http.NewRequest(c.method, h.base+c.path, rd)
			req.Header.Set("Authorization", "Bearer "+other.Bearer)
			req.Header.Set("Content-Type", "application/json")
			a := send(t, req)
			if a.status != 404 {
				t.Errorf("%s: status %d, want 404: %s", c.name, a.status, a.body)
				continue
			}
			if msg := checkJSONError(a); msg != "" {
				t.Errorf("%s: error shape: %s: %s", c.name, msg, a.body)
			}
			// Same answer as an order that does not exist: no existence leak.
			b := h.getWith("/v1/orders/ord_aaaaaaaaaaaaaaaaaaaaaaaaaa", "Bearer "+other.Bearer)
			if c.method == "GET" && !bytes.Equal(a.body, b.body) {
				t.Errorf("another's order answers %s, a missing one %s", a.body, b.body)
			}
		}
		if a := h.getWith("/v1/orders/"+orderID, "Bearer "+retail.Bearer); a.status != 200 {
			t.Errorf("control: the owner got %d", a.status)
		}
		if h.orderStatus(orderID) != commerce.StatusPlaced {
			t.Errorf("another partner changed the order to %s", h.orderStatus(orderID))
		}
	})

	t.Run("disabled partner's valid token is 401", func(t *testing.T) {
		if a := h.getWith("/v1/orders/"+orderID, "Bearer "+retail.Bearer); a.status != 200 {
			t.Fatalf("before disabling: %d", a.status)
		}
		if err := h.m.Sys.DB.Partners().SetPartnerDisabled(context.Background(), retail.ID, true); err != nil {
			t.Fatal(err)
		}
		// The broker caches partners for at most a couple of seconds.
		deadline := time.Now().Add(4 * time.Second)
		var a answer
		for {
			a = h.getWith("/v1/orders/"+orderID, "Bearer "+retail.Bearer)
			if a.status != 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		checkUnauthorized(t, a, orderID)
		if a := h.tokenRequest(retail.ID, retail.Secret, ""); a.status != 401 {
			t.Errorf("a disabled partner got a new token: %d", a.status)
		} else if msg := checkOAuthError(a); msg != "" {
			t.Errorf("token endpoint: %s", msg)
		}
	})

	t.Run("token minted before disable stays 401 after enable", func(t *testing.T) {
		if err := h.m.Sys.DB.Partners().SetPartnerDisabled(context.Background(), retail.ID, false); err != nil {
			t.Fatal(err)
		}
		// Past the partner cache's lifetime, the enable is seen...
		time.Sleep(2500 * time.Millisecond)
		a := h.tokenRequest(retail.ID, retail.Secret, "")
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if a.status != 200 || json.Unmarshal(a.body, &tok) != nil {
			t.Fatalf("token after enable: %d %s", a.status, a.body)
		}
		if a := h.getWith("/v1/orders/"+orderID, "Bearer "+tok.AccessToken); a.status != 200 {
			t.Errorf("a token minted after enable: %d", a.status)
		}
		// ...and the old token is still dead.
		checkUnauthorized(t, h.getWith("/v1/orders/"+orderID, "Bearer "+retail.Bearer), orderID)
	})
}

// TestPartnerRateLimit runs the broker's HTTP application with a low
// per-partner limit (brokerd builds it with the defaults, so the test
// builds a second application over the same dependencies) and checks the
// 429 answer and that the limit is per partner.
func TestPartnerRateLimit(t *testing.T) {
	var deps httpapi.Deps
	h := newHarnessWith(t, harnessOpts{extra: func(d *httpapi.Deps) { deps = *d }})
	a := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}})
	b := h.partnerWith(token.PartnerSpec{Name: "Other Mart", Kind: broker.KindRetailer, Store: "999", Scopes: []string{"orders:read"}})

	deps.UI = nil // the dashboard is mounted once, on brokerd's own application
	const burst = 3
	srv := httpapi.New(httpapi.Config{Issuer: h.m.Config.Server.Issuer, PartnerRate: 0.2, PartnerBurst: burst}, deps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.App.Listener(ln) //nolint:errcheck
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	limited := &harness{t: t, m: h.m, base: "http://" + ln.Addr().String(), wa: h.wa, seen: map[string]int{}}

	for i := range burst {
		if r := limited.getWith("/v1/orders", "Bearer "+a.Bearer); r.status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := limited.getWith("/v1/orders", "Bearer "+a.Bearer)
	if r.status != 429 {
		t.Fatalf("request over the burst: %d, want 429: %s", r.status, r.body)
	}
	if msg := checkJSONError(r); msg != "" {
		t.Errorf("error shape: %s: %s", msg, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 10 {
		t.Errorf("Retry-After %q, want whole seconds until the next token (1 to 10 at 0.2/s)", r.header.Get("Retry-After"))
	}
	if r := limited.getWith("/v1/orders", "Bearer "+b.Bearer); r.status != 200 {
		t.Errorf("another partner is limited too: %d", r.status)
	}
	// Bad tokens are refused before the limiter: they cannot spend a
	// partner's budget.
	if r := limited.getWith("/v1/orders", "Bearer garbage"); r.status != 401 {
		t.Errorf("garbage token: %d, want 401", r.status)
	}
	// The main server's default limit is untouched by this.
	if r := h.getWith("/v1/orders", "Bearer "+a.Bearer); r.status != 200 {
		t.Errorf("brokerd's own server: %d", r.status)
	}
}
