package commerce

import (
	"regexp"
	"slices"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Order statuses. An order waits for payment, then is placed and moves
// forward through the retailer's updates; cancelled and delivered are final.
const (
	StatusPendingPayment = "pending_payment"
	StatusPlaced         = "placed"
	StatusAccepted       = "accepted"
	StatusPacked         = "packed"
	StatusOutForDelivery = "out_for_delivery"
	StatusDelivered      = "delivered"
	StatusCancelled      = "cancelled"
)

// Payment statuses of an order.
const (
	PaymentPending  = "pending"
	PaymentCaptured = "captured"
	PaymentFailed   = "failed"
)

// MaxOrderQuantity is the largest quantity an inbound order line may
// carry; an order with a line outside 1..MaxOrderQuantity is refused whole.
const MaxOrderQuantity = 100000

// Why an inbound order message is refused (Inbound.Invalid): a fixed list
// of codes.
const (
	OrderInvalidQuantity = "quantity" // a line's quantity outside 1..MaxOrderQuantity
	OrderInvalidPrice    = "price"    // a line's item_price is not an exact, non-negative amount
	OrderInvalidCurrency = "currency" // not a currency code, or mixed currencies
	OrderInvalidProduct  = "product"  // a line without a product id
	OrderInvalidEmpty    = "empty"    // no lines
	OrderInvalidTotal    = "total"    // the total overflows
)

// statusOrder ranks the forward path of an order.
var statusOrder = []string{StatusPendingPayment, StatusPlaced, StatusAccepted, StatusPacked,
	StatusOutForDelivery, StatusDelivered}

// PartnerStatuses are the statuses a retailer may set.
var PartnerStatuses = []string{StatusAccepted, StatusPacked, StatusOutForDelivery, StatusDelivered, StatusCancelled}

// ValidTransition reports whether an order may move from one status to
// another: forward only along the path (skipping is allowed), or to
// cancelled from any status before delivery.
func ValidTransition(from, to string) bool {
	if from == StatusDelivered || from == StatusCancelled {
		return false
	}
	if to == StatusCancelled {
		return true
	}
	fi, ti := slices.Index(statusOrder, from), slices.Index(statusOrder, to)
	return fi >= 0 && ti > fi && from != StatusPendingPayment
}

// WhatsAppStatus maps an order status to the Cloud API order_status value.
func WhatsAppStatus(status string) string {
	switch status {
	case StatusOutForDelivery:
		return "shipped"
	case StatusDelivered:
		return "completed"
	case StatusCancelled:
		return "canceled"
	}
	return "processing"
}

// Order is a shopper's order. Lines, Address and Slot are personal data and
// are stored sealed; the rest is plaintext for queries.
type Order struct {
	ID            string
	Subject       string
	Store         string
	RetailerID    string
	Status        string
	PaymentStatus string
	ReferenceID   string
	Lines         []CartLine
	Subtotal      int64 // paise
	Tax           int64
	Shipping      int64
	Total         int64
	Address       Location
	PostalCode    string
	Slot          string // human label of the delivery slot
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ETA           string // the retailer's latest ETA, if any
}

// OrderPrivate is the sealed part of an order.
type OrderPrivate struct {
	Lines      []CartLine `json:"lines"`
	Address    Location   `json:"address"`
	PostalCode string     `json:"postal_code"`
	Slot       string     `json:"slot"`
	ETA        string     `json:"eta,omitempty"`
}

// Private returns the part of o that is sealed at rest.
func (o *Order) Private() OrderPrivate {
	return OrderPrivate{Lines: o.Lines, Address: o.Address, PostalCode: o.PostalCode, Slot: o.Slot, ETA: o.ETA}
}

// SetPrivate fills o from its unsealed part.
func (o *Order) SetPrivate(p OrderPrivate) {
	o.Lines, o.Address, o.PostalCode, o.Slot, o.ETA = p.Lines, p.Address, p.PostalCode, p.Slot, p.ETA
}

// OrderFields are the fields of an order record, in the order the retail
// view asks for them.
var OrderFields = []string{"order.id", "order.status", "order.created_at", "customer.ref", "customer.phone",
	"customer.profile_name", "chat", "items", "total", "delivery.address", "delivery.postal_code",
	"delivery.slot", "delivery.location", "payment.status", "payment.reference_id"}

// ViewItem is an order line in a partner's view.
type ViewItem struct {
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	Quantity  int          `json:"quantity"`
	UnitPrice broker.Money `json:"unit_price"`
}

// Record returns the order as a flat record for the release pipeline. The
// shopper's phone, profile name and chat are not part of it: policy never
// releases them to the retail side, so they are not unsealed for it.
func (o *Order) Record() broker.Record {
	items := make([]ViewItem, len(o.Lines))
	for i, l := range o.Lines {
		items[i] = ViewItem{SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: broker.Money{Value: l.UnitPrice, Offset: 100}}
	}
	rec := broker.Record{
		"order.id":             o.ID,
		"order.status":         o.Status,
		"order.created_at":     o.CreatedAt.UTC(),
		"customer.ref":         o.Subject,
		"items":                items,
		"total":                broker.INR(o.Total),
		"delivery.address":     o.Address.Address,
		"delivery.postal_code": o.PostalCode,
		"delivery.slot":        o.Slot,
		"payment.status":       o.PaymentStatus,
		"payment.reference_id": o.ReferenceID,
	}
	addressRecord(rec, o.structured())
	if o.Address.Lat != 0 || o.Address.Long != 0 {
		rec["delivery.location"] = map[string]float64{"latitude": o.Address.Lat, "longitude": o.Address.Long}
	}
	return rec
}

var postalCode = regexp.MustCompile(`\b[1-9][0-9]{5}\b`)

// PostalCodeOf finds an Indian PIN code (six digits, not starting with 0)
// in an address; "" when there is none.
func PostalCodeOf(address string) string {
	return postalCode.FindString(address)
}

// Totals computes an order's amounts from its lines: tax is included in
// grocery prices (GST-inclusive MRP), shipping is free above ₹499 and
// ₹30 below.
func Totals(lines []CartLine) (subtotal, tax, shipping, total int64) {
	for _, l := range lines {
		subtotal += l.UnitPrice * int64(l.Quantity)
	}
	if subtotal < 49900 {
		shipping = 3000
	}
	return subtotal, 0, shipping, subtotal + tax + shipping
}
