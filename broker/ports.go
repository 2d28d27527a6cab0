package broker

import (
	"context"
	"time"
)

// WrappedKey is a shopper's data key as stored: wrapped with age to the
// broker's recipient(s). KeyID names the age identity that can unwrap it.
type WrappedKey struct {
	Subject string
	KeyID   string
	Wrapped []byte
}

// SubjectKeyStore stores the wrapped per-shopper data keys. Deleting a key
// is crypto-shredding: every record sealed under it becomes unreadable.
type SubjectKeyStore interface {
	// GetSubjectKey returns the subject's wrapped key, or ENotFound.
	GetSubjectKey(ctx context.Context, subject string) (WrappedKey, error)
	// PutSubjectKey stores k unless the subject already has a key, and
	// returns the key that is stored afterwards (k, or the earlier one).
	PutSubjectKey(ctx context.Context, k WrappedKey) (WrappedKey, error)
	// DeleteSubjectKey destroys the subject's key. Absent keys are no error.
	DeleteSubjectKey(ctx context.Context, subject string) error
	// SubjectKeysNotWrappedTo returns up to limit keys whose KeyID is not
	// keyID, after the subject `after` in subject order (for re-wrapping).
	SubjectKeysNotWrappedTo(ctx context.Context, keyID, after string, limit int) ([]WrappedKey, error)
	// ReplaceSubjectKeys swaps the wrapped form of each key (same subject).
	ReplaceSubjectKeys(ctx context.Context, keys []WrappedKey) error
	// CountSubjectKeys counts keys by the identity that wraps them.
	CountSubjectKeys(ctx context.Context) (map[string]int64, error)
}

// Partner is a registered partner platform.
type Partner struct {
	ID         string // the OAuth2 client id
	Name       string
	Kind       PartyKind
	Scopes     []Scope
	Store      string // WhatsApp phone-number id whose orders a retailer receives; "" for none
	WebhookURL string
	Disabled   bool
	CreatedAt  time.Time
	// SecretHash is the argon2id hash of the client secret (PHC string).
	SecretHash string
	// SealedSecret is the client secret sealed at rest, kept only to sign
	// webhooks pushed to the partner (HMAC needs the secret itself).
	SealedSecret []byte
	// NotBefore, when set, refuses every access token of the partner
	// issued before it (set on disable and on a secret rotation that
	// revokes tokens).
	NotBefore time.Time
	// Legal is the partner's legal registry entry (SPEC §2, §5.10); Role
	// "" is a legacy partner registered before the registry, treated as
	// a controller, and Jurisdiction "" is the store's own.
	Legal PartyLegal
	// Area is a retailer's service area (SPEC §9); zero for none.
	Area ServiceArea
}

// ServiceArea is where a store delivers, and how it takes offers.
type ServiceArea struct {
	Serves       []string // postal codes
	Lat, Lon     float64  // the store's location, when HasLocation
	HasLocation  bool
	RadiusKm     float64 // 0 for none; needs the location
	SelfDelivery bool    // delivers itself: gets the exact address at acceptance
	AutoAccept   bool    // accepts an offer at once when its stock covers the cart
}

// Declared reports whether the store declares a service area at all.
func (a ServiceArea) Declared() bool { return len(a.Serves) > 0 || (a.HasLocation && a.RadiusKm > 0) }

// PartyOf is the party a partner acts as: its id, kind, scopes and legal
// registry entry, where a Role "" (legacy) is shown to policy and audit as
// a controller and a Jurisdiction "" as home, the store's jurisdiction.
func PartyOf(p Partner, scopes []Scope, home string) Party {
	l := p.Legal
	if l.Role == "" {
		l.Role = RoleController
	}
	if l.Jurisdiction == "" {
		l.Jurisdiction = home
	}
	return Party{ID: p.ID, Kind: p.Kind, Scopes: scopes, Legal: l}
}

// PartnerStore is the partner registry.
type PartnerStore interface {
	CreatePartner(ctx context.Context, p Partner) error
	GetPartner(ctx context.Context, id string) (Partner, error)
	ListPartners(ctx context.Context) ([]Partner, error)
	SetPartnerDisabled(ctx context.Context, id string, disabled bool) error
	SetPartnerSecret(ctx context.Context, id, secretHash string, sealedSecret []byte) error
	// RetailerForStore returns the retailer that receives the orders of the
	// given WhatsApp business number: the one created with that store, else
	// the first retailer created; ENotFound when there is none.
	RetailerForStore(ctx context.Context, store string) (Partner, error)
	// RoutingStores returns the enabled retailers that declare a service
	// area, in creation order: the stores the marketplace routes to.
	RoutingStores(ctx context.Context) ([]Partner, error)
}

// Vault seals small secrets the broker itself owns (not a shopper's data),
// such as a partner's client secret kept to sign the webhooks pushed to it.
// name binds the ciphertext to its use, like associated data.
type Vault interface {
	SealSecret(ctx context.Context, name string, plaintext []byte) ([]byte, error)
	OpenSecret(ctx context.Context, name string, sealed []byte) ([]byte, error)
}

// Binding is what a sealed record is bound to (its AEAD associated data):
// a ciphertext moved to another table, column, row or shopper does not open.
type Binding struct {
	Table, Column, RowID string
}

// Sealer seals shoppers' records at rest under a data key per shopper.
type Sealer interface {
	// Seal encrypts plaintext for the subject, bound to b.
	Seal(ctx context.Context, subject string, b Binding, plaintext []byte) ([]byte, error)
	// Open decrypts what Seal produced; after Shred it fails with ENotFound.
	Open(ctx context.Context, subject string, b Binding, sealed []byte) ([]byte, error)
	// Shred destroys the subject's data key (crypto-shredding).
	Shred(ctx context.Context, subject string) error
	// Forget drops any cached copy of the subject's key (another process
	// erased the subject).
	Forget(subject string)
}

// PendingKey is a data key made for a subject whose rows are not written
// yet, so that its first records can be sealed first and the wrapped key
// stored in the same statement as the subject (a new shopper's path: one
// round trip instead of a transaction of four). Keep it once that statement
// succeeded; Discard it in any case when done.
type PendingKey interface {
	// Wrapped is the key as the store keeps it.
	Wrapped() WrappedKey
	// Seal encrypts plaintext for the subject under this key, bound to b.
	Seal(b Binding, plaintext []byte) ([]byte, error)
	// Keep caches the key, now stored by the transaction of ctx (or
	// committed, outside one).
	Keep(ctx context.Context)
	// Discard zeroes the key; a kept key stays cached.
	Discard()
}
