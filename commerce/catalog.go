package commerce

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

// Limits of a product and of a catalog file. They are part of the import
// contract: a file that breaks one is rejected as a whole.
const (
	MaxNameRunes     = 100        // a product name is 1 to 100 characters
	MaxCategoryRunes = 40         // a category is 1 to 40 characters
	MinPricePaise    = 1          // ₹0.01
	MaxPricePaise    = 10_000_000 // ₹1,00,000
	MaxStock         = 1_000_000  // units of one SKU
	MaxProducts      = 10_000     // products in one catalog file
	MaxCatalogBytes  = 8 << 20    // size of one catalog file
	// MaxProblems is how many problems one CatalogError lists; the rest are
	// only counted, so a hopeless file still gets a short answer.
	MaxProblems = 20
)

// CatalogCSVHeader is the header line a CSV catalog must start with, exactly.
const CatalogCSVHeader = "sku,name,price_paise,category,stock"

// Product is one item of the shop's catalog. Its JSON form is the catalog
// import format, so `catalog list --json` output can be imported again.
type Product struct {
	SKU      string       `json:"sku"`      // e.g. SKU-ATTA-5KG; see ValidSKU
	Name     string       `json:"name"`     // shown to shoppers
	Price    broker.Money `json:"price"`    // INR, offset 100 (paise)
	Category string       `json:"category"` // groups products in the chat's product list
	Stock    int          `json:"stock"`    // units available to order
}

// Catalog is the port to the store of products the shop sells.
type Catalog interface {
	// Products returns every product, ordered by category, then name, then SKU.
	Products(ctx context.Context) ([]Product, error)
	// ProductsBySKU returns the products with the given SKUs, keyed by SKU.
	// SKUs that are not in the catalog are absent from the map; that is not
	// an error, so a caller can tell the shopper which items are unknown.
	ProductsBySKU(ctx context.Context, skus []string) (map[string]Product, error)
	// UpsertProducts validates ps as ValidateProducts does, then inserts or
	// updates them all in one transaction: on any problem nothing is stored.
	// n counts the products inserted or changed; a product stored exactly as
	// given is not counted, so importing the same file twice returns 0.
	UpsertProducts(ctx context.Context, ps []Product) (n int, err error)
	// Categories returns the distinct categories of the catalog, sorted.
	Categories(ctx context.Context) ([]string, error)
}

// Inventory is the port that holds stock for orders. Both methods join the
// transaction carried by ctx, if any, so that a reservation commits or rolls
// back with the order that needs it.
type Inventory interface {
	// ReserveStock takes the given quantities (SKU to units, each > 0) out
	// of stock, all or nothing. When any SKU has too few units it returns a
	// *StockError (code broker.EConflict) naming each short SKU and reserves
	// nothing; an unknown SKU or a quantity < 1 is broker.EInvalid.
	ReserveStock(ctx context.Context, qty map[string]int) error
	// ReleaseStock puts reserved quantities back, e.g. when an order is
	// cancelled. It is not idempotent: the caller releases each reservation
	// once, in the same transaction that records the cancellation.
	ReleaseStock(ctx context.Context, qty map[string]int) error
}

var skuRE = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{1,63}$`)

// ValidSKU reports whether s is a well-formed SKU: 2 to 64 characters of
// A-Z, 0-9 and '-', not starting with '-'.
func ValidSKU(s string) bool { return skuRE.MatchString(s) }

// Problem is one thing wrong with a catalog or a product.
type Problem struct {
	// Where names the product: "element 3" (1-based) in a JSON array,
	// "line 4" in a CSV file, "product 2" for UpsertProducts; "" when the
	// problem is with the file as a whole.
	Where string
	// SKU is the product's SKU when it is well-formed, to help find it.
	SKU string
	// Field is the field's name as the file spells it ("price.value" in
	// JSON, "price_paise" in CSV); "" when the record as a whole is wrong.
	Field string
	// Message says what is wrong and, where it helps, what is expected.
	Message string
}

// String renders p as "line 4 (SKU-ATTA-5KG): price_paise: must be …".
func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		if p.SKU != "" {
			b.WriteString(" (" + p.SKU + ")")
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// CatalogError rejects a catalog (or a list of products) as a whole and
// lists what is wrong with it, up to MaxProblems, so that one round of fixes
// is usually enough. It unwraps to a *broker.Error with code broker.EInvalid
// whose message is the same one-line text; the text names SKUs, fields and
// limits, which are catalog data and never personal data.
type CatalogError struct {
	Problems []Problem
	More     int // problems found beyond the ones listed
}

func (e *CatalogError) Error() string {
	var b strings.Builder
	b.WriteString("invalid catalog: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "; and %d more problem%s", e.More, pluralS(e.More))
	}
	return b.String()
}

// Unwrap returns the error as a broker.EInvalid *broker.Error.
func (e *CatalogError) Unwrap() error {
	return &broker.Error{Code: broker.EInvalid, Message: e.Error()}
}

// Shortage is one SKU that an order wants more of than is in stock.
type Shortage struct {
	SKU       string
	Available int
	Wanted    int
}

// StockError is the refusal of a reservation because of shortages; nothing
// was reserved. It unwraps to a *broker.Error with code broker.EConflict.
type StockError struct {
	Shortages []Shortage
}

func (e *StockError) Error() string {
	var b strings.Builder
	b.WriteString("insufficient stock: ")
	for i, s := range e.Shortages {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%d left, %d wanted)", s.SKU, s.Available, s.Wanted)
	}
	return b.String()
}

// Unwrap returns the error as a broker.EConflict *broker.Error.
func (e *StockError) Unwrap() error {
	return &broker.Error{Code: broker.EConflict, Message: e.Error()}
}

// catalogProblems collects Problems up to MaxProblems and counts the rest.
type catalogProblems struct {
	list []Problem
	more int
}

func (ps *catalogProblems) add(p Problem) {
	if len(ps.list) < MaxProblems {
		ps.list = append(ps.list, p)
	} else {
		ps.more++
	}
}

func (ps *catalogProblems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return &CatalogError{Problems: ps.list, More: ps.more}
}

// fileProblem returns a CatalogError about the file as a whole.
func fileProblem(format string, args ...any) error {
	return &CatalogError{Problems: []Problem{{Message: fmt.Sprintf(format, args...)}}}
}

// The fields of a product, for mapping problems to the file's spelling.
type productField int

const (
	fSKU productField = iota
	fName
	fPrice
	fCategory
	fStock
	nFields
)

// Field names as CSV files and Go values spell them.
var (
	csvFields = [nFields]string{"sku", "name", "price_paise", "category", "stock"}
	goFields  = [nFields]string{"sku", "name", "price", "category", "stock"}
)

type fieldProblem struct {
	f   productField
	msg string
}

// Validate reports every problem of p as a *CatalogError, or nil.
func (p Product) Validate() error {
	var ps catalogProblems
	for _, fp := range p.check() {
		ps.add(Problem{SKU: skuOf(p.SKU), Field: goFields[fp.f], Message: fp.msg})
	}
	return ps.err()
}

// ValidateProducts reports every problem of ps, including duplicate SKUs,
// as a *CatalogError naming "product N" (1-based), or nil. An empty list is
// valid.
func ValidateProducts(ps []Product) error {
	var out catalogProblems
	seen := make(map[string]int, len(ps))
	for i, p := range ps {
		where := fmt.Sprintf("product %d", i+1)
		for _, fp := range p.check() {
			out.add(Problem{Where: where, SKU: skuOf(p.SKU), Field: goFields[fp.f], Message: fp.msg})
		}
		if p.SKU == "" {
			continue
		}
		if j, dup := seen[p.SKU]; dup {
			out.add(Problem{Where: where, SKU: skuOf(p.SKU), Field: "sku", Message: fmt.Sprintf("duplicate of product %d", j+1)})
		} else {
			seen[p.SKU] = i
		}
	}
	return out.err()
}

// check returns the problems of p's fields, in field order.
func (p Product) check() []fieldProblem {
	var out []fieldProblem
	if msg := checkSKU(p.SKU); msg != "" {
		out = append(out, fieldProblem{fSKU, msg})
	}
	if msg := checkProductText(p.Name, MaxNameRunes); msg != "" {
		out = append(out, fieldProblem{fName, msg})
	}
	if msg := checkPrice(p.Price); msg != "" {
		out = append(out, fieldProblem{fPrice, msg})
	}
	if msg := checkProductText(p.Category, MaxCategoryRunes); msg != "" {
		out = append(out, fieldProblem{fCategory, msg})
	}
	if msg := checkStock(int64(p.Stock)); msg != "" {
		out = append(out, fieldProblem{fStock, msg})
	}
	return out
}

func checkSKU(s string) string {
	switch {
	case s == "":
		return "is required"
	case !ValidSKU(s):
		return fmt.Sprintf(`must be 2 to 64 characters of A-Z, 0-9 and "-", not starting with "-" (like SKU-ATTA-5KG), got %s`, quoteShort(s))
	}
	return ""
}

// checkProductText checks a name or a category: 1 to max characters, no
// control characters (which could break a chat line or a terminal), no
// Unicode bidi overrides (which could make a product look like another), no
// leading or trailing white space.
func checkProductText(s string, max int) string {
	switch {
	case s == "":
		return "is required"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("must be at most %d characters, got %d", max, utf8.RuneCountInString(s))
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
			(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Sprintf("must not contain control characters (found U+%04X)", r)
		}
	}
	if strings.TrimSpace(s) != s {
		return "must not begin or end with white space"
	}
	return ""
}

func checkPrice(m broker.Money) string {
	switch {
	case m.Offset != broker.OffsetINR:
		return fmt.Sprintf("offset must be %d (paise), got %d", broker.OffsetINR, m.Offset)
	case m.Currency != "" && m.Currency != "INR":
		return fmt.Sprintf("currency must be INR, got %s", quoteShort(m.Currency))
	}
	return checkPaise(m.Value)
}

func checkPaise(v int64) string {
	if v < MinPricePaise || v > MaxPricePaise {
		return fmt.Sprintf("must be %d to %d paise (₹0.01 to ₹1,00,000), got %d", MinPricePaise, MaxPricePaise, v)
	}
	return ""
}

func checkStock(n int64) string {
	if n < 0 || n > MaxStock {
		return fmt.Sprintf("must be 0 to %d, got %d", MaxStock, n)
	}
	return ""
}

// skuOf returns s when it is a well-formed SKU, to name a product in a
// problem; a malformed one is reported as the sku field's own problem.
func skuOf(s string) string {
	if ValidSKU(s) {
		return s
	}
	return ""
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const max = 32
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

//go:embed demo_catalog.json
var demoCatalogJSON []byte

var demoCatalog = sync.OnceValue(func() []Product {
	ps, err := parseJSON(demoCatalogJSON)
	if err != nil {
		panic("commerce: the embedded demo catalog is invalid: " + err.Error())
	}
	return ps
})

// DemoCatalog returns the demo catalog of Indian grocery products that
// `brokerctl catalog import --demo` and `make run` load. It always includes
// SKU-ATTA-5KG ("Atta 5 kg", ₹289.50) and SKU-MILK-1L ("Toned Milk 1 L",
// ₹64.00). The slice is the caller's own copy.
func DemoCatalog() []Product { return slices.Clone(demoCatalog()) }
