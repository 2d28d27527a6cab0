package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Ingester stores decoded events durably (commerce.Service).
type Ingester interface {
	Ingest(ctx context.Context, events []commerce.Event) error
}

// Receiver is the inbound side of the Cloud API: it checks the signature
// over the raw body, decodes every entry, change, message and status, turns
// them into domain events and stores them before the webhook is answered.
type Receiver struct {
	AppSecret  []byte
	VerifyTok  string
	Ingest     Ingester
	Log        *slog.Logger
	OnAsyncErr func(code int) // counts value-level errors (no personal data)
}

// VerifyToken compares the subscription handshake token in constant time.
func (r *Receiver) VerifyToken(token string) bool { return VerifyToken(r.VerifyTok, token) }

// Receive implements the POST webhook.
func (r *Receiver) Receive(ctx context.Context, body []byte, signature string) error {
	if !VerifySignature(r.AppSecret, body, signature) {
		return broker.Errorf(broker.EUnauthorized, "invalid or missing X-Hub-Signature-256")
	}
	n, err := Decode(body)
	if err != nil {
		return broker.Errorf(broker.EInvalid, "malformed notification")
	}
	var events []commerce.Event
	for _, ev := range n.Events() {
		if e, ok := r.convert(ev); ok {
			events = append(events, e)
		}
	}
	return r.Ingest.Ingest(ctx, events)
}

// who classifies the sender's ids: phone digits, a BSUID, or an opaque id
// kept as given (never a crash). Every id is kept: a phone user's BSUID is
// indexed too, so that the same person arriving later by BSUID alone (a
// username user) is the same shopper. A malformed user_id is dropped.
func who(waID, userID string) (wa, bsuid, opaque string) {
	if waID != "" {
		if isDigits(waID) {
			wa = waID
		} else if validInboundBSUID(waID) {
			bsuid = waID
		} else {
			opaque = waID
		}
	}
	if bsuid == "" && validInboundBSUID(userID) {
		bsuid = userID
	}
	return wa, bsuid, opaque
}

// validInboundBSUID reports whether s can be indexed as a BSUID: bounded,
// valid UTF-8, "CC.digits"-like (a dot, not at either end).
func validInboundBSUID(s string) bool {
	return s != "" && utf8.ValidString(s) && validBSUID(s)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// convert maps a wire event to a domain event.
func (r *Receiver) convert(ev Event) (commerce.Event, bool) {
	var out commerce.Event
	out.WaID, out.BSUID, out.Opaque = who(ev.WaID, ev.UserID)
	if out.Opaque != "" && (len(out.Opaque) > 128 || !utf8.ValidString(out.Opaque)) {
		return out, false
	}
	if validInboundBSUID(ev.ParentUserID) {
		out.ParentBSUID = ev.ParentUserID
	}
	out.Store = ev.PhoneNumberID
	switch ev.Kind {
	case EventMessage:
		m := ev.Message
		if m.ID == "" {
			return out, false
		}
		if m.Type == TypeSystem && m.System != nil &&
			(m.System.Type == SystemUserChangedNumber || m.System.Type == SystemUserChangedUserID) {
			return convertIdentityChange(m.System, out)
		}
		out.Class = commerce.EventMessage
		out.Name = ev.ProfileName
		out.Inbound.ID = m.ID
		out.Inbound.Time = m.Timestamp.Time()
		convertMessage(m, &out.Inbound)
		return out, true
	case EventStatus:
		s := ev.Status
		if s.ID == "" {
			return out, false
		}
		out.Inbound.ID = s.ID
		out.Inbound.Time = s.Timestamp.Time()
		if s.IsPayment() && s.Payment != nil {
			out.Class = commerce.EventPayment
			out.Inbound.Kind = commerce.InPayment
			p := &commerce.Payment{ReferenceID: s.Payment.ReferenceID, Status: s.Status,
				Amount: paymentPaise(s.Payment.Amount), Currency: s.Payment.Currency}
			if t := s.Payment.Transaction; t != nil {
				p.TxnStatus, p.TxnID = t.Status, t.ID
				if t.Method != nil {
					p.Method = t.Method.Type
				}
				if t.Error != nil {
					p.ErrorReason = Truncate(t.Error.Reason, 120)
				}
			}
			out.Inbound.Payment = p
			return out, true
		}
		out.Class = commerce.EventStatus
		out.StatusID, out.Status = s.ID, s.Status
		if len(s.Errors) > 0 {
			out.ErrCode = s.Errors[0].Code
		}
		return out, true
	case EventError:
		if r.OnAsyncErr != nil && ev.Error != nil {
			r.OnAsyncErr(ev.Error.Code)
		}
	}
	return out, false
}

// convertIdentityChange maps a user_changed_number / user_changed_user_id
// system message to an identity event: the sender's ids are the old ones,
// the system object's the new ones. Malformed new ids are dropped (the
// change then moves nothing); the body, which holds the numbers, is not
// kept.
func convertIdentityChange(sys *System, out commerce.Event) (commerce.Event, bool) {
	out.Class = commerce.EventIdentity
	out.Change = sys.Type
	if sys.Type == SystemUserChangedNumber && isDigits(sys.WaID) {
		out.NewWaID = sys.WaID
	}
	if validInboundBSUID(sys.UserID) {
		out.NewBSUID = sys.UserID
	}
	if validInboundBSUID(sys.ParentUserID) {
		out.NewParent = sys.ParentUserID
	}
	if validInboundBSUID(sys.PreviousUserID) {
		out.PrevBSUID = sys.PreviousUserID
	}
	if validInboundBSUID(sys.PreviousParentUserID) {
		out.PrevParent = sys.PreviousParentUserID
	}
	return out, true
}

// toPaise converts an amount to minor units of offset 100.
func toPaise(a Amount) int64 {
	switch {
	case a.Offset == 100 || a.Offset == 0:
		return a.Value
	case a.Offset > 100 && a.Offset%100 == 0:
		return a.Value / int64(a.Offset/100)
	case a.Offset < 100 && a.Offset > 0 && 100%a.Offset == 0:
		return a.Value * int64(100/a.Offset)
	}
	return -1 // never equals an order total
}

func convertMessage(m *Message, in *commerce.Inbound) {
	switch {
	case m.Type == "text" && m.Text != nil:
		in.Kind, in.Text = commerce.InText, m.Text.Body
	case m.Type == "interactive" && m.Interactive.ReplyID() != "":
		in.Kind, in.ReplyID = commerce.InReply, m.Interactive.ReplyID()
	case m.Type == "button" && m.Button != nil:
		// A template quick-reply: its payload is our reply id.
		in.Kind, in.ReplyID = commerce.InReply, m.Button.Payload
	case m.Type == "order" && m.Order != nil:
		in.Kind, in.Text = commerce.InOrder, m.Order.Text
		// One bad line refuses the whole order (the shopper is told why):
		// silently dropping it would place a different order than the
		// one sent.
		lines, err := m.Order.Lines()
		if err != nil {
			in.Invalid = orderInvalidCode(err)
			return
		}
		for _, l := range lines {
			in.Lines = append(in.Lines, commerce.CartLine{SKU: l.ProductRetailerID, Quantity: l.Quantity,
				UnitPrice: toPaise(l.UnitPrice)})
		}
	case m.Type == "interactive" && m.Interactive != nil && m.Interactive.NFMReply != nil &&
		m.Interactive.NFMReply.Name == InteractiveAddress:
		// The India address form's answer: a location with structured
		// fields; a malformed answer is ignored like an unknown type.
		if loc, ok := addressAnswer(m.Interactive.NFMReply); ok {
			in.Kind, in.Loc = commerce.InLocation, loc
		} else {
			in.Kind, in.Type = commerce.InOther, m.Type
		}
	case m.Type == "location" && m.Location != nil:
		in.Kind = commerce.InLocation
		in.Loc = &commerce.Location{Lat: m.Location.Latitude, Long: m.Location.Longitude,
			Name: m.Location.Name, Address: m.Location.Address}
	default:
		in.Kind, in.Type = commerce.InOther, m.Type
	}
}

// orderInvalidCode maps an [Order.Lines] error to its commerce code.
func orderInvalidCode(err error) string {
	switch {
	case errors.Is(err, ErrOrderQuantity):
		return commerce.OrderInvalidQuantity
	case errors.Is(err, ErrOrderPrice):
		return commerce.OrderInvalidPrice
	case errors.Is(err, ErrOrderCurrency):
		return commerce.OrderInvalidCurrency
	case errors.Is(err, ErrOrderProduct):
		return commerce.OrderInvalidProduct
	case errors.Is(err, ErrOrderTotal):
		return commerce.OrderInvalidTotal
	}
	return commerce.OrderInvalidEmpty
}

// Sender renders domain replies as Cloud API messages and sends them.
type Sender struct {
	Client        *Client
	CatalogID     string
	PaymentConfig string
	Language      string // template language, "en" by default
}

// SendMessage implements commerce.Sender.
func (s *Sender) SendMessage(ctx context.Context, store, to string, r commerce.Reply) (string, error) {
	if r.Kind == commerce.ReplyDocument {
		return s.sendDocument(ctx, store, to, r)
	}
	m, err := s.Render(to, r)
	if err != nil {
		return "", &commerce.DeliveryError{Permanent: true, Reason: "cannot render message: " + errReason(err)}
	}
	res, err := s.Client.Send(ctx, store, m)
	if err != nil {
		var se *SendError
		if errors.As(err, &se) {
			return "", &commerce.DeliveryError{Permanent: !se.Retryable, RetryAfter: se.RetryAfter,
				Reason: fmt.Sprintf("whatsapp %d (http %d): %s", se.Code, se.HTTPStatus, se.Reason)}
		}
		retry, after := IsRetryable(err)
		return "", &commerce.DeliveryError{Permanent: !retry, RetryAfter: after, Reason: errReason(err)}
	}
	return res.MessageID, nil
}

// sendDocument uploads the reply's file (POST /{pnid}/media) and sends it
// as a document message. A retry uploads again: a media id is cheap, and
// an upload whose message failed is never shown to anybody.
func (s *Sender) sendDocument(ctx context.Context, store, to string, r commerce.Reply) (string, error) {
	d := r.Document
	if d == nil || len(d.Data) == 0 {
		return "", &commerce.DeliveryError{Permanent: true, Reason: "cannot render message: document without a file"}
	}
	mime := d.MIME
	if mime == "" {
		mime = "application/json"
	}
	id, err := s.Client.UploadMedia(ctx, store, d.Filename, mime, d.Data)
	if err != nil {
		return "", deliveryError(err)
	}
	m, err := NewDocument(to, id, d.Filename, r.Body)
	if err != nil {
		return "", &commerce.DeliveryError{Permanent: true, Reason: "cannot render message: " + errReason(err)}
	}
	res, err := s.Client.Send(ctx, store, m)
	if err != nil {
		return "", deliveryError(err)
	}
	return res.MessageID, nil
}

// deliveryError classifies a Cloud API error for the outbox.
func deliveryError(err error) error {
	var se *SendError
	if errors.As(err, &se) {
		return &commerce.DeliveryError{Permanent: !se.Retryable, RetryAfter: se.RetryAfter,
			Reason: fmt.Sprintf("whatsapp %d (http %d): %s", se.Code, se.HTTPStatus, se.Reason)}
	}
	retry, after := IsRetryable(err)
	return &commerce.DeliveryError{Permanent: !retry, RetryAfter: after, Reason: errReason(err)}
}

// errReason keeps error text free of personal data: only the error class.
func errReason(err error) string {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		return "invalid message field " + ve.Field
	case errors.Is(err, ErrInvalidRecipient):
		return "invalid recipient"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transport error"
}

// Render builds the Cloud API message for a reply.
func (s *Sender) Render(to string, r commerce.Reply) (*OutboundMessage, error) {
	switch r.Kind {
	case commerce.ReplyText:
		return NewText(to, r.Body)
	case commerce.ReplyButtons:
		bm := ButtonMessage{Header: r.Header, Body: r.Body, Footer: r.Footer}
		for _, b := range r.Buttons {
			bm.Buttons = append(bm.Buttons, Button{ID: b.ID, Title: b.Title})
		}
		return NewReplyButtons(to, bm)
	case commerce.ReplyList:
		lm := ListMessage{Header: r.Header, Body: r.Body, Footer: r.Footer, Button: r.Button}
		for _, sec := range r.Sections {
			ws := Section{Title: sec.Title}
			for _, row := range sec.Rows {
				ws.Rows = append(ws.Rows, Row{ID: row.ID, Title: row.Title, Description: row.Description})
			}
			lm.Sections = append(lm.Sections, ws)
		}
		return NewList(to, lm)
	case commerce.ReplyProductList:
		pm := ProductListMessage{Header: r.Header, Body: r.Body, Footer: r.Footer, CatalogID: s.CatalogID}
		for _, sec := range r.Sections {
			pm.Sections = append(pm.Sections, ProductSection{Title: sec.Title, ProductRetailerIDs: sec.SKUs})
		}
		return NewProductList(to, pm)
	case commerce.ReplyCatalog:
		return NewCatalogMessage(to, r.Body, r.Footer, "")
	case commerce.ReplyLocationRequest:
		return NewLocationRequest(to, r.Body)
	case commerce.ReplyAddressRequest:
		return NewAddressRequest(to, r.Body)
	case commerce.ReplyOrderDetails:
		o := r.Order
		if o == nil {
			return nil, errors.New("order_details without an order")
		}
		d := OrderDetails{Header: r.Header, Body: r.Body, Footer: r.Footer, ReferenceID: o.ReferenceID,
			ConfigurationName: s.PaymentConfig, CatalogID: s.CatalogID,
			Tax: Charge{Value: o.Tax.Value, Offset: broker.OffsetINR, Description: "GST included"}}
		if o.Shipping.Value > 0 {
			d.Shipping = &Charge{Value: o.Shipping.Value, Offset: broker.OffsetINR, Description: "Delivery"}
		}
		for _, l := range o.Items {
			d.Items = append(d.Items, PaymentItem{RetailerID: l.SKU, Name: Truncate(l.Name, 60),
				Amount: Amount{Value: l.UnitPrice, Offset: broker.OffsetINR}, Quantity: l.Quantity})
		}
		return NewOrderDetails(to, d)
	case commerce.ReplyOrderStatus:
		st := r.Status
		if st == nil {
			return NewText(to, r.Body)
		}
		return NewOrderStatus(to, OrderStatusUpdate{Body: r.Body, ReferenceID: st.ReferenceID, Status: st.Status,
			Description: st.Description})
	case "template":
		lang := s.Language
		if r.Lang != "" {
			lang = r.Lang // the shopper's language: the template is approved in each
		}
		if lang == "" {
			lang = "en"
		}
		text := strings.TrimSpace(r.Body)
		if text == "" {
			text = "Your order has an update."
		}
		comps := []TemplateComponent{{Type: "body", Parameters: []TemplateParameter{{Type: "text", Text: Truncate(text, 1000)}}}}
		// Quick-reply buttons carry their reply ids as payloads, so the
		// answer comes back as a "button" message with that id.
		for i, b := range r.Buttons {
			comps = append(comps, TemplateComponent{Type: "button", SubType: "quick_reply", Index: strconv.Itoa(i),
				Parameters: []TemplateParameter{{Type: "payload", Payload: b.ID}}})
		}
		return NewTemplate(to, r.Template, lang, comps...)
	}
	return nil, fmt.Errorf("unknown reply kind %q", r.Kind)
}
