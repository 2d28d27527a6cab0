package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidNotification is wrapped by every error [Decode] returns.
var ErrInvalidNotification = errors.New("whatsapp: invalid notification")

// maxNotificationDepth bounds the nesting of a notification. Real payloads
// nest about ten levels deep.
const maxNotificationDepth = 64

// Decode parses a webhook notification body. The body must already be
// authenticated with [VerifySignature] over the same bytes.
//
// Decode rejects bodies larger than [MaxNotificationSize], nested deeper than
// a sane bound, that are not a single JSON object, whose object is not
// "whatsapp_business_account", and messages or statuses without an id. Unknown
// fields are ignored, so new Cloud API fields do not break decoding. Semantic
// checks (such as order prices) are left to the accessors, e.g.
// [Order.Lines], so that one odd message does not reject a whole batch.
func Decode(body []byte) (*Notification, error) {
	if len(body) > MaxNotificationSize {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalidNotification, len(body), MaxNotificationSize)
	}
	if err := checkDepth(body, maxNotificationDepth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidNotification, err)
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidNotification, jsonErrorText(err))
	}
	if n.Object != ObjectWhatsAppBusinessAccount {
		return nil, fmt.Errorf("%w: object is not %q", ErrInvalidNotification, ObjectWhatsAppBusinessAccount)
	}
	for i := range n.Entry {
		for j := range n.Entry[i].Changes {
			v := n.Entry[i].Changes[j].Value
			if v == nil {
				continue
			}
			for k := range v.Messages {
				if v.Messages[k].ID == "" {
					return nil, fmt.Errorf("%w: entry[%d].changes[%d].value.messages[%d] has no id", ErrInvalidNotification, i, j, k)
				}
				if v.Messages[k].Type == "" {
					return nil, fmt.Errorf("%w: entry[%d].changes[%d].value.messages[%d] has no type", ErrInvalidNotification, i, j, k)
				}
			}
			for k := range v.Statuses {
				if v.Statuses[k].ID == "" || v.Statuses[k].Status == "" {
					return nil, fmt.Errorf("%w: entry[%d].changes[%d].value.statuses[%d] lacks id or status", ErrInvalidNotification, i, j, k)
				}
			}
		}
	}
	return &n, nil
}

// jsonErrorText describes a JSON error without quoting the input: syntax
// errors carry an offset, type errors a field path, neither carries content.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: JSON %s where %s was expected", te.Field, te.Value, te.Type)
	}
	// Errors from our own UnmarshalJSON methods name fields and expectations
	// only; the rest of encoding/json's errors do not echo input either.
	return err.Error()
}

// checkDepth rejects JSON nested deeper than max. It only counts brackets
// outside strings; json.Unmarshal does the real validation.
func checkDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("nesting deeper than %d", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// EventKind tells which part of a notification an [Event] carries.
type EventKind uint8

// Event kinds.
const (
	// EventMessage is an inbound message (Event.Message is set).
	EventMessage EventKind = iota + 1
	// EventStatus is a message or payment status (Event.Status is set).
	EventStatus
	// EventError is an asynchronous error of a change value (Event.Error is set).
	EventError
)

// String returns "message", "status" or "error".
func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventStatus:
		return "status"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one message, status or error of a notification together with the
// business number and the contact it concerns.
type Event struct {
	Kind EventKind
	// WABAID is the entry id, the WhatsApp Business Account.
	WABAID string
	// PhoneNumberID and DisplayPhoneNumber identify the business number (the store).
	PhoneNumberID      string
	DisplayPhoneNumber string
	// WaID is the user's WhatsApp id: the contact's wa_id (or message.from)
	// for messages, recipient_id for statuses. It may be empty for username users.
	WaID string
	// UserID is the user's BSUID when present.
	UserID string
	// ParentUserID is the user's parent BSUID when present (messages only).
	ParentUserID string
	// ProfileName and Username come from the message's contact (messages only).
	ProfileName string
	Username    string

	Message *Message
	Status  *Status
	Error   *Error
}

// SubjectID returns the user's stable id for keying: WaID, else UserID.
func (e *Event) SubjectID() string {
	if e.WaID != "" {
		return e.WaID
	}
	return e.UserID
}

// DedupKey returns the idempotency key of the event: the message id for a
// message, "<id>:<status>" for a status (so that every state is applied once),
// and "" for an error.
func (e *Event) DedupKey() string {
	switch e.Kind {
	case EventMessage:
		return e.Message.ID
	case EventStatus:
		return e.Status.ID + ":" + e.Status.Status
	}
	return ""
}

// Time returns the event's timestamp (zero for errors).
func (e *Event) Time() time.Time {
	switch e.Kind {
	case EventMessage:
		return e.Message.Timestamp.Time()
	case EventStatus:
		return e.Status.Timestamp.Time()
	}
	return time.Time{}
}

// Events flattens the notification: every message, status and value-level
// error of every change of every entry, in document order. Changes of fields
// other than "messages" are skipped. The events point into n.
func (n *Notification) Events() []Event {
	var out []Event
	for i := range n.Entry {
		e := &n.Entry[i]
		for j := range e.Changes {
			v := e.Changes[j].Value
			if v == nil || e.Changes[j].Field != FieldMessages {
				continue
			}
			base := Event{
				WABAID:             e.ID,
				PhoneNumberID:      v.Metadata.PhoneNumberID,
				DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber,
			}
			for k := range v.Messages {
				m := &v.Messages[k]
				ev := base
				ev.Kind = EventMessage
				ev.Message = m
				ev.WaID, ev.UserID, ev.ParentUserID = m.From, m.FromUserID, m.FromParentUserID
				if c := v.contactFor(m); c != nil {
					if c.ParentUserID != "" && ev.ParentUserID == "" {
						ev.ParentUserID = c.ParentUserID
					}
					ev.ProfileName, ev.Username = c.Profile.Name, c.Profile.Username
					if c.WaID != "" && ev.WaID == "" {
						ev.WaID = c.WaID
					}
					if c.UserID != "" && ev.UserID == "" {
						ev.UserID = c.UserID
					}
				}
				out = append(out, ev)
			}
			for k := range v.Statuses {
				s := &v.Statuses[k]
				ev := base
				ev.Kind = EventStatus
				ev.Status = s
				ev.WaID, ev.UserID = s.RecipientID, s.RecipientUserID
				out = append(out, ev)
			}
			for k := range v.Errors {
				ev := base
				ev.Kind = EventError
				ev.Error = &v.Errors[k]
				out = append(out, ev)
			}
		}
	}
	return out
}

// contactFor finds the contact that sent m: by wa_id, then by BSUID, then the
// only contact of the value.
func (v *Value) contactFor(m *Message) *Contact {
	for i := range v.Contacts {
		c := &v.Contacts[i]
		if m.From != "" && (c.WaID == m.From || c.UserID == m.From) {
			return c
		}
		if m.FromUserID != "" && c.UserID == m.FromUserID {
			return c
		}
	}
	if len(v.Contacts) == 1 {
		return &v.Contacts[0]
	}
	return nil
}

// NewNotification builds a notification with one entry and one "messages"
// change, the shape Meta sends for a single business number.
func NewNotification(wabaID string, meta Metadata, contacts []Contact, messages []Message, statuses []Status) *Notification {
	return &Notification{
		Object: ObjectWhatsAppBusinessAccount,
		Entry: []Entry{{
			ID: wabaID,
			Changes: []Change{{
				Field: FieldMessages,
				Value: &Value{
					MessagingProduct: MessagingProduct,
					Metadata:         meta,
					Contacts:         contacts,
					Messages:         messages,
					Statuses:         statuses,
				},
			}},
		}},
	}
}

// Marshal encodes the notification as Meta does: compact JSON, escaped as
// [MetaEscape] does (non-ASCII as \uXXXX, "/" as "\/"). Sign the returned
// bytes, not a re-encoding of them.
func (n *Notification) Marshal() ([]byte, error) {
	b, err := marshalNoEscape(n)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: encode notification: %w", err)
	}
	return MetaEscape(b), nil
}
