package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// OutboundMessage is the body of a Send API request
// (POST /{phone-number-id}/messages). Build it with the New* functions, which
// apply the Cloud API limits, rather than by hand.
type OutboundMessage struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type,omitempty"`
	// To is the recipient's phone number, always "+" and digits.
	To string `json:"to,omitempty"`
	// Recipient is the recipient's BSUID, used instead of To.
	Recipient             string        `json:"recipient,omitempty"`
	Type                  string        `json:"type,omitempty"`
	Context               *ReplyContext `json:"context,omitempty"`
	BizOpaqueCallbackData string        `json:"biz_opaque_callback_data,omitempty"`

	Text        *TextBody    `json:"text,omitempty"`
	Interactive *Interactive `json:"interactive,omitempty"`
	Template    *Template    `json:"template,omitempty"`
	// Document is the payload of a document message (an uploaded file).
	Document *DocumentBody `json:"document,omitempty"`

	// Status and MessageID make a mark-as-read request; see [NewMarkRead].
	Status    string `json:"status,omitempty"`
	MessageID string `json:"message_id,omitempty"`
}

// ReplyContext quotes an earlier message.
type ReplyContext struct {
	MessageID string `json:"message_id"`
}

// TextBody is the payload of a text message.
type TextBody struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
}

// Interactive message types.
const (
	InteractiveButton          = "button"
	InteractiveList            = "list"
	InteractiveProduct         = "product"
	InteractiveProductList     = "product_list"
	InteractiveCatalogMessage  = "catalog_message"
	InteractiveLocationRequest = "location_request_message"
	InteractiveOrderDetails    = "order_details"
	InteractiveOrderStatus     = "order_status"
)

// Interactive is the payload of an interactive message.
type Interactive struct {
	Type   string             `json:"type"`
	Header *InteractiveHeader `json:"header,omitempty"`
	Body   *InteractiveText   `json:"body,omitempty"`
	Footer *InteractiveText   `json:"footer,omitempty"`
	Action *Action            `json:"action,omitempty"`
}

// InteractiveHeader is a text header (media headers are not used by Sieve).
type InteractiveHeader struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

// InteractiveText is a body or footer.
type InteractiveText struct {
	Text string `json:"text"`
}

// Action is the action of an interactive message. Which fields are set
// depends on the interactive type.
type Action struct {
	// Button is the label of the button that opens a list.
	Button string `json:"button,omitempty"`
	// Buttons are the reply buttons of a "button" message.
	Buttons           []ReplyButton `json:"buttons,omitempty"`
	CatalogID         string        `json:"catalog_id,omitempty"`
	ProductRetailerID string        `json:"product_retailer_id,omitempty"`
	Sections          []Section     `json:"sections,omitempty"`
	// Name is catalog_message, send_location, review_and_pay or review_order.
	Name       string            `json:"name,omitempty"`
	Parameters *ActionParameters `json:"parameters,omitempty"`
}

// ReplyButton is one reply button.
type ReplyButton struct {
	Type  string `json:"type"`
	Reply Reply  `json:"reply"`
}

// Reply is the id and title of a reply button.
type Reply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// Section is a section of a list (Rows) or of a product list (ProductItems).
type Section struct {
	Title        string       `json:"title,omitempty"`
	Rows         []Row        `json:"rows,omitempty"`
	ProductItems []ProductRef `json:"product_items,omitempty"`
}

// Row is a list row.
type Row struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// ProductRef names a catalog product.
type ProductRef struct {
	ProductRetailerID string `json:"product_retailer_id"`
}

// ActionParameters are the parameters of catalog_message, order_details and
// order_status actions; each uses a subset.
type ActionParameters struct {
	// ThumbnailProductRetailerID is the catalog_message thumbnail.
	ThumbnailProductRetailerID string `json:"thumbnail_product_retailer_id,omitempty"`

	ReferenceID     string           `json:"reference_id,omitempty"`
	Type            string           `json:"type,omitempty"`
	PaymentType     string           `json:"payment_type,omitempty"`
	PaymentSettings []PaymentSetting `json:"payment_settings,omitempty"`
	Currency        string           `json:"currency,omitempty"`
	TotalAmount     *Amount          `json:"total_amount,omitempty"`
	Beneficiaries   []Beneficiary    `json:"beneficiaries,omitempty"`
	Order           *PaymentOrder    `json:"order,omitempty"`
	// Country is the address_message form's country (IN).
	Country string `json:"country,omitempty"`
}

// PaymentSetting selects how an order_details message is paid.
type PaymentSetting struct {
	Type           string          `json:"type"`
	PaymentGateway *PaymentGateway `json:"payment_gateway,omitempty"`
}

// PaymentGateway names a payment configuration linked in WhatsApp Manager.
type PaymentGateway struct {
	Type              string           `json:"type"`
	ConfigurationName string           `json:"configuration_name"`
	Razorpay          *RazorpayOptions `json:"razorpay,omitempty"`
}

// RazorpayOptions are echoed to Razorpay. Never put personal data in them.
type RazorpayOptions struct {
	Receipt string            `json:"receipt,omitempty"`
	Notes   map[string]string `json:"notes,omitempty"`
}

// Beneficiary is the shipping beneficiary of physical goods. Meta passes it to
// the payment gateway for compliance; it is personal data.
type Beneficiary struct {
	Name         string `json:"name"`
	AddressLine1 string `json:"address_line1"`
	AddressLine2 string `json:"address_line2,omitempty"`
	City         string `json:"city"`
	State        string `json:"state"`
	Country      string `json:"country"`
	PostalCode   string `json:"postal_code"`
}

// PaymentOrder is the order of an order_details message (Status "pending",
// items and amounts) or of an order_status message (Status and Description).
type PaymentOrder struct {
	Status      string           `json:"status"`
	Description string           `json:"description,omitempty"`
	Type        string           `json:"type,omitempty"`
	CatalogID   string           `json:"catalog_id,omitempty"`
	Expiration  *OrderExpiration `json:"expiration,omitempty"`
	Items       []PaymentItem    `json:"items,omitempty"`
	Subtotal    *Amount          `json:"subtotal,omitempty"`
	Tax         *Charge          `json:"tax,omitempty"`
	Shipping    *Charge          `json:"shipping,omitempty"`
	Discount    *Charge          `json:"discount,omitempty"`
}

// OrderExpiration is when an unpaid order_details expires (Unix seconds as a
// string, at least 300 s ahead).
type OrderExpiration struct {
	Timestamp   string `json:"timestamp"`
	Description string `json:"description,omitempty"`
}

// PaymentItem is a line of an order_details order.
type PaymentItem struct {
	RetailerID      string  `json:"retailer_id,omitempty"`
	Name            string  `json:"name"`
	Amount          Amount  `json:"amount"`
	SaleAmount      *Amount `json:"sale_amount,omitempty"`
	Quantity        int     `json:"quantity"`
	CountryOfOrigin string  `json:"country_of_origin,omitempty"`
	ImporterName    string  `json:"importer_name,omitempty"`
	ImporterAddress string  `json:"importer_address,omitempty"`
}

// UnitAmount is the price the item is charged at: SaleAmount when set,
// otherwise Amount.
func (p PaymentItem) UnitAmount() Amount {
	if p.SaleAmount != nil {
		return *p.SaleAmount
	}
	return p.Amount
}

// Charge is a tax, shipping or discount amount with an optional description.
type Charge struct {
	Value               int64  `json:"value"`
	Offset              int    `json:"offset"`
	Description         string `json:"description,omitempty"`
	DiscountProgramName string `json:"discount_program_name,omitempty"`
}

// Amount returns the charge's amount.
func (c *Charge) Amount() Amount {
	if c == nil {
		return Paise(0)
	}
	return Amount{Value: c.Value, Offset: c.Offset}
}

// Template is the payload of a template message.
type Template struct {
	Name       string              `json:"name"`
	Language   TemplateLanguage    `json:"language"`
	Components []TemplateComponent `json:"components,omitempty"`
}

// TemplateLanguage is a template's language.
type TemplateLanguage struct {
	Code   string `json:"code"`
	Policy string `json:"policy,omitempty"`
}

// TemplateComponent fills a template's header, body or button.
type TemplateComponent struct {
	Type       string              `json:"type"`
	SubType    string              `json:"sub_type,omitempty"`
	Index      string              `json:"index,omitempty"`
	Parameters []TemplateParameter `json:"parameters,omitempty"`
}

// TemplateParameter is a value of a template component.
type TemplateParameter struct {
	Type          string `json:"type"`
	ParameterName string `json:"parameter_name,omitempty"`
	Text          string `json:"text,omitempty"`
	Payload       string `json:"payload,omitempty"`
}

// Marshal encodes the message exactly as [Client] sends it: compact JSON with
// non-ASCII text and '&', '<', '>' kept literal.
func (m *OutboundMessage) Marshal() ([]byte, error) {
	b, err := marshalNoEscape(m)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: encode message: %w", err)
	}
	return b, nil
}

// marshalNoEscape is json.Marshal without HTML escaping.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// InReplyTo quotes the message with the given wamid and returns m.
func (m *OutboundMessage) InReplyTo(wamid string) *OutboundMessage {
	if wamid != "" {
		m.Context = &ReplyContext{MessageID: wamid}
	}
	return m
}

// WithCallbackData sets biz_opaque_callback_data (≤512 characters), which
// statuses echo back to every app subscribed to the account: use an opaque
// token, never personal data. It returns m.
func (m *OutboundMessage) WithCallbackData(token string) *OutboundMessage {
	m.BizOpaqueCallbackData = token
	return m
}

// ErrInvalidRecipient is returned for a recipient that is neither a phone
// number nor a BSUID.
var ErrInvalidRecipient = errors.New("whatsapp: invalid recipient")

// IsBSUID reports whether id is a business-scoped user id ("IN.1410…")
// rather than a phone number.
func IsBSUID(id string) bool { return strings.Contains(id, ".") }

// NormalizePhone returns a phone number as "+" and digits. It accepts the
// forms people and WhatsApp write ("919811112222", "+91 98111-12222",
// "(+91) 98111 12222") and requires 8 to 15 digits (E.164).
func NormalizePhone(phone string) (string, error) {
	var b strings.Builder
	b.Grow(len(phone) + 1)
	b.WriteByte('+')
	digits := 0
	for i := 0; i < len(phone); i++ {
		c := phone[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
			digits++
		case c == '+' && digits == 0, c == ' ', c == '-', c == '(', c == ')':
		default:
			return "", fmt.Errorf("%w: unexpected character in phone number", ErrInvalidRecipient)
		}
	}
	if digits < 8 || digits > 15 {
		return "", fmt.Errorf("%w: phone number must have 8 to 15 digits", ErrInvalidRecipient)
	}
	return b.String(), nil
}

// maxBSUIDLen bounds a business-scoped user id.
const maxBSUIDLen = 128

func validBSUID(id string) bool {
	if len(id) < 3 || len(id) > maxBSUIDLen || !IsBSUID(id) || id[0] == '.' || id[len(id)-1] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newMessage starts a message to a phone number or a BSUID.
func newMessage(to, typ string) (*OutboundMessage, error) {
	m := &OutboundMessage{MessagingProduct: MessagingProduct, RecipientType: "individual", Type: typ}
	if IsBSUID(to) {
		if !validBSUID(to) {
			return nil, fmt.Errorf("%w: malformed BSUID", ErrInvalidRecipient)
		}
		m.Recipient = to
		return m, nil
	}
	p, err := NormalizePhone(to)
	if err != nil {
		return nil, err
	}
	m.To = p
	return m, nil
}

// Truncate shortens s to at most max characters (runes), replacing the tail
// with "…" when it cuts, and never splitting a UTF-8 sequence. Invalid UTF-8
// is replaced first.
func Truncate(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if max <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return strings.TrimRight(s[:i], " ") + "…"
		}
		n++
	}
	return s
}

// Limits of the Send API (characters are runes).
const (
	MaxTextBody         = 4096
	MaxInteractiveBody  = 1024
	MaxListBody         = 4096
	MaxHeaderText       = 60
	MaxFooterText       = 60
	MaxButtons          = 3
	MaxButtonTitle      = 20
	MaxButtonID         = 256
	MaxListButton       = 20
	MaxListSections     = 10
	MaxListRows         = 10
	MaxRowID            = 200
	MaxRowTitle         = 24
	MaxRowDescription   = 72
	MaxSectionTitle     = 24
	MaxProductSections  = 10
	MaxProducts         = 30
	MaxReferenceID      = 35
	MaxItemName         = 60
	MaxStatusDesc       = 120
	MaxCallbackData     = 512
	MaxConfigurationLen = 60
	// MaxUPIAmountPaise is the UPI cap of ₹5,00,000.
	MaxUPIAmountPaise = 5_00_000_00
)

func optionalText(s string, max int) *InteractiveText {
	if s == "" {
		return nil
	}
	return &InteractiveText{Text: Truncate(s, max)}
}

func optionalHeader(s string) *InteractiveHeader {
	if s == "" {
		return nil
	}
	return &InteractiveHeader{Type: "text", Text: Truncate(s, MaxHeaderText)}
}

// finish validates a built message.
func finish(m *OutboundMessage) (*OutboundMessage, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// NewText builds a text message. A body over 4096 characters is truncated.
func NewText(to, body string) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeText)
	if err != nil {
		return nil, err
	}
	m.Text = &TextBody{Body: Truncate(body, MaxTextBody)}
	return finish(m)
}

// Button is a reply button to offer: ID comes back in the button_reply.
type Button struct {
	ID    string
	Title string
}

// ButtonMessage is the content of a reply-buttons message.
type ButtonMessage struct {
	Header  string
	Body    string
	Footer  string
	Buttons []Button
}

// NewReplyButtons builds an interactive "button" message with 1 to 3 reply
// buttons. Titles are truncated to 20 characters (and must stay unique);
// texts are truncated to their limits; ids are never truncated.
func NewReplyButtons(to string, b ButtonMessage) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	a := &Action{}
	for _, btn := range b.Buttons {
		a.Buttons = append(a.Buttons, ReplyButton{Type: "reply", Reply: Reply{ID: btn.ID, Title: Truncate(btn.Title, MaxButtonTitle)}})
	}
	m.Interactive = &Interactive{
		Type:   InteractiveButton,
		Header: optionalHeader(b.Header),
		Body:   &InteractiveText{Text: Truncate(b.Body, MaxInteractiveBody)},
		Footer: optionalText(b.Footer, MaxFooterText),
		Action: a,
	}
	return finish(m)
}

// ListMessage is the content of a list message.
type ListMessage struct {
	Header string
	Body   string
	Footer string
	// Button is the label of the button that opens the list.
	Button   string
	Sections []Section
}

// NewList builds an interactive "list" message: at most 10 sections and 10
// rows in total; with several sections each needs a title. Row titles (24),
// descriptions (72), section titles (24), the button label (20) and texts are
// truncated; ids are not.
func NewList(to string, l ListMessage) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	sections := make([]Section, 0, len(l.Sections))
	for _, s := range l.Sections {
		rows := make([]Row, 0, len(s.Rows))
		for _, r := range s.Rows {
			rows = append(rows, Row{ID: r.ID, Title: Truncate(r.Title, MaxRowTitle), Description: Truncate(r.Description, MaxRowDescription)})
		}
		sections = append(sections, Section{Title: Truncate(s.Title, MaxSectionTitle), Rows: rows})
	}
	m.Interactive = &Interactive{
		Type:   InteractiveList,
		Header: optionalHeader(l.Header),
		Body:   &InteractiveText{Text: Truncate(l.Body, MaxListBody)},
		Footer: optionalText(l.Footer, MaxFooterText),
		Action: &Action{Button: Truncate(l.Button, MaxListButton), Sections: sections},
	}
	return finish(m)
}

// ProductSection is a titled group of catalog products.
type ProductSection struct {
	Title              string
	ProductRetailerIDs []string
}

// ProductListMessage is the content of a multi-product message.
type ProductListMessage struct {
	// Header is required.
	Header    string
	Body      string
	Footer    string
	CatalogID string
	Sections  []ProductSection
}

// NewProductList builds an interactive "product_list" message: a required
// text header, 1 to 10 titled sections and 1 to 30 products in total.
func NewProductList(to string, p ProductListMessage) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	sections := make([]Section, 0, len(p.Sections))
	for _, s := range p.Sections {
		items := make([]ProductRef, 0, len(s.ProductRetailerIDs))
		for _, id := range s.ProductRetailerIDs {
			items = append(items, ProductRef{ProductRetailerID: id})
		}
		sections = append(sections, Section{Title: Truncate(s.Title, MaxSectionTitle), ProductItems: items})
	}
	m.Interactive = &Interactive{
		Type:   InteractiveProductList,
		Header: optionalHeader(p.Header),
		Body:   &InteractiveText{Text: Truncate(p.Body, MaxInteractiveBody)},
		Footer: optionalText(p.Footer, MaxFooterText),
		Action: &Action{CatalogID: p.CatalogID, Sections: sections},
	}
	if m.Interactive.Header == nil {
		return nil, &ValidationError{Field: "interactive.header", Problem: "required for product_list"}
	}
	return finish(m)
}

// NewCatalogMessage builds an interactive "catalog_message" (a "View
// catalog" button). thumbnailSKU may be empty.
func NewCatalogMessage(to, body, footer, thumbnailSKU string) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	a := &Action{Name: "catalog_message"}
	if thumbnailSKU != "" {
		a.Parameters = &ActionParameters{ThumbnailProductRetailerID: thumbnailSKU}
	}
	m.Interactive = &Interactive{
		Type:   InteractiveCatalogMessage,
		Body:   &InteractiveText{Text: Truncate(body, MaxInteractiveBody)},
		Footer: optionalText(footer, MaxFooterText),
		Action: a,
	}
	return finish(m)
}

// NewLocationRequest builds an interactive "location_request_message" (a
// "Send location" button).
func NewLocationRequest(to, body string) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	m.Interactive = &Interactive{
		Type:   InteractiveLocationRequest,
		Body:   &InteractiveText{Text: Truncate(body, MaxInteractiveBody)},
		Action: &Action{Name: "send_location"},
	}
	return finish(m)
}

// Order statuses of order_status messages.
const (
	OrderPending          = "pending"
	OrderProcessing       = "processing"
	OrderPartiallyShipped = "partially_shipped"
	OrderShipped          = "shipped"
	OrderCompleted        = "completed"
	OrderCanceled         = "canceled"
)

// OrderStatusUpdate is the content of an order_status message.
type OrderStatusUpdate struct {
	Body        string
	Footer      string
	ReferenceID string
	// Status is processing, partially_shipped, shipped, completed or canceled.
	Status string
	// Description is optional and truncated to 120 characters.
	Description string
}

// NewOrderStatus builds an interactive "order_status" message
// (action review_order) updating the order page of an order_details.
func NewOrderStatus(to string, u OrderStatusUpdate) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	m.Interactive = &Interactive{
		Type:   InteractiveOrderStatus,
		Body:   &InteractiveText{Text: Truncate(u.Body, MaxInteractiveBody)},
		Footer: optionalText(u.Footer, MaxFooterText),
		Action: &Action{
			Name: "review_order",
			Parameters: &ActionParameters{
				ReferenceID: u.ReferenceID,
				Order:       &PaymentOrder{Status: u.Status, Description: Truncate(u.Description, MaxStatusDesc)},
			},
		},
	}
	return finish(m)
}

// NewTemplate builds a template message.
func NewTemplate(to, name, languageCode string, components ...TemplateComponent) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeTemplate)
	if err != nil {
		return nil, err
	}
	m.Template = &Template{Name: name, Language: TemplateLanguage{Code: languageCode}, Components: components}
	return finish(m)
}

// NewMarkRead builds the request that marks an inbound message (and every
// earlier one) as read.
func NewMarkRead(messageID string) *OutboundMessage {
	return &OutboundMessage{MessagingProduct: MessagingProduct, Status: StatusRead, MessageID: messageID}
}
