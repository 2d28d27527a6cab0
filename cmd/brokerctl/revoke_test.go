package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// ctlEnv is the environment of a brokerctl run against a fresh database.
func ctlEnv(t *testing.T) func(string) string {
	t.Helper()
	env := map[string]string{"DATABASE_URL": pgtest.NewURL(t), "BROKER_KEY_DIR": t.TempDir()}
	return func(k string) string { return env[k] }
}

// mustCtl runs brokerctl and fails the test unless it exits 0.
func mustCtl(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb, getenv); code != 0 {
		t.Fatalf("brokerctl %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

// TestPartnerRevocation: a token minted before `partner disable` stays
// dead after `partner enable`; `rotate-secret` alone leaves issued tokens
// valid (documented), `rotate-secret --revoke-tokens` kills them at once.
// The broker's own system checks the tokens, as brokerd would.
func TestPartnerRevocation(t *testing.T) {
	getenv := ctlEnv(t)
	mustCtl(t, getenv, "migrate")
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := mustCtl(t, getenv, "partner", "create", "--name", "Fresh Mart", "--kind", "retailer", "--scopes", "orders:read", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("partner create: %v: %s", err, out)
	}

	cfg := config.FromEnv(getenv)
	cfg.SetDefaults()
	ctx := context.Background()
	sys, err := wire.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	// One long-lived authenticator, as in brokerd, whose partner cache
	// must not keep a revoked token alive; each check also runs through
	// a fresh one, which has no cache.
	cached := &token.Authenticator{Issuer: sys.Issuer, Store: sys.DB.Partners()}
	secret := created.ClientSecret
	mint := func() string {
		t.Helper()
		res, oe := sys.Tokens.Token(ctx, token.TokenRequest{GrantType: token.GrantClientCredentials,
			FormClientID: created.ClientID, FormClientSecret: secret})
		if oe != nil {
			t.Fatalf("token: %d %s", oe.Status, oe.Code)
		}
		return res.AccessToken
	}
	valid := func(tok string) bool {
		t.Helper()
		_, _, err := (&token.Authenticator{Issuer: sys.Issuer, Store: sys.DB.Partners()}).Authenticate(ctx, tok)
		if err != nil && broker.ErrorCode(err) != broker.EUnauthorized {
			t.Fatalf("authenticate: %v", err)
		}
		return err == nil
	}
	// refusedByCache waits out the cache's lifetime for tok to be refused.
	refusedByCache := func(tok string) bool {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, _, err := cached.Authenticate(ctx, tok); err != nil {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	before := mint()
	if !valid(before) {
		t.Fatal("a fresh token is refused")
	}
	if _, _, err := cached.Authenticate(ctx, before); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, getenv, "partner", "disable", created.ClientID)
	mustCtl(t, getenv, "partner", "enable", created.ClientID)
	if valid(before) {
		t.Error("a token minted before partner disable works again after partner enable")
	}
	if !refusedByCache(before) {
		t.Error("the authenticator's cache keeps a token minted before disable alive")
	}
	after := mint()
	if !valid(after) {
		t.Error("a token minted after partner enable is refused")
	}

	var rotated struct {
		ClientSecret string `json:"client_secret"`
	}
	json.Unmarshal([]byte(mustCtl(t, getenv, "partner", "rotate-secret", created.ClientID, "--json")), &rotated) //nolint:errcheck
	secret = rotated.ClientSecret
	if !valid(after) {
		t.Error("rotate-secret without --revoke-tokens killed an issued token")
	}
	if _, _, err := cached.Authenticate(ctx, after); err != nil {
		t.Fatal(err)
	}
	out = mustCtl(t, getenv, "partner", "rotate-secret", created.ClientID, "--revoke-tokens", "--json")
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated.ClientSecret == "" || rotated.ClientSecret == secret {
		t.Fatalf("rotate-secret --revoke-tokens: %v: %s", err, out)
	}
	secret = rotated.ClientSecret
	if valid(after) {
		t.Error("a token minted before rotate-secret --revoke-tokens still works")
	}
	if !refusedByCache(after) {
		t.Error("the authenticator's cache keeps a revoked token alive")
	}
	// A token got with the new secret in the very second of the
	// revocation still works: iat has whole seconds.
	if fresh := mint(); !valid(fresh) {
		t.Error("a token minted with the new secret after the revocation is refused")
	}
}
