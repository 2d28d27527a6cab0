package seal

import (
	"context"
	"errors"
	"strings"

	"github.com/sieve-broker/sieve/broker"
)

// Data categories with their own data key per shopper (SPEC §5.5), so that
// an erasure can shred some and hold others (an invoice kept for the tax
// law while the address is gone).
const (
	// CategoryContact covers the shopper's identity, consent, the chat,
	// sessions, the inbox and the outbox. Its key is the shopper's
	// original single data key (subject_keys row named by the shopper id),
	// so data sealed before keys were split stays readable under it.
	CategoryContact = "contact"
	// CategoryFulfilment covers an order's delivery data: lines, address,
	// slot, ETA (orders.sealed).
	CategoryFulfilment = "fulfilment"
	// CategoryInvoice covers the invoice record of a placed order
	// (orders.sealed_invoice): what the CGST Act s.36 asks to keep.
	CategoryInvoice = "invoice"
)

// Categories lists the data-key categories, contact first.
var Categories = []string{CategoryContact, CategoryFulfilment, CategoryInvoice}

// categorySep joins a shopper id and a category into the subject the
// category's key is stored under ("shp_…#invoice"). Shopper ids never hold
// it (CategorySealer refuses them), so the names cannot collide.
const categorySep = "#"

// CategoryOf returns the data category a sealed column belongs to.
func CategoryOf(b broker.Binding) string {
	if b.Table == "orders" {
		switch b.Column {
		case "sealed":
			return CategoryFulfilment
		case "sealed_invoice":
			return CategoryInvoice
		}
	}
	return CategoryContact
}

// CategoryKey is the subject a category's data key is stored under.
func CategoryKey(subject, category string) string {
	if category == CategoryContact {
		return subject
	}
	return subject + categorySep + category
}

// CategorySealer seals each shopper's records under a separate data key
// per category (CategoryOf the record's binding). It implements
// broker.Sealer and broker.Vault over a Sealer; every key is an ordinary
// subject_keys row, so rotation re-wraps all of them.
//
// Records sealed before the split (migration 0017) are all under the
// contact key. Open falls back to it for a fulfilment or invoice record
// that its category key does not open, and such a record is re-sealed
// under its category key the next time it is written; an erasure that
// holds a category re-seals that category's old records first (Reseal),
// so nothing held depends on a shredded key.
type CategorySealer struct {
	*Sealer
}

// NewCategorySealer wraps s.
func NewCategorySealer(s *Sealer) *CategorySealer { return &CategorySealer{Sealer: s} }

var _ broker.Sealer = (*CategorySealer)(nil)

func checkShopper(subject string) error {
	if strings.Contains(subject, categorySep) {
		return broker.Errorf(broker.EInvalid, "subject ids may not hold %q", categorySep)
	}
	return nil
}

// Seal seals plaintext under the subject's key of b's category.
func (c *CategorySealer) Seal(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkShopper(subject); err != nil {
		return nil, err
	}
	return c.Sealer.Seal(ctx, CategoryKey(subject, CategoryOf(b)), b, plaintext)
}

// SealNew is Seal for a subject just created (see Sealer.SealNew).
func (c *CategorySealer) SealNew(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error) {
	if err := checkShopper(subject); err != nil {
		return nil, err
	}
	return c.Sealer.SealNew(ctx, CategoryKey(subject, CategoryOf(b)), b, plaintext)
}

// NewSubjectKey makes the contact key of a shopper not yet stored (see
// Sealer.NewSubjectKey): what a new shopper's first records are sealed under.
func (c *CategorySealer) NewSubjectKey(subject string) (broker.PendingKey, error) {
	if err := checkShopper(subject); err != nil {
		return nil, err
	}
	k, err := c.Sealer.NewSubjectKey(CategoryKey(subject, CategoryContact))
	if err != nil {
		return nil, err
	}
	return contactKey{k}, nil
}

// contactKey seals only what belongs under the contact key.
type contactKey struct{ broker.PendingKey }

func (k contactKey) Seal(b broker.Binding, plaintext []byte) ([]byte, error) {
	if cat := CategoryOf(b); cat != CategoryContact {
		return nil, broker.Errorf(broker.EInternal, "a new shopper's contact key cannot seal a %s record", cat)
	}
	return k.PendingKey.Seal(b, plaintext)
}

// Open opens a record under the subject's key of b's category, falling
// back to the contact key for a record sealed before the split.
func (c *CategorySealer) Open(ctx context.Context, subject string, b broker.Binding, sealed []byte) ([]byte, error) {
	if err := checkShopper(subject); err != nil {
		return nil, err
	}
	cat := CategoryOf(b)
	out, err := c.Sealer.Open(ctx, CategoryKey(subject, cat), b, sealed)
	if cat == CategoryContact || (!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrErased)) {
		return out, err
	}
	legacy, lerr := c.Sealer.Open(ctx, subject, b, sealed)
	if lerr == nil {
		return legacy, nil
	}
	return nil, err
}

// Shred destroys every category key of the subject.
func (c *CategorySealer) Shred(ctx context.Context, subject string) error {
	return c.ShredCategories(ctx, subject, Categories)
}

// ShredCategories destroys the subject's keys of the given categories
// only: their records become unreadable, the others stay.
func (c *CategorySealer) ShredCategories(ctx context.Context, subject string, categories []string) error {
	if err := checkShopper(subject); err != nil {
		return err
	}
	// The category keys first, the contact key (the legacy fallback) last.
	for i := len(Categories) - 1; i >= 0; i-- {
		cat := Categories[i]
		for _, want := range categories {
			if want == cat {
				if err := c.Sealer.Shred(ctx, CategoryKey(subject, cat)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Forget evicts every category key of the subject from the cache.
func (c *CategorySealer) Forget(subject string) {
	for _, cat := range Categories {
		c.Sealer.Forget(CategoryKey(subject, cat))
	}
}

// Reseal opens a record (under its category key or the legacy contact
// key) and seals it again under its category key; it returns the new
// sealed bytes. An erasure that holds a category calls it for that
// category's records before shredding the contact key.
func (c *CategorySealer) Reseal(ctx context.Context, subject string, b broker.Binding, sealed []byte) ([]byte, error) {
	pt, err := c.Open(ctx, subject, b, sealed)
	if err != nil {
		return nil, err
	}
	return c.Seal(ctx, subject, b, pt)
}
