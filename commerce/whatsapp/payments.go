package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Order_details parameter values.
const (
	GoodsPhysical        = "physical-goods"
	GoodsDigital         = "digital-goods"
	GatewayRazorpay      = "razorpay"
	PaymentTypeGateway   = "payment_gateway"
	ActionReviewAndPay   = "review_and_pay"
	ActionReviewOrder    = "review_order"
	ActionSendLocation   = "send_location"
	ActionCatalogMessage = "catalog_message"
)

// ValidReferenceID reports whether id is a valid order_details reference_id:
// 1 to 35 characters of [A-Za-z0-9_.-]. It must also be unique per message and
// must not encode personal data.
func ValidReferenceID(id string) bool {
	if id == "" || len(id) > MaxReferenceID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// OrderDetails is the content of an order_details ("Review and pay") message.
// The builder computes the subtotal and the total from the items and charges.
type OrderDetails struct {
	Header string
	Body   string
	Footer string
	// ReferenceID identifies the payment; see [ValidReferenceID].
	ReferenceID string
	// GoodsType defaults to "physical-goods".
	GoodsType string
	// Gateway defaults to "razorpay"; ConfigurationName is required.
	Gateway           string
	ConfigurationName string
	CatalogID         string
	Items             []PaymentItem
	Tax               Charge
	Shipping          *Charge
	Discount          *Charge
	Expiration        *OrderExpiration
	Beneficiaries     []Beneficiary
}

// NewOrderDetails builds an interactive "order_details" message (action
// review_and_pay) in INR with a payment-gateway payment setting. The subtotal
// is Σ unit amount × quantity and the total subtotal + tax + shipping −
// discount; the result is checked with [ValidateOrderDetails].
func NewOrderDetails(to string, d OrderDetails) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	goods := d.GoodsType
	if goods == "" {
		goods = GoodsPhysical
	}
	gw := d.Gateway
	if gw == "" {
		gw = GatewayRazorpay
	}
	items := make([]PaymentItem, len(d.Items))
	copy(items, d.Items)
	for i := range items {
		items[i].Name = Truncate(items[i].Name, MaxItemName)
	}
	subtotal, err := itemsSubtotal(items)
	if err != nil {
		return nil, err
	}
	tax := d.Tax
	if tax.Offset == 0 && tax.Value == 0 {
		tax.Offset = broker.OffsetINR
	}
	total, err := orderTotal(subtotal, &tax, d.Shipping, d.Discount)
	if err != nil {
		return nil, err
	}
	m.Interactive = &Interactive{
		Type:   InteractiveOrderDetails,
		Header: optionalHeader(d.Header),
		Body:   &InteractiveText{Text: Truncate(d.Body, MaxInteractiveBody)},
		Footer: optionalText(d.Footer, MaxFooterText),
		Action: &Action{
			Name: ActionReviewAndPay,
			Parameters: &ActionParameters{
				ReferenceID: d.ReferenceID,
				Type:        goods,
				PaymentSettings: []PaymentSetting{{
					Type:           PaymentTypeGateway,
					PaymentGateway: &PaymentGateway{Type: gw, ConfigurationName: d.ConfigurationName},
				}},
				Currency:      CurrencyINR,
				TotalAmount:   &total,
				Beneficiaries: d.Beneficiaries,
				Order: &PaymentOrder{
					Status:     OrderPending,
					CatalogID:  d.CatalogID,
					Expiration: d.Expiration,
					Items:      items,
					Subtotal:   &subtotal,
					Tax:        &tax,
					Shipping:   d.Shipping,
					Discount:   d.Discount,
				},
			},
		},
	}
	return finish(m)
}

func itemsSubtotal(items []PaymentItem) (Amount, error) {
	sum := Paise(0)
	for i, it := range items {
		line, ok := it.UnitAmount().Mul(int64(it.Quantity))
		if !ok {
			return Amount{}, &ValidationError{Field: fmt.Sprintf("order.items[%d]", i), Problem: "amount × quantity overflows"}
		}
		if sum, ok = sum.Add(line); !ok {
			return Amount{}, &ValidationError{Field: fmt.Sprintf("order.items[%d]", i), Problem: "offset is not 100 or subtotal overflows"}
		}
	}
	return sum, nil
}

func orderTotal(subtotal Amount, tax, shipping, discount *Charge) (Amount, error) {
	total, ok := subtotal.Add(tax.Amount())
	if ok {
		total, ok = total.Add(shipping.Amount())
	}
	if ok {
		d := discount.Amount()
		total, ok = total.Add(Amount{Value: -d.Value, Offset: d.Offset})
	}
	if !ok {
		return Amount{}, &ValidationError{Field: "total_amount", Problem: "charges overflow or do not use offset 100"}
	}
	return total, nil
}

// ValidateOrderDetails checks the parameters of an order_details action:
// reference_id syntax, goods type, INR currency, one payment-gateway setting
// with a configuration name, a pending order with 1 or more items whose names
// fit 60 characters and whose quantities are positive, every amount
// non-negative with offset 100, subtotal = Σ unit amount × quantity,
// total_amount = subtotal + tax + shipping − discount, and 0 < total ≤ the
// UPI cap.
func ValidateOrderDetails(p *ActionParameters) error {
	if p == nil {
		return &ValidationError{Field: "interactive.action.parameters", Problem: "required"}
	}
	verr := func(field, problem string) error {
		return &ValidationError{Field: "interactive.action.parameters." + field, Problem: problem}
	}
	if !ValidReferenceID(p.ReferenceID) {
		return verr("reference_id", "must be 1-35 characters of [A-Za-z0-9_.-]")
	}
	if p.Type != GoodsPhysical && p.Type != GoodsDigital {
		return verr("type", "must be physical-goods or digital-goods")
	}
	if p.Currency != CurrencyINR {
		return verr("currency", "must be INR")
	}
	if len(p.PaymentSettings) == 0 {
		return verr("payment_settings", "required")
	}
	for i, s := range p.PaymentSettings {
		f := fmt.Sprintf("payment_settings[%d]", i)
		if s.Type != PaymentTypeGateway || s.PaymentGateway == nil {
			return verr(f, "must be a payment_gateway setting")
		}
		switch s.PaymentGateway.Type {
		case "razorpay", "billdesk", "payu", "zaakpay":
		default:
			return verr(f+".payment_gateway.type", "unknown payment gateway")
		}
		if n := len([]rune(s.PaymentGateway.ConfigurationName)); n == 0 || n > MaxConfigurationLen {
			return verr(f+".payment_gateway.configuration_name", "must be 1-60 characters")
		}
	}
	o := p.Order
	if o == nil {
		return verr("order", "required")
	}
	if o.Status != OrderPending {
		return verr("order.status", "must be pending")
	}
	if len(o.Items) == 0 {
		return verr("order.items", "at least one item required")
	}
	checkAmount := func(field string, a Amount) error {
		if a.Offset != broker.OffsetINR {
			return verr(field, "offset must be 100")
		}
		if a.Value < 0 {
			return verr(field, "must not be negative")
		}
		return nil
	}
	for i, it := range o.Items {
		f := fmt.Sprintf("order.items[%d]", i)
		if n := len([]rune(it.Name)); n == 0 || n > MaxItemName {
			return verr(f+".name", "must be 1-60 characters")
		}
		if it.Quantity < 1 {
			return verr(f+".quantity", "must be positive")
		}
		if err := checkAmount(f+".amount", it.Amount); err != nil {
			return err
		}
		if it.SaleAmount != nil {
			if err := checkAmount(f+".sale_amount", *it.SaleAmount); err != nil {
				return err
			}
		}
	}
	if o.Subtotal == nil {
		return verr("order.subtotal", "required")
	}
	if o.Tax == nil {
		return verr("order.tax", "required")
	}
	for _, c := range []struct {
		field string
		a     *Amount
	}{
		{"order.subtotal", o.Subtotal},
		{"order.tax", ptr(o.Tax.Amount())},
		{"order.shipping", ptr(o.Shipping.Amount())},
		{"order.discount", ptr(o.Discount.Amount())},
		{"total_amount", p.TotalAmount},
	} {
		if c.a == nil {
			return verr(c.field, "required")
		}
		if err := checkAmount(c.field, *c.a); err != nil {
			return err
		}
	}
	sub, err := itemsSubtotal(o.Items)
	if err != nil {
		return err
	}
	if sub != *o.Subtotal {
		return verr("order.subtotal", "must equal the sum of item amount × quantity")
	}
	total, err := orderTotal(*o.Subtotal, o.Tax, o.Shipping, o.Discount)
	if err != nil {
		return err
	}
	if total != *p.TotalAmount {
		return verr("total_amount", "must equal subtotal + tax + shipping - discount")
	}
	if total.Value == 0 {
		return verr("total_amount", "must be positive")
	}
	if total.Value > MaxUPIAmountPaise {
		return verr("total_amount", "exceeds the UPI limit of 500000.00 INR")
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// paymentPaise is a payment's amount in paise, or -1 (which no order total
// equals) unless it is in offset 100 as WhatsApp Pay India sends it: a
// capture is compared exactly, never rescaled.
func paymentPaise(a Amount) int64 {
	if a.Offset != broker.OffsetINR || a.Value < 0 {
		return -1
	}
	return a.Value
}

// PaymentLookup confirms payments with the Cloud API's payment lookup
// (GET /{phone-number-id}/payments/{configuration-name}/{reference-id});
// it implements commerce.PaymentLookup.
type PaymentLookup struct {
	Client *Client
	// ConfigName is the payment configuration the order_details messages
	// name (WHATSAPP_PAYMENT_CONFIG).
	ConfigName string
}

var _ commerce.PaymentLookup = (*PaymentLookup)(nil)

// LookupPayment asks for the payment of referenceID at the store's
// phone-number id. A 404, or an answer without that reference, is
// broker.ENotFound; any other failure is EUnavailable (ask again later).
// Of several payment records, a captured one is preferred; its transaction
// status is "success" when any transaction succeeded.
func (l *PaymentLookup) LookupPayment(ctx context.Context, store, referenceID string) (commerce.Payment, error) {
	r, err := l.Client.PaymentLookup(ctx, store, l.ConfigName, referenceID)
	var se *SendError
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		return commerce.Payment{}, broker.ErrNotFound // a reference we would never have sent
	case errors.As(err, &se) && se.HTTPStatus == http.StatusNotFound:
		return commerce.Payment{}, broker.ErrNotFound
	case err != nil:
		return commerce.Payment{}, broker.Wrap(broker.EUnavailable, err, "payment lookup failed")
	}
	var rec *PaymentRecord
	for i := range r.Payments {
		p := &r.Payments[i]
		if p.ReferenceID != referenceID {
			continue
		}
		if rec == nil || (p.Captured() && !rec.Captured()) {
			rec = p
		}
	}
	if rec == nil {
		return commerce.Payment{}, broker.ErrNotFound
	}
	out := commerce.Payment{ReferenceID: rec.ReferenceID, Status: rec.Status, Currency: rec.Currency,
		Amount: paymentPaise(rec.Amount)}
	for _, t := range rec.Transactions {
		if out.TxnID == "" || t.Status == TxnStatusSuccess {
			out.TxnID, out.TxnStatus = t.ID, t.Status
		}
		if t.Status == TxnStatusSuccess {
			break
		}
	}
	return out, nil
}
