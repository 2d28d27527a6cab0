package token

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

// PartnerSpec is what an operator gives to register a partner.
type PartnerSpec struct {
	Name       string
	Kind       broker.PartyKind
	Scopes     []string // known scopes; see broker.ParseScopes for the CLI's "a b c" form
	Store      string   // retailers only: the WhatsApp phone-number id whose orders it receives
	WebhookURL string   // optional: absolute http(s) URL for order webhooks
}

const (
	maxNameLen  = 200
	maxStoreLen = 64
	maxURLLen   = 2048
)

// Validate reports every problem with the spec at once, as one
// broker.EInvalid error, so an operator fixes them in one go.
func (s PartnerSpec) Validate() error {
	var probs []string
	name := strings.TrimSpace(s.Name)
	switch {
	case name == "":
		probs = append(probs, "name is required")
	case utf8.RuneCountInString(name) > maxNameLen || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, unicode.IsControl):
		probs = append(probs, "name must be printable text of at most 200 characters")
	}
	if !broker.ValidPartnerKind(s.Kind) {
		probs = append(probs, "kind must be one of retailer, logistics, payments, analytics, compliance")
	}
	for _, sc := range s.Scopes {
		if broker.ValidPartnerKind(s.Kind) && !broker.ScopeAllowed(s.Kind, sc) {
			probs = append(probs, sc+" is only for partners of kind compliance")
		}
	}
	switch {
	case len(s.Scopes) == 0:
		probs = append(probs, "at least one scope is required")
	case slices.ContainsFunc(s.Scopes, func(sc string) bool { return !slices.Contains(broker.AllScopes, sc) }):
		probs = append(probs, "unknown scope (known: "+strings.Join(broker.AllScopes, " ")+")")
	}
	if s.Store != "" {
		if s.Kind != broker.KindRetailer {
			probs = append(probs, "only a retailer can be bound to a store")
		}
		if len(s.Store) > maxStoreLen || strings.ContainsFunc(s.Store, func(r rune) bool {
			return r <= ' ' || r > '~'
		}) {
			probs = append(probs, "store must be a WhatsApp phone-number id (printable ASCII, no spaces)")
		}
	}
	if s.WebhookURL != "" {
		if msg := checkWebhookURL(s.WebhookURL); msg != "" {
			probs = append(probs, msg)
		}
	}
	if len(probs) > 0 {
		return broker.Errorf(broker.EInvalid, "invalid partner: %s", strings.Join(probs, "; "))
	}
	return nil
}

// checkWebhookURL returns what is wrong with a webhook URL, or "".
func checkWebhookURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > maxURLLen:
		return "webhook must be a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "webhook must be an absolute http or https URL"
	case u.Host == "" || u.Hostname() == "":
		return "webhook must name a host"
	case u.User != nil:
		// It would be stored and shown in plaintext; webhooks are
		// authenticated by our signature, not by credentials in the URL.
		return "webhook must not carry credentials"
	case u.Fragment != "":
		return "webhook must not have a fragment"
	}
	return ""
}

// secretName binds a sealed client secret to its partner, so a sealed
// value copied to another partner's row does not open.
func secretName(clientID string) string { return "partner-secret:" + clientID }

// CreatePartner validates spec, registers the partner with a new client id
// (cli_…) and secret, and returns both. Only the argon2id hash of the
// secret and the secret sealed through vault (to sign its webhooks) are
// stored: the plaintext is returned once and never again.
func CreatePartner(ctx context.Context, store broker.PartnerStore, vault broker.Vault, spec PartnerSpec) (clientID, secret string, err error) {
	if err := spec.Validate(); err != nil {
		return "", "", err
	}
	if vault == nil {
		return "", "", broker.Errorf(broker.EInternal, "no vault to seal the client secret")
	}
	scopes := slices.Clone(spec.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)

	clientID, secret = broker.NewID("cli"), NewSecret()
	hash, sealed, err := protectSecret(ctx, vault, clientID, secret)
	if err != nil {
		return "", "", err
	}
	p := broker.Partner{
		ID: clientID, Name: strings.TrimSpace(spec.Name), Kind: spec.Kind, Scopes: scopes,
		Store: spec.Store, WebhookURL: spec.WebhookURL, CreatedAt: time.Now().UTC(),
		SecretHash: hash, SealedSecret: sealed,
	}
	if err := store.CreatePartner(ctx, p); err != nil {
		return "", "", err
	}
	return clientID, secret, nil
}

// RotateSecret gives the partner a new client secret and returns it. The
// old secret stops working for new tokens at once; tokens already issued
// stay valid until they expire (at most MaxLifetime) unless the caller
// also revokes them (brokerctl partner rotate-secret --revoke-tokens sets
// the partner's not-before). Webhooks are signed with the new secret from
// then on.
func RotateSecret(ctx context.Context, store broker.PartnerStore, vault broker.Vault, clientID string) (string, error) {
	if vault == nil {
		return "", broker.Errorf(broker.EInternal, "no vault to seal the client secret")
	}
	p, err := store.GetPartner(ctx, clientID)
	if err != nil {
		return "", err
	}
	secret := NewSecret()
	hash, sealed, err := protectSecret(ctx, vault, p.ID, secret)
	if err != nil {
		return "", err
	}
	if err := store.SetPartnerSecret(ctx, p.ID, hash, sealed); err != nil {
		return "", err
	}
	return secret, nil
}

func protectSecret(ctx context.Context, vault broker.Vault, clientID, secret string) (hash string, sealed []byte, err error) {
	hash, err = HashSecret(secret)
	if err != nil {
		return "", nil, broker.Wrap(broker.EInternal, err, "hash client secret")
	}
	sealed, err = vault.SealSecret(ctx, secretName(clientID), []byte(secret))
	if err != nil {
		return "", nil, err
	}
	return hash, sealed, nil
}

// ErrNoWebhookSecret means the partner has no sealed secret to sign its
// webhooks with (registered before secrets were sealed); rotating its
// secret gives it one.
var ErrNoWebhookSecret = &broker.Error{Code: broker.ENotFound, Message: "partner has no webhook secret; rotate its secret"}

// WebhookSecret returns the partner's client secret, the HMAC key of the
// webhooks pushed to it. The caller should not keep it longer than needed.
func WebhookSecret(ctx context.Context, store broker.PartnerStore, vault broker.Vault, clientID string) ([]byte, error) {
	if vault == nil {
		return nil, broker.Errorf(broker.EInternal, "no vault to open the client secret")
	}
	p, err := store.GetPartner(ctx, clientID)
	if err != nil {
		return nil, err
	}
	if len(p.SealedSecret) == 0 {
		return nil, ErrNoWebhookSecret
	}
	secret, err := vault.OpenSecret(ctx, secretName(p.ID), p.SealedSecret)
	if err != nil {
		var be *broker.Error
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, broker.Wrap(broker.EInternal, err, "open webhook secret")
	}
	return secret, nil
}
