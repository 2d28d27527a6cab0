package token_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

type serverFixture struct {
	srv    *token.Server
	issuer *token.Issuer
	store  *memStore
	secret map[string]string // client id → secret
}

func newServerFixture(t testing.TB) *serverFixture {
	t.Helper()
	iss, _ := newIssuer(t)
	f := &serverFixture{issuer: iss, store: &memStore{}, secret: map[string]string{}}
	add := func(id string, secret string, disabled bool, scopes ...string) {
		h, err := token.HashSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		f.store.partners = append(f.store.partners, broker.Partner{ID: id, Name: id, Kind: broker.KindRetailer,
			Scopes: scopes, Disabled: disabled, SecretHash: h})
		f.secret[id] = secret
	}
	add("cli_retailer", token.NewSecret(), false, broker.ScopeOrdersRead, broker.ScopeOrdersWrite)
	add("cli_disabled", token.NewSecret(), true, broker.ScopeOrdersRead)
	// Characters that Basic credentials must form-urlencode (RFC 6749 §2.3.1).
	add("cli:odd id", "a+b/c%d:e", false, broker.ScopeDataRequest)
	f.srv = token.NewServer(f.store, iss)
	return f
}

func basic(id, secret string) token.TokenRequest {
	return token.TokenRequest{GrantType: "client_credentials", HasBasic: true,
		BasicUser: url.QueryEscape(id), BasicPass: url.QueryEscape(secret)}
}

func form(id, secret string) token.TokenRequest {
	return token.TokenRequest{GrantType: "client_credentials", FormClientID: id, FormClientSecret: secret}
}

func TestTokenEndpoint(t *testing.T) {
	f := newServerFixture(t)
	retailer := f.secret["cli_retailer"]
	mod := func(r token.TokenRequest, fn func(*token.TokenRequest)) token.TokenRequest { fn(&r); return r }

	tests := []struct {
		name      string
		req       token.TokenRequest
		client    string // on success: the token's client
		scope     string // on success: the granted scope
		status    int    // on error
		code      string
		challenge bool // WWW-Authenticate expected
	}{
		{name: "basic", req: basic("cli_retailer", retailer), client: "cli_retailer", scope: "orders:read orders:write"},
		{name: "form", req: form("cli_retailer", retailer), client: "cli_retailer", scope: "orders:read orders:write"},
		{name: "basic with encoded characters", req: basic("cli:odd id", "a+b/c%d:e"), client: "cli:odd id", scope: "data:request"},
		{name: "basic plus the same client_id in the form", req: mod(basic("cli_retailer", retailer),
			func(r *token.TokenRequest) { r.FormClientID = "cli_retailer" }), client: "cli_retailer", scope: "orders:read orders:write"},
		{name: "scope subset", req: mod(basic("cli_retailer", retailer), func(r *token.TokenRequest) { r.Scope = "orders:read" }),
			client: "cli_retailer", scope: "orders:read"},
		{name: "scope repeated and reordered", req: mod(basic("cli_retailer", retailer),
			func(r *token.TokenRequest) { r.Scope = " orders:write  orders:read orders:write" }), client: "cli_retailer", scope: "orders:read orders:write"},

		{name: "basic and form credentials", req: mod(basic("cli_retailer", retailer),
			func(r *token.TokenRequest) { r.FormClientID, r.FormClientSecret = "cli_retailer", retailer }),
			status: 400, code: "invalid_request"},
		{name: "basic and another form client_id", req: mod(basic("cli_retailer", retailer),
			func(r *token.TokenRequest) { r.FormClientID = "cli_disabled" }), status: 400, code: "invalid_request"},
		{name: "duplicate parameters", req: mod(form("cli_retailer", retailer), func(r *token.TokenRequest) { r.DuplicateParams = true }),
			status: 400, code: "invalid_request"},
		{name: "missing grant_type", req: mod(form("cli_retailer", retailer), func(r *token.TokenRequest) { r.GrantType = "" }),
			status: 400, code: "invalid_request"},
		{name: "wrong grant type", req: mod(form("cli_retailer", retailer), func(r *token.TokenRequest) { r.GrantType = "password" }),
			status: 400, code: "unsupported_grant_type"},
		{name: "malformed basic encoding", req: mod(basic("cli_retailer", retailer), func(r *token.TokenRequest) { r.BasicPass = "%zz" }),
			status: 400, code: "invalid_request"},
		{name: "no credentials", req: token.TokenRequest{GrantType: "client_credentials"}, status: 401, code: "invalid_client", challenge: true},
		{name: "form id without secret", req: form("cli_retailer", ""), status: 401, code: "invalid_client", challenge: true},
		{name: "malformed basic header", req: token.TokenRequest{GrantType: "client_credentials", HasBasic: true},
			status: 401, code: "invalid_client", challenge: true},
		{name: "wrong secret, basic", req: basic("cli_retailer", token.NewSecret()), status: 401, code: "invalid_client", challenge: true},
		{name: "wrong secret, form", req: form("cli_retailer", token.NewSecret()), status: 401, code: "invalid_client", challenge: true},
		{name: "secret of another client", req: basic("cli_retailer", f.secret["cli_disabled"]), status: 401, code: "invalid_client", challenge: true},
		{name: "unencoded basic with special characters", req: mod(basic("cli:odd id", "a+b/c%d:e"),
			func(r *token.TokenRequest) { r.BasicPass = "a+b/c%d:e" }), status: 400, code: "invalid_request"},
		{name: "unknown client", req: basic("cli_nobody", retailer), status: 401, code: "invalid_client", challenge: true},
		{name: "over-long client id", req: basic(strings.Repeat("c", 1000), retailer), status: 401, code: "invalid_client", challenge: true},
		{name: "disabled partner", req: basic("cli_disabled", f.secret["cli_disabled"]), status: 401, code: "invalid_client", challenge: true},
		{name: "scope not granted", req: mod(basic("cli_retailer", retailer), func(r *token.TokenRequest) { r.Scope = "orders:read audit:read" }),
			status: 400, code: "invalid_scope"},
		{name: "unknown scope", req: mod(basic("cli_retailer", retailer), func(r *token.TokenRequest) { r.Scope = "orders:read admin" }),
			status: 400, code: "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, oe := f.srv.Token(context.Background(), tt.req)
			if tt.code != "" {
				if oe == nil {
					t.Fatalf("Token succeeded (scope %q), want %s", resp.Scope, tt.code)
				}
				if oe.Status != tt.status || oe.Code != tt.code || (oe.WWWAuthenticate != "") != tt.challenge {
					t.Fatalf("Token = %d %s (WWW-Authenticate %q), want %d %s (challenge %v)",
						oe.Status, oe.Code, oe.WWWAuthenticate, tt.status, tt.code, tt.challenge)
				}
				if tt.challenge && oe.WWWAuthenticate != `Basic realm="sieve"` {
					t.Errorf("WWW-Authenticate = %q", oe.WWWAuthenticate)
				}
				checkDescription(t, oe.Description)
				if resp != (token.TokenResponse{}) {
					t.Errorf("an error came with a response: %+v", resp)
				}
				return
			}
			if oe != nil {
				t.Fatalf("Token = %d %s: %s", oe.Status, oe.Code, oe.Description)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != 600 || resp.Scope != tt.scope {
				t.Errorf("response = %+v, want Bearer, 600 s, scope %q", resp, tt.scope)
			}
			c, err := f.issuer.Verify(resp.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if c.ClientID != tt.client || strings.Join(c.Scopes, " ") != tt.scope {
				t.Errorf("token claims = %+v, want client %q scope %q", c, tt.client, tt.scope)
			}
		})
	}
}

// checkDescription holds error_description to RFC 6749 §5.2's character
// set (%x20-21 / %x23-5B / %x5D-7E): no quotes, no backslashes.
func checkDescription(t *testing.T, d string) {
	t.Helper()
	if d == "" {
		t.Error("empty error_description")
	}
	for _, r := range d {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Errorf("error_description %q has %q, outside RFC 6749's set", d, r)
		}
	}
}

func TestTokenStoreDown(t *testing.T) {
	f := newServerFixture(t)
	for _, tt := range []struct {
		err    error
		status int
		code   string
	}{
		{broker.Errorf(broker.EUnavailable, "database unavailable"), 503, "temporarily_unavailable"},
		{context.DeadlineExceeded, 500, "server_error"},
	} {
		f.store.err = tt.err
		_, oe := f.srv.Token(context.Background(), basic("cli_retailer", f.secret["cli_retailer"]))
		if oe == nil || oe.Status != tt.status || oe.Code != tt.code || oe.Err == nil {
			t.Errorf("store error %v: Token = %+v, want %d %s with the cause kept for the log", tt.err, oe, tt.status, tt.code)
		}
	}
}

func TestTokenAfterSecretRotation(t *testing.T) {
	f := newServerFixture(t)
	ctx := context.Background()
	old := f.secret["cli_retailer"]
	// Succeeds twice: the second check comes from the cache of successes.
	for range 2 {
		if _, oe := f.srv.Token(ctx, basic("cli_retailer", old)); oe != nil {
			t.Fatalf("Token = %+v", oe)
		}
	}
	// A direct store write (no vault needed for this check).
	newSecret := token.NewSecret()
	h, _ := token.HashSecret(newSecret)
	if err := f.store.SetPartnerSecret(ctx, "cli_retailer", h, nil); err != nil {
		t.Fatal(err)
	}
	if _, oe := f.srv.Token(ctx, basic("cli_retailer", old)); oe == nil || oe.Code != "invalid_client" {
		t.Fatalf("old secret after rotation: Token = %+v, want invalid_client", oe)
	}
	if _, oe := f.srv.Token(ctx, basic("cli_retailer", newSecret)); oe != nil {
		t.Fatalf("new secret: Token = %+v", oe)
	}
	// Disabling takes effect even for a cached secret check.
	if err := f.store.SetPartnerDisabled(ctx, "cli_retailer", true); err != nil {
		t.Fatal(err)
	}
	if _, oe := f.srv.Token(ctx, basic("cli_retailer", newSecret)); oe == nil || oe.Code != "invalid_client" {
		t.Fatalf("disabled after a cached check: Token = %+v, want invalid_client", oe)
	}
}

func TestTokenWaitsForArgon2Slot(t *testing.T) {
	f := newServerFixture(t)
	release := token.FillArgonPool(f.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, oe := f.srv.Token(ctx, basic("cli_retailer", f.secret["cli_retailer"]))
	if oe == nil || oe.Status != 503 || oe.Code != "temporarily_unavailable" {
		t.Fatalf("Token with every argon2 slot busy until the deadline = %+v, want 503 temporarily_unavailable", oe)
	}
	release()
	if _, oe := f.srv.Token(context.Background(), basic("cli_retailer", f.secret["cli_retailer"])); oe != nil {
		t.Fatalf("Token once a slot is free = %+v", oe)
	}
}

func TestParseBasicAuth(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header, user, pass string
		ok                 bool
	}{
		{"Basic " + enc("cli_a:s3cret"), "cli_a", "s3cret", true},
		{"basic " + enc("cli_a:s3:cret"), "cli_a", "s3:cret", true},
		{"BASIC  " + enc("cli%3Aa:x"), "cli%3Aa", "x", true},
		{"Basic " + enc("no-colon"), "", "", false},
		{"Basic !!!", "", "", false},
		{"Bearer " + enc("a:b"), "", "", false},
		{"Basic", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		user, pass, ok := token.ParseBasicAuth(tt.header)
		if user != tt.user || pass != tt.pass || ok != tt.ok {
			t.Errorf("ParseBasicAuth(%q) = %q, %q, %v; want %q, %q, %v", tt.header, user, pass, ok, tt.user, tt.pass, tt.ok)
		}
	}
}

func TestTokenRequestScopeDefaultIsSorted(t *testing.T) {
	f := newServerFixture(t)
	f.store.partners[0].Scopes = []string{broker.ScopeOrdersWrite, broker.ScopeDeliveryRead, broker.ScopeOrdersWrite}
	resp, oe := f.srv.Token(context.Background(), basic("cli_retailer", f.secret["cli_retailer"]))
	if oe != nil {
		t.Fatal(oe.Description)
	}
	if got := strings.Fields(resp.Scope); !slices.Equal(got, []string{"delivery:read", "orders:write"}) {
		t.Fatalf("scope = %q, want the granted scopes sorted and deduplicated", resp.Scope)
	}
}
