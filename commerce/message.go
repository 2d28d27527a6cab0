package commerce

import (
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// InboundKind is the kind of a shopper's event.
type InboundKind string

// The inbound kinds the conversation understands.
const (
	InText     InboundKind = "text"
	InReply    InboundKind = "reply"    // a reply button or list row was tapped
	InOrder    InboundKind = "order"    // a cart sent from the catalog
	InLocation InboundKind = "location" // a shared location
	InPayment  InboundKind = "payment"  // a payment status from WhatsApp Pay
	InOther    InboundKind = "other"    // media, stickers, unsupported types
)

// Inbound is one event from a shopper, decoded from the wire.
type Inbound struct {
	ID      string // message id (wamid) or status id: the idempotency key
	Store   string // the business phone-number id it arrived on
	Time    time.Time
	Kind    InboundKind
	Text    string     // InText: the body; InOrder: the shopper's note
	ReplyID string     // InReply: the stable reply id
	Lines   []CartLine // InOrder
	Loc     *Location  // InLocation
	Payment *Payment   // InPayment
	Type    string     // InOther: the wire type
	// Invalid is set on an InOrder event whose order was refused (then
	// Lines is empty): one of the OrderInvalid codes, never wire text. The
	// conversation tells the shopper why and changes nothing.
	Invalid string `json:",omitempty"`
}

// CartLine is one product in a cart. UnitPrice is what the shopper's order
// message said; the catalog's price is authoritative.
type CartLine struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice int64  `json:"unit_price"` // paise
}

// Location is a shared location or a typed address.
type Location struct {
	Lat     float64 `json:"lat,omitempty"`
	Long    float64 `json:"long,omitempty"`
	Name    string  `json:"name,omitempty"`
	Address string  `json:"address,omitempty"`
	// Structured is the address as the India address_message form gave
	// it, field by field; nil for a pin or typed text.
	Structured *StructuredAddress `json:"structured,omitempty"`
}

// Payment is a payment status for an order_details message.
type Payment struct {
	ReferenceID string `json:"reference_id"`
	Status      string `json:"status"`       // captured | pending
	TxnStatus   string `json:"txn_status"`   // success | failed | pending
	Amount      int64  `json:"amount"`       // paise; -1 when not in offset 100
	Currency    string `json:"currency"`     // INR is the only one accepted
	TxnID       string `json:"txn_id"`       // the gateway's order id (opaque)
	Method      string `json:"method"`       // upi | card | …
	ErrorReason string `json:"error_reason"` // the gateway's reason on failure (no PII)
}

// ReplyKind is the kind of a message the broker sends to a shopper.
type ReplyKind string

// The reply kinds; each maps to one Cloud API message type.
const (
	ReplyText            ReplyKind = "text"
	ReplyButtons         ReplyKind = "buttons"          // interactive button
	ReplyList            ReplyKind = "list"             // interactive list
	ReplyProductList     ReplyKind = "product_list"     // interactive product_list
	ReplyCatalog         ReplyKind = "catalog"          // interactive catalog_message
	ReplyLocationRequest ReplyKind = "location_request" // interactive location_request_message
	ReplyAddressRequest  ReplyKind = "address_request"  // interactive address_message (India)
	ReplyOrderDetails    ReplyKind = "order_details"    // interactive order_details
	ReplyOrderStatus     ReplyKind = "order_status"     // interactive order_status
	ReplyDocument        ReplyKind = "document"         // an uploaded file (media upload, then document)
)

// Document is a file sent in the chat (the shopper's own data export).
// It is sealed in the outbox with the rest of the reply.
type Document struct {
	Filename string `json:"filename"`
	MIME     string `json:"mime"`
	Data     []byte `json:"data"`
}

// Reply is one message to the shopper, independent of the wire format.
type Reply struct {
	Kind     ReplyKind     `json:"kind"`
	Header   string        `json:"header,omitempty"`
	Body     string        `json:"body"`
	Footer   string        `json:"footer,omitempty"`
	Buttons  []Button      `json:"buttons,omitempty"`
	Button   string        `json:"button,omitempty"` // the list's open button label
	Sections []Section     `json:"sections,omitempty"`
	Order    *OrderDetails `json:"order,omitempty"`
	Status   *OrderStatus  `json:"status,omitempty"`
	// Template marks messages that may go out after the 24-hour customer
	// service window closes (as the named template); others are dropped then.
	Template string `json:"template,omitempty"`
	// Lang is the shopper's language (ISO 639), which a template is sent
	// in; "" is English.
	Lang string `json:"lang,omitempty"`
	// Localized marks a reply written in the shopper's language already
	// (the notice, the language chooser): it is not translated again.
	Localized bool `json:"-"`
	// Document is the file of a ReplyDocument; Body is its caption.
	Document *Document `json:"document,omitempty"`
	// Fallback is sent instead when this message cannot be shown (the
	// Send API refuses it for good, e.g. a product_list without a
	// connected catalog). Sending both would charge twice for the same
	// content (Meta bills service messages from 1 Oct 2026).
	Fallback *Reply `json:"fallback,omitempty"`
}

// Button is a reply button.
type Button struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// Section is a group of list rows or of products.
type Section struct {
	Title string   `json:"title"`
	Rows  []Row    `json:"rows,omitempty"`
	SKUs  []string `json:"skus,omitempty"`
}

// Row is a list row.
type Row struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// OrderDetails is the payment request of an order.
type OrderDetails struct {
	ReferenceID string       `json:"reference_id"`
	Items       []CartLine   `json:"items"`
	Subtotal    broker.Money `json:"subtotal"`
	Tax         broker.Money `json:"tax"`
	Shipping    broker.Money `json:"shipping"`
	Total       broker.Money `json:"total"`
}

// OrderStatus is an order status update in the chat.
type OrderStatus struct {
	ReferenceID string `json:"reference_id"`
	Status      string `json:"status"` // processing | partially_shipped | shipped | completed | canceled
	Description string `json:"description,omitempty"`
}
