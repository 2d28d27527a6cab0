package whatsapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Notification is a webhook notification as Meta POSTs it.
type Notification struct {
	Object string  `json:"object"`
	Entry  []Entry `json:"entry"`
}

// Entry is one WhatsApp Business Account's share of a notification.
type Entry struct {
	// ID is the WhatsApp Business Account id (not the phone-number id).
	ID      string   `json:"id"`
	Changes []Change `json:"changes"`
}

// Change is one changed field of an entry. Only changes whose Field is
// [FieldMessages] carry a decoded Value; the value of any other field is kept
// verbatim in RawValue.
type Change struct {
	Value    *Value          `json:"-"`
	RawValue json.RawMessage `json:"-"`
	Field    string          `json:"-"`
}

// changeWire is the wire form of Change: Meta puts value before field.
type changeWire struct {
	Value json.RawMessage `json:"value,omitempty"`
	Field string          `json:"field"`
}

// UnmarshalJSON decodes a change, decoding the value only for the messages field.
func (c *Change) UnmarshalJSON(b []byte) error {
	var w changeWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Change{Field: w.Field}
	if w.Field != FieldMessages {
		if len(w.Value) > 0 {
			c.RawValue = append(json.RawMessage(nil), w.Value...)
		}
		return nil
	}
	if len(w.Value) == 0 || bytes.Equal(bytes.TrimSpace(w.Value), []byte("null")) {
		return fmt.Errorf("change %q without value", w.Field)
	}
	c.Value = new(Value)
	if err := json.Unmarshal(w.Value, c.Value); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	return nil
}

// MarshalJSON encodes a change in the wire order (value, then field).
func (c Change) MarshalJSON() ([]byte, error) {
	w := changeWire{Field: c.Field, Value: c.RawValue}
	if c.Value != nil {
		v, err := marshalNoEscape(c.Value)
		if err != nil {
			return nil, err
		}
		w.Value = v
	}
	return marshalNoEscape(w)
}

// Value is the value of a "messages" change: inbound messages, statuses of
// outbound messages and payments, and asynchronous errors.
type Value struct {
	MessagingProduct string    `json:"messaging_product"`
	Metadata         Metadata  `json:"metadata"`
	Contacts         []Contact `json:"contacts,omitempty"`
	Messages         []Message `json:"messages,omitempty"`
	Statuses         []Status  `json:"statuses,omitempty"`
	Errors           []Error   `json:"errors,omitempty"`
}

// Metadata identifies the business phone number a change belongs to.
type Metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// Contact is the sender of inbound messages.
type Contact struct {
	Profile Profile `json:"profile"`
	// WaID is the WhatsApp id, in practice the phone number in digits. It may
	// be absent for users who adopted a username.
	WaID string `json:"wa_id,omitempty"`
	// UserID is the business-scoped user id (BSUID), e.g. "IN.1410…".
	UserID string `json:"user_id,omitempty"`
	// ParentUserID is the parent BSUID, which spans the business portfolio.
	ParentUserID    string `json:"parent_user_id,omitempty"`
	IdentityKeyHash string `json:"identity_key_hash,omitempty"`
}

// Profile is the user's self-chosen WhatsApp profile.
type Profile struct {
	Name     string `json:"name,omitempty"`
	Username string `json:"username,omitempty"`
}

// Message types that the adapter decodes into typed payloads. Other types
// (image, audio, sticker, reaction, …) are kept as the type string only.
const (
	TypeText        = "text"
	TypeInteractive = "interactive"
	TypeButton      = "button"
	TypeOrder       = "order"
	TypeLocation    = "location"
	TypeSystem      = "system"
	TypeUnsupported = "unsupported"
	TypeUnknown     = "unknown"
	TypeTemplate    = "template"
)

// Interactive reply types of inbound interactive messages.
const (
	ReplyTypeButton = "button_reply"
	ReplyTypeList   = "list_reply"
	ReplyTypeNFM    = "nfm_reply"
)

// Message is an inbound user message.
type Message struct {
	// From is the sender's wa_id (phone digits). It may be absent for username
	// users; then FromUserID carries the BSUID. See [Message.SenderID].
	From       string `json:"from,omitempty"`
	FromUserID string `json:"from_user_id,omitempty"`
	// FromParentUserID is the sender's parent BSUID, when given.
	FromParentUserID string    `json:"from_parent_user_id,omitempty"`
	ID               string    `json:"id"`
	Timestamp        Timestamp `json:"timestamp"`
	Type             string    `json:"type"`

	Context     *Context          `json:"context,omitempty"`
	Text        *Text             `json:"text,omitempty"`
	Interactive *InteractiveReply `json:"interactive,omitempty"`
	Button      *TemplateButton   `json:"button,omitempty"`
	Order       *Order            `json:"order,omitempty"`
	Location    *Location         `json:"location,omitempty"`
	System      *System           `json:"system,omitempty"`
	Referral    *Referral         `json:"referral,omitempty"`
	Errors      []Error           `json:"errors,omitempty"`
}

// SenderID returns the sender's wa_id, or its BSUID when the wa_id is absent.
func (m *Message) SenderID() string {
	if m.From != "" {
		return m.From
	}
	return m.FromUserID
}

// Context is the reply context of a message (the message it answers, or the
// product it asks about).
type Context struct {
	From                string           `json:"from,omitempty"`
	ID                  string           `json:"id,omitempty"`
	Forwarded           bool             `json:"forwarded,omitempty"`
	FrequentlyForwarded bool             `json:"frequently_forwarded,omitempty"`
	ReferredProduct     *ReferredProduct `json:"referred_product,omitempty"`
}

// ReferredProduct is the product a "Message business" button refers to.
type ReferredProduct struct {
	CatalogID         string `json:"catalog_id"`
	ProductRetailerID string `json:"product_retailer_id"`
}

// Text is the payload of a text message.
type Text struct {
	Body string `json:"body"`
}

// InteractiveReply is the payload of an inbound interactive message: the
// shopper's answer to reply buttons, a list, or a Flow.
type InteractiveReply struct {
	Type        string       `json:"type"`
	ButtonReply *ButtonReply `json:"button_reply,omitempty"`
	ListReply   *ListReply   `json:"list_reply,omitempty"`
	NFMReply    *NFMReply    `json:"nfm_reply,omitempty"`
}

// ReplyID returns the id of the chosen button or list row, or "".
func (r *InteractiveReply) ReplyID() string {
	switch {
	case r == nil:
		return ""
	case r.ButtonReply != nil:
		return r.ButtonReply.ID
	case r.ListReply != nil:
		return r.ListReply.ID
	}
	return ""
}

// ButtonReply is the reply button a shopper tapped.
type ButtonReply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// ListReply is the list row a shopper picked.
type ListReply struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// NFMReply is a Flow response; ResponseJSON is JSON inside a string.
type NFMReply struct {
	Name         string `json:"name,omitempty"`
	Body         string `json:"body,omitempty"`
	ResponseJSON string `json:"response_json"`
}

// TemplateButton is the payload of a template quick-reply ("button" type).
type TemplateButton struct {
	Payload string `json:"payload"`
	Text    string `json:"text"`
}

// Order is a cart the shopper sent from the catalog.
type Order struct {
	CatalogID    string        `json:"catalog_id"`
	Text         string        `json:"text,omitempty"`
	ProductItems []ProductItem `json:"product_items"`
}

// ProductItem is one line of an inbound order. ItemPrice is the unit price in
// major units (rupees) as a decimal JSON number, e.g. 289.5; convert it with
// [ProductItem.UnitPrice].
type ProductItem struct {
	ProductRetailerID string      `json:"product_retailer_id"`
	Quantity          Quantity    `json:"quantity"`
	ItemPrice         json.Number `json:"item_price"`
	Currency          string      `json:"currency"`
}

// Quantity is the quantity of an order line. Meta documents an integer;
// anything else the wire carries (a fraction, 1e30, a string, null) decodes
// to -1 instead of failing the whole notification, so that [Order.Lines]
// refuses that one order and the batch's other events are still handled.
type Quantity int

// UnmarshalJSON implements json.Unmarshaler.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	*q = -1
	var n json.Number
	if len(b) == 0 || b[0] == '"' || json.Unmarshal(b, &n) != nil {
		return nil // a string or a non-number: not a quantity
	}
	if v, err := strconv.ParseInt(n.String(), 10, 64); err == nil && v >= math.MinInt32 && v <= math.MaxInt32 {
		*q = Quantity(v)
	}
	return nil
}

// UnitPrice converts ItemPrice to minor units (offset 100) exactly.
func (p ProductItem) UnitPrice() (Amount, error) {
	return ParseAmount(p.ItemPrice.String())
}

// Location is a shared location.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
	URL       string  `json:"url,omitempty"`
}

// System is a system message: type "user_changed_number" gives the new
// wa_id (and the new BSUIDs, which change with the number);
// "user_changed_user_id" gives the new BSUIDs only. Both name the previous
// BSUIDs. Body is text for people that holds the numbers: never stored.
type System struct {
	Body     string `json:"body,omitempty"`
	Identity string `json:"identity,omitempty"`
	WaID     string `json:"wa_id,omitempty"`
	Type     string `json:"type,omitempty"`
	Customer string `json:"customer,omitempty"`
	// UserID and ParentUserID are the new BSUID and parent BSUID.
	UserID       string `json:"user_id,omitempty"`
	ParentUserID string `json:"parent_user_id,omitempty"`
	// PreviousUserID and PreviousParentUserID are the ones they replace.
	PreviousUserID       string `json:"previous_user_id,omitempty"`
	PreviousParentUserID string `json:"previous_parent_user_id,omitempty"`
}

// System message types that move a user's identifiers.
const (
	SystemUserChangedNumber = "user_changed_number"
	SystemUserChangedUserID = "user_changed_user_id"
)

// Referral describes the Click-to-WhatsApp ad a conversation started from.
type Referral struct {
	SourceURL  string `json:"source_url,omitempty"`
	SourceID   string `json:"source_id,omitempty"`
	SourceType string `json:"source_type,omitempty"`
	Headline   string `json:"headline,omitempty"`
	Body       string `json:"body,omitempty"`
	MediaType  string `json:"media_type,omitempty"`
	CTWAClID   string `json:"ctwa_clid,omitempty"`
}

// Error is an error in a notification: on a failed status, an unsupported
// message, or the value itself.
type Error struct {
	Code      int        `json:"code"`
	Title     string     `json:"title,omitempty"`
	Message   string     `json:"message,omitempty"`
	ErrorData *ErrorData `json:"error_data,omitempty"`
	Href      string     `json:"href,omitempty"`
}

// ErrorData carries the details of an error.
type ErrorData struct {
	Details string `json:"details,omitempty"`
}

// Message delivery statuses, in [StatusRank] order, plus the terminal failure.
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
	StatusPlayed    = "played"
	StatusFailed    = "failed"
)

// Payment statuses of a type "payment" status.
const (
	StatusType       = "payment"
	PaymentPending   = "pending"
	PaymentCaptured  = "captured"
	TxnStatusSuccess = "success"
	TxnStatusFailed  = "failed"
	TxnStatusPending = "pending"
)

// Status is a status update: of an outbound message (sent, delivered, read,
// played, failed), or of a payment when Type is "payment" (pending, captured).
type Status struct {
	ID                     string        `json:"id"`
	Status                 string        `json:"status"`
	Timestamp              Timestamp     `json:"timestamp"`
	RecipientID            string        `json:"recipient_id,omitempty"`
	RecipientUserID        string        `json:"recipient_user_id,omitempty"`
	RecipientType          string        `json:"recipient_type,omitempty"`
	RecipientParticipantID string        `json:"recipient_participant_id,omitempty"`
	Type                   string        `json:"type,omitempty"`
	BizOpaqueCallbackData  string        `json:"biz_opaque_callback_data,omitempty"`
	Conversation           *Conversation `json:"conversation,omitempty"`
	Pricing                *Pricing      `json:"pricing,omitempty"`
	Payment                *Payment      `json:"payment,omitempty"`
	Errors                 []Error       `json:"errors,omitempty"`
}

// IsPayment reports whether the status is a payment update.
func (s *Status) IsPayment() bool { return s.Type == StatusType }

// Conversation is the conversation a status belongs to (mostly omitted since v24).
type Conversation struct {
	ID                  string              `json:"id,omitempty"`
	ExpirationTimestamp Timestamp           `json:"expiration_timestamp,omitempty"`
	Origin              *ConversationOrigin `json:"origin,omitempty"`
}

// ConversationOrigin is the conversation category.
type ConversationOrigin struct {
	Type string `json:"type,omitempty"`
}

// Pricing is the pricing information of a status.
type Pricing struct {
	Billable     bool   `json:"billable,omitempty"`
	PricingModel string `json:"pricing_model,omitempty"`
	Type         string `json:"type,omitempty"`
	Category     string `json:"category,omitempty"`
}

// Payment is the payment of a type "payment" status, and of a payment lookup.
type Payment struct {
	ReferenceID string       `json:"reference_id"`
	Amount      Amount       `json:"amount"`
	Currency    string       `json:"currency"`
	Transaction *Transaction `json:"transaction,omitempty"`
	Refunds     []Refund     `json:"refunds,omitempty"`
	Receipt     string       `json:"receipt,omitempty"`
}

// Transaction is a payment attempt at the payment gateway.
type Transaction struct {
	ID               string            `json:"id"`
	PGTransactionID  string            `json:"pg_transaction_id,omitempty"`
	Type             string            `json:"type"`
	Status           string            `json:"status"`
	CreatedTimestamp UnixTime          `json:"created_timestamp,omitempty"`
	UpdatedTimestamp UnixTime          `json:"updated_timestamp,omitempty"`
	Method           *PaymentMethod    `json:"method,omitempty"`
	Error            *TransactionError `json:"error,omitempty"`
}

// PaymentMethod is how the shopper paid (upi, card, wallet, netbanking).
type PaymentMethod struct {
	Type string `json:"type"`
}

// TransactionError explains a failed transaction.
type TransactionError struct {
	Code   StringLike `json:"code"`
	Reason string     `json:"reason"`
}

// Refund is a refund of a payment.
type Refund struct {
	ID               string   `json:"id"`
	Amount           Amount   `json:"amount"`
	SpeedProcessed   string   `json:"speed_processed,omitempty"`
	Status           string   `json:"status"`
	CreatedTimestamp UnixTime `json:"created_timestamp,omitempty"`
	UpdatedTimestamp UnixTime `json:"updated_timestamp,omitempty"`
}

// Timestamp is Unix seconds. On the wire it is a decimal string
// ("1749416383"); decoding also tolerates a JSON number. It encodes as a
// string.
type Timestamp int64

// Time returns the timestamp as a time.Time (the zero Time when unset).
func (t Timestamp) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(int64(t), 0).UTC()
}

// MarshalJSON encodes the timestamp as a decimal string.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(t), 10)), nil
}

// UnmarshalJSON decodes a string or number of Unix seconds.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	v, err := parseUnix(b)
	if err != nil {
		return err
	}
	*t = Timestamp(v)
	return nil
}

// UnixTime is Unix seconds that encode as a JSON number (payment transaction
// timestamps); decoding also tolerates a decimal string.
type UnixTime int64

// Time returns the time as a time.Time (the zero Time when unset).
func (t UnixTime) Time() time.Time { return Timestamp(t).Time() }

// UnmarshalJSON decodes a string or number of Unix seconds.
func (t *UnixTime) UnmarshalJSON(b []byte) error {
	v, err := parseUnix(b)
	if err != nil {
		return err
	}
	*t = UnixTime(v)
	return nil
}

func parseUnix(b []byte) (int64, error) {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return 0, nil
	}
	if len(s) >= 2 && s[0] == '"' {
		uq, err := strconv.Unquote(s)
		if err != nil {
			return 0, fmt.Errorf("timestamp: not a string")
		}
		s = uq
		if s == "" {
			return 0, nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("timestamp: not a non-negative integer")
	}
	return v, nil
}

// StringLike is a string that also accepts a JSON number on decoding (for
// fields Meta documents as strings but that are sometimes numeric).
type StringLike string

// UnmarshalJSON decodes a JSON string or number.
func (s *StringLike) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = StringLike(v)
		return nil
	}
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expected a string or a number")
	}
	*s = StringLike(n.String())
	return nil
}
