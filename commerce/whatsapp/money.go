package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Amount is money in integer minor units: Value / Offset major units. INR
// amounts use Offset 100 (paise), so ₹289.50 is {Value: 28950, Offset: 100}.
type Amount struct {
	Value  int64 `json:"value"`
	Offset int   `json:"offset"`
}

// Paise returns an INR amount of v paise.
func Paise(v int64) Amount { return Amount{Value: v, Offset: broker.OffsetINR} }

// ErrInvalidAmount is wrapped by every error of [ParseAmount].
var ErrInvalidAmount = errors.New("whatsapp: invalid amount")

// maxAmountText bounds the length of a decimal amount ParseAmount accepts.
const maxAmountText = 64

// ParseAmount converts a non-negative decimal number of major units (rupees),
// in JSON number syntax such as "289.5", "64", "0.05" or "2.895e2", into an
// [Amount] with offset 100, using exact decimal arithmetic.
//
// It rejects negative numbers, numbers with a non-zero digit beyond the second
// decimal place ("1.005"; "1.500" is accepted as 150 paise), values that do
// not fit in int64 paise, and anything that is not a decimal number.
func ParseAmount(s string) (Amount, error) {
	if s == "" {
		return Amount{}, fmt.Errorf("%w: empty", ErrInvalidAmount)
	}
	if len(s) > maxAmountText {
		return Amount{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidAmount, maxAmountText)
	}
	if s[0] == '-' {
		return Amount{}, fmt.Errorf("%w: negative", ErrInvalidAmount)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		es := s[i+1:]
		if es != "" && (es[0] == '+' || es[0] == '-') {
			if !allDigits(es[1:]) {
				return Amount{}, fmt.Errorf("%w: malformed exponent", ErrInvalidAmount)
			}
		} else if !allDigits(es) {
			return Amount{}, fmt.Errorf("%w: malformed exponent", ErrInvalidAmount)
		}
		e, err := strconv.Atoi(es)
		if err != nil || e > 40 || e < -40 {
			return Amount{}, fmt.Errorf("%w: exponent out of range", ErrInvalidAmount)
		}
		exp = e
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if !allDigits(intPart) || (hasDot && !allDigits(frac)) {
		return Amount{}, fmt.Errorf("%w: not a decimal number", ErrInvalidAmount)
	}
	digits := intPart + frac
	// The paise point sits after shift digits of digits.
	shift := len(intPart) + exp + 2
	var whole, rest string
	switch {
	case shift <= 0:
		whole, rest = "0", digits
	case shift >= len(digits):
		whole = digits + strings.Repeat("0", shift-len(digits))
	default:
		whole, rest = digits[:shift], digits[shift:]
	}
	if strings.Trim(rest, "0") != "" {
		return Amount{}, fmt.Errorf("%w: more than 2 decimal places", ErrInvalidAmount)
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		return Paise(0), nil
	}
	v, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return Amount{}, fmt.Errorf("%w: out of range", ErrInvalidAmount)
	}
	return Paise(v), nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decimals returns the number of decimal places of a power-of-ten offset, or
// -1 when the offset is not a positive power of ten.
func decimals(offset int) int {
	n := 0
	for o := offset; o > 1; o /= 10 {
		if o%10 != 0 {
			return -1
		}
		n++
	}
	if offset < 1 {
		return -1
	}
	return n
}

// String formats the amount in major units with all decimals of its offset,
// e.g. "289.50" for {28950, 100}. An offset that is not a power of ten is
// shown as "value/offset".
func (a Amount) String() string {
	d := decimals(a.Offset)
	if d < 0 {
		return fmt.Sprintf("%d/%d", a.Value, a.Offset)
	}
	neg := a.Value < 0
	u := uint64(a.Value)
	if neg {
		u = uint64(-(a.Value + 1)) + 1 // safe for math.MinInt64
	}
	s := strconv.FormatUint(u, 10)
	if d > 0 {
		if len(s) <= d {
			s = strings.Repeat("0", d-len(s)+1) + s
		}
		s = s[:len(s)-d] + "." + s[len(s)-d:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// JSONNumber returns the amount in major units as a JSON number without
// trailing zeros, as Meta sends item_price: 289.5, 64, 0.05. The offset must
// be a power of ten (every wire amount's is); otherwise the result is not a
// valid JSON number.
func (a Amount) JSONNumber() json.Number {
	s := a.String()
	if strings.Contains(s, ".") && !strings.Contains(s, "/") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return json.Number(s)
}

// Add returns a+b. Both must use the same offset; ok is false on a mismatch or
// overflow.
func (a Amount) Add(b Amount) (sum Amount, ok bool) {
	if a.Offset != b.Offset {
		return Amount{}, false
	}
	v, ok := addInt64(a.Value, b.Value)
	return Amount{Value: v, Offset: a.Offset}, ok
}

// Mul returns a×n; ok is false on overflow.
func (a Amount) Mul(n int64) (product Amount, ok bool) {
	v, ok := mulInt64(a.Value, n)
	return Amount{Value: v, Offset: a.Offset}, ok
}

func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

func mulInt64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	p := a * b
	if p/b != a {
		return 0, false
	}
	return p, true
}

// OrderLine is a validated line of an inbound order, with its unit price in
// minor units.
type OrderLine struct {
	ProductRetailerID string
	Quantity          int
	UnitPrice         Amount
	Currency          string
}

// MaxOrderQuantity bounds the quantity of one order line: an inbound order
// is taken only when every line's quantity is 1..100000.
const MaxOrderQuantity = commerce.MaxOrderQuantity

// Why [Order.Lines] refuses an order; every error it returns wraps one.
var (
	ErrOrderEmpty    = errors.New("whatsapp: order has no product items")
	ErrOrderProduct  = errors.New("whatsapp: order line without product_retailer_id")
	ErrOrderQuantity = errors.New("whatsapp: order line quantity out of range 1..100000")
	ErrOrderPrice    = errors.New("whatsapp: order line item_price invalid")
	ErrOrderCurrency = errors.New("whatsapp: order line currency invalid or mixed")
	ErrOrderTotal    = errors.New("whatsapp: order total overflows")
)

// Lines validates the order and returns its lines with exact prices. It
// rejects an empty order, missing product ids, quantities outside
// 1..[MaxOrderQuantity], invalid prices (see [ParseAmount]), a currency
// that is not a three-letter code or differs between lines, and an order
// whose total (Σ price × quantity, in checked arithmetic) overflows.
func (o *Order) Lines() ([]OrderLine, error) {
	if o == nil || len(o.ProductItems) == 0 {
		return nil, ErrOrderEmpty
	}
	lines := make([]OrderLine, 0, len(o.ProductItems))
	var total Amount
	for i, p := range o.ProductItems {
		if p.ProductRetailerID == "" {
			return nil, fmt.Errorf("%w: product_items[%d]", ErrOrderProduct, i)
		}
		if p.Quantity < 1 || p.Quantity > MaxOrderQuantity {
			return nil, fmt.Errorf("%w: product_items[%d]", ErrOrderQuantity, i)
		}
		price, err := p.UnitPrice()
		if err != nil {
			return nil, fmt.Errorf("%w: product_items[%d]: %w", ErrOrderPrice, i, err)
		}
		if !isCurrencyCode(p.Currency) || (i > 0 && p.Currency != lines[0].Currency) {
			return nil, fmt.Errorf("%w: product_items[%d]", ErrOrderCurrency, i)
		}
		sum, ok := price.Mul(int64(p.Quantity))
		if i == 0 {
			total = Amount{Offset: sum.Offset}
		}
		if ok {
			total, ok = total.Add(sum)
		}
		if !ok {
			return nil, fmt.Errorf("%w: product_items[%d]", ErrOrderTotal, i)
		}
		lines = append(lines, OrderLine{
			ProductRetailerID: p.ProductRetailerID,
			Quantity:          int(p.Quantity),
			UnitPrice:         price,
			Currency:          p.Currency,
		})
	}
	return lines, nil
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
