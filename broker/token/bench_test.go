package token_test

import (
	"context"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

var benchScopes = []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite}

func BenchmarkIssue(b *testing.B) {
	iss, _ := newIssuer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue("cli_partner", benchScopes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the full check a partner request pays on a cache
// miss: parse, Ed25519 verification, claims.
func BenchmarkVerify(b *testing.B) {
	iss, _ := newIssuer(b)
	raw, _, _ := iss.Issue("cli_partner", benchScopes)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.VerifyUncached(iss, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached is what a repeated token costs: SHA-256 of the
// token, a map lookup and a copy of the claims.
func BenchmarkVerifyCached(b *testing.B) {
	iss, _ := newIssuer(b)
	raw, _, _ := iss.Issue("cli_partner", benchScopes)
	if _, err := iss.Verify(raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenEndpoint is a token request whose secret check is cached
// (a partner asking again): store lookup, scopes, signing.
func BenchmarkTokenEndpoint(b *testing.B) {
	f := newServerFixture(b)
	req := basic("cli_retailer", f.secret["cli_retailer"])
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, oe := f.srv.Token(ctx, req); oe != nil {
			b.Fatal(oe.Description)
		}
	}
}

// BenchmarkCheckSecret is one argon2id check with the OWASP parameters:
// what an uncached token request pays.
func BenchmarkCheckSecret(b *testing.B) {
	secret := token.NewSecret()
	phc, _ := token.HashSecret(secret)
	b.ReportAllocs()
	for b.Loop() {
		if !token.CheckSecret(phc, secret) {
			b.Fatal("mismatch")
		}
	}
}
