package token_test

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

func validSpec() token.PartnerSpec {
	return token.PartnerSpec{Name: "FreshMart", Kind: broker.KindRetailer,
		Scopes:     []string{broker.ScopeOrdersWrite, broker.ScopeOrdersRead, broker.ScopeOrdersRead},
		Store:      "106540352242922",
		WebhookURL: "https://freshmart.example/sieve/hooks?v=1"}
}

func TestCreatePartner(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	id, secret, err := token.CreatePartner(ctx, store, fakeVault{}, validSpec())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^cli_[a-z0-9]+$`).MatchString(id) || len(secret) != 43 {
		t.Fatalf("client id %q / secret of %d characters", id, len(secret))
	}
	p, err := store.GetPartner(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "FreshMart" || p.Kind != broker.KindRetailer || p.Store != "106540352242922" ||
		p.WebhookURL != "https://freshmart.example/sieve/hooks?v=1" || p.Disabled || p.CreatedAt.IsZero() ||
		!slices.Equal(p.Scopes, []string{"orders:read", "orders:write"}) {
		t.Errorf("stored partner = %+v", p)
	}
	if !token.CheckSecret(p.SecretHash, secret) {
		t.Error("stored hash does not match the returned secret")
	}
	if strings.Contains(p.SecretHash, secret) || bytes.Contains(p.SealedSecret, []byte(secret)) {
		t.Error("the secret is stored in the clear")
	}
	ws, err := token.WebhookSecret(ctx, store, fakeVault{}, id)
	if err != nil || string(ws) != secret {
		t.Fatalf("WebhookSecret = %q, %v; want the client secret", ws, err)
	}

	// The secret works at the token endpoint.
	iss, _ := newIssuer(t)
	resp, oe := token.NewServer(store, iss).Token(ctx, basic(id, secret))
	if oe != nil || resp.Scope != "orders:read orders:write" {
		t.Fatalf("Token with the new credentials = %+v, %+v", resp, oe)
	}
}

func TestPartnerSpecValidate(t *testing.T) {
	mod := func(fn func(*token.PartnerSpec)) token.PartnerSpec { s := validSpec(); fn(&s); return s }
	tests := []struct {
		name string
		spec token.PartnerSpec
		want []string // fragments of the error; nil means valid
	}{
		{"valid", validSpec(), nil},
		{"minimal logistics", token.PartnerSpec{Name: "Quick", Kind: broker.KindLogistics, Scopes: []string{broker.ScopeDeliveryRead}}, nil},
		{"http webhook", mod(func(s *token.PartnerSpec) { s.WebhookURL = "http://127.0.0.1:9000/hook" }), nil},
		{"empty name", mod(func(s *token.PartnerSpec) { s.Name = "  " }), []string{"name is required"}},
		{"control characters in name", mod(func(s *token.PartnerSpec) { s.Name = "a\nb" }), []string{"name must be printable"}},
		{"long name", mod(func(s *token.PartnerSpec) { s.Name = strings.Repeat("n", 201) }), []string{"name must be printable"}},
		{"bad kind", mod(func(s *token.PartnerSpec) { s.Kind = broker.KindOfficer }), []string{"kind must be one of"}},
		{"no scopes", mod(func(s *token.PartnerSpec) { s.Scopes = nil }), []string{"at least one scope"}},
		{"unknown scope", mod(func(s *token.PartnerSpec) { s.Scopes = []string{"orders:read", "root"} }), []string{"unknown scope"}},
		{"store on logistics", mod(func(s *token.PartnerSpec) { s.Kind = broker.KindLogistics }), []string{"only a retailer"}},
		{"store with spaces", mod(func(s *token.PartnerSpec) { s.Store = "12 34" }), []string{"store must be"}},
		{"ftp webhook", mod(func(s *token.PartnerSpec) { s.WebhookURL = "ftp://x.example/" }), []string{"http or https"}},
		{"relative webhook", mod(func(s *token.PartnerSpec) { s.WebhookURL = "/hooks" }), []string{"http or https"}},
		{"webhook without host", mod(func(s *token.PartnerSpec) { s.WebhookURL = "https:///hooks" }), []string{"name a host"}},
		{"webhook with credentials", mod(func(s *token.PartnerSpec) { s.WebhookURL = "https://u:p@x.example/" }), []string{"credentials"}},
		{"webhook with fragment", mod(func(s *token.PartnerSpec) { s.WebhookURL = "https://x.example/#f" }), []string{"fragment"}},
		{"unparseable webhook", mod(func(s *token.PartnerSpec) { s.WebhookURL = "https://x.example/%zz" }), []string{"valid URL"}},
		{"every problem at once", token.PartnerSpec{Kind: "robot", Store: "1", WebhookURL: "mailto:a@b"},
			[]string{"name is required", "kind must be", "at least one scope", "only a retailer", "http or https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if broker.ErrorCode(err) != broker.EInvalid {
				t.Fatalf("Validate = %v, want EInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(broker.ErrorMessage(err), w) {
					t.Errorf("message %q lacks %q", broker.ErrorMessage(err), w)
				}
			}
			// CreatePartner refuses it too, and stores nothing.
			store := &memStore{}
			if _, _, err := token.CreatePartner(context.Background(), store, fakeVault{}, tt.spec); broker.ErrorCode(err) != broker.EInvalid {
				t.Errorf("CreatePartner = %v, want EInvalid", err)
			}
			if len(store.partners) != 0 {
				t.Error("an invalid partner was stored")
			}
		})
	}
}

func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	id, old, err := token.CreatePartner(ctx, store, fakeVault{}, validSpec())
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := token.RotateSecret(ctx, store, fakeVault{}, id)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := store.GetPartner(ctx, id)
	if fresh == old || token.CheckSecret(p.SecretHash, old) || !token.CheckSecret(p.SecretHash, fresh) {
		t.Fatal("after RotateSecret the old secret must fail and the new one pass")
	}
	if ws, err := token.WebhookSecret(ctx, store, fakeVault{}, id); err != nil || string(ws) != fresh {
		t.Fatalf("WebhookSecret after rotation = %q, %v", ws, err)
	}
	if _, err := token.RotateSecret(ctx, store, fakeVault{}, "cli_nobody"); !broker.IsNotFound(err) {
		t.Fatalf("RotateSecret(unknown) = %v, want ENotFound", err)
	}
}

func TestWebhookSecretErrors(t *testing.T) {
	ctx := context.Background()
	store := &memStore{partners: []broker.Partner{{ID: "cli_legacy", Kind: broker.KindRetailer, SecretHash: "h"}}}
	if _, err := token.WebhookSecret(ctx, store, fakeVault{}, "cli_legacy"); err != token.ErrNoWebhookSecret {
		t.Errorf("partner without a sealed secret: %v", err)
	}
	if _, err := token.WebhookSecret(ctx, store, fakeVault{}, "cli_nobody"); !broker.IsNotFound(err) {
		t.Errorf("unknown partner: %v", err)
	}
	// A sealed secret copied from another partner's row does not open.
	id, _, err := token.CreatePartner(ctx, store, fakeVault{}, validSpec())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := store.GetPartner(ctx, id)
	store.partners[0].SealedSecret = p.SealedSecret
	if _, err := token.WebhookSecret(ctx, store, fakeVault{}, "cli_legacy"); broker.ErrorCode(err) != broker.EInternal {
		t.Errorf("sealed secret of another partner: %v, want EInternal", err)
	}
	if _, _, err := token.CreatePartner(ctx, store, nil, validSpec()); err == nil {
		t.Error("CreatePartner without a vault succeeded")
	}
}
