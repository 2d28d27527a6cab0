package token_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	iss, _ := newIssuer(t)
	tok, _, err := iss.Issue("cli_partner", []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite})
	if err != nil {
		t.Fatal(err)
	}
	partner := broker.Partner{ID: "cli_partner", Name: "FreshMart", Kind: broker.KindRetailer,
		Scopes: []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite}}
	tests := []struct {
		name       string
		bearer     string
		partner    func(*broker.Partner) // nil: the partner is not in the store
		storeErr   error
		wantCode   string
		wantScopes []string
	}{
		{name: "valid", bearer: tok, partner: func(*broker.Partner) {},
			wantScopes: []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite}},
		{name: "scopes narrowed to what the partner holds now", bearer: tok,
			partner:    func(p *broker.Partner) { p.Scopes = []string{broker.ScopeOrdersRead} },
			wantScopes: []string{broker.ScopeOrdersRead}},
		{name: "garbage token", bearer: "not-a-jwt", partner: func(*broker.Partner) {}, wantCode: broker.EUnauthorized},
		{name: "empty token", bearer: "", partner: func(*broker.Partner) {}, wantCode: broker.EUnauthorized},
		{name: "unknown partner", bearer: tok, wantCode: broker.EUnauthorized},
		{name: "disabled partner", bearer: tok, partner: func(p *broker.Partner) { p.Disabled = true },
			wantCode: broker.EUnauthorized},
		{name: "token issued before the partner's not-before", bearer: tok,
			partner: func(p *broker.Partner) { p.NotBefore = t0.Add(time.Second) }, wantCode: broker.EUnauthorized},
		{name: "token issued at the not-before", bearer: tok,
			partner:    func(p *broker.Partner) { p.NotBefore = t0 },
			wantScopes: []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite}},
		{name: "store away is not a refusal", bearer: tok, partner: func(*broker.Partner) {},
			storeErr: broker.Errorf(broker.EUnavailable, "database down"), wantCode: broker.EUnavailable},
		{name: "store failing otherwise is a refusal", bearer: tok, partner: func(*broker.Partner) {},
			storeErr: errors.New("boom"), wantCode: broker.EUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{err: tt.storeErr}
			if tt.partner != nil {
				p := partner
				p.Scopes = slices.Clone(partner.Scopes)
				tt.partner(&p)
				store.partners = []broker.Partner{p}
			}
			a := &token.Authenticator{Issuer: iss, Store: store}
			got, scopes, err := a.Authenticate(ctx, tt.bearer)
			if tt.wantCode != "" {
				if code := broker.ErrorCode(err); code != tt.wantCode {
					t.Fatalf("Authenticate: %v (code %q), want code %q", err, code, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if got.ID != partner.ID || !slices.Equal(scopes, tt.wantScopes) {
				t.Fatalf("Authenticate = %s %v, want %s %v", got.ID, scopes, partner.ID, tt.wantScopes)
			}
		})
	}
}

// A disable bites in every process within the cache's lifetime: until then
// the cached partner answers, after it the store is asked again.
func TestAuthenticateCacheExpires(t *testing.T) {
	ctx := context.Background()
	iss, _ := newIssuer(t)
	tok, _, err := iss.Issue("cli_partner", []string{broker.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{partners: []broker.Partner{{ID: "cli_partner", Kind: broker.KindRetailer,
		Scopes: []string{broker.ScopeOrdersRead}}}}
	now := time.Now()
	a := &token.Authenticator{Issuer: iss, Store: store}
	token.SetAuthNow(a, func() time.Time { return now })
	if _, _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := store.SetPartnerDisabled(ctx, "cli_partner", true); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if _, _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatalf("within the cache lifetime: %v, want the cached partner", err)
	}
	now = now.Add(2 * time.Second)
	if _, _, err := a.Authenticate(ctx, tok); broker.ErrorCode(err) != broker.EUnauthorized {
		t.Fatalf("after the cache lifetime: %v, want EUnauthorized", err)
	}
}
