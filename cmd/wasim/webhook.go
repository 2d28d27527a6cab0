package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// WebhookSender delivers Cloud API webhook notifications to the broker the
// way Meta does: the notification is serialised once, those exact bytes are
// signed with the app secret (X-Hub-Signature-256) and POSTed, and anything
// but a 200 is retried with backoff, a bounded number of times.
type WebhookSender struct {
	// URL is the broker's webhook endpoint.
	URL       string
	AppSecret []byte
	// WABAID, PhoneNumberID and DisplayPhoneNumber fill entry.id and
	// value.metadata.
	WABAID             string
	PhoneNumberID      string
	DisplayPhoneNumber string
	// Client defaults to a client with a 10 s timeout.
	Client *http.Client
	// MaxAttempts bounds the deliveries of one notification (default 5; 1
	// disables retries).
	MaxAttempts int
	// Backoff is the first retry delay (default 100 ms), doubled per attempt
	// up to MaxBackoff (default 2 s), with jitter.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// NewWebhookSender returns a sender with the development identities.
func NewWebhookSender(url string, appSecret []byte, phoneNumberID string) *WebhookSender {
	return &WebhookSender{
		URL:                url,
		AppSecret:          appSecret,
		WABAID:             whatsapp.DevWABAID,
		PhoneNumberID:      phoneNumberID,
		DisplayPhoneNumber: whatsapp.DevDisplayPhoneNumber,
		Client:             &http.Client{Timeout: 10 * time.Second},
	}
}

// Delivery reports how a notification was delivered.
type Delivery struct {
	// Status is the HTTP status of the last attempt (0 on a network error).
	Status   int
	Attempts int
	// Latency is the duration of the last attempt.
	Latency time.Duration
}

// ErrNotAcknowledged is wrapped when the broker never answered 200.
var ErrNotAcknowledged = errors.New("not acknowledged")

// Notification builds a notification with one entry and one "messages"
// change for this sender's business number.
func (s *WebhookSender) Notification(contacts []whatsapp.Contact, messages []whatsapp.Message, statuses []whatsapp.Status) *whatsapp.Notification {
	return whatsapp.NewNotification(s.WABAID,
		whatsapp.Metadata{DisplayPhoneNumber: s.DisplayPhoneNumber, PhoneNumberID: s.PhoneNumberID},
		contacts, messages, statuses)
}

// Send serialises, signs and delivers a notification.
func (s *WebhookSender) Send(ctx context.Context, n *whatsapp.Notification) (Delivery, error) {
	body, err := n.Marshal()
	if err != nil {
		return Delivery{}, err
	}
	return s.PostBody(ctx, body)
}

// Sign returns the X-Hub-Signature-256 of body with this sender's secret.
func (s *WebhookSender) Sign(body []byte) string { return whatsapp.Sign(s.AppSecret, body) }

// PostBody signs body and POSTs it until the broker answers 200 or the
// attempts run out.
func (s *WebhookSender) PostBody(ctx context.Context, body []byte) (Delivery, error) {
	sig := s.Sign(body)
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	backoff, maxBackoff := s.Backoff, s.MaxBackoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Second
	}
	var d Delivery
	var lastErr error
	for d.Attempts < attempts {
		if d.Attempts > 0 {
			delay := backoff/2 + rand.N(backoff/2+1)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return d, fmt.Errorf("webhook: %w after %d attempts", ctx.Err(), d.Attempts)
			case <-t.C:
			}
			backoff = min(backoff*2, maxBackoff)
		}
		d.Attempts++
		d.Status, d.Latency, lastErr = s.postOnce(ctx, body, sig)
		if lastErr == nil && d.Status == http.StatusOK {
			return d, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		return d, fmt.Errorf("webhook: %w after %d attempts: %v", ErrNotAcknowledged, d.Attempts, lastErr)
	}
	return d, fmt.Errorf("webhook: %w after %d attempts: last status %d", ErrNotAcknowledged, d.Attempts, d.Status)
}

func (s *WebhookSender) postOnce(ctx context.Context, body []byte, sig string) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(whatsapp.SignatureHeader, sig)
	req.Header.Set("User-Agent", "facebookexternalua")
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// now is the current time as a wire timestamp.
func now() whatsapp.Timestamp { return whatsapp.Timestamp(time.Now().Unix()) }

// NewInboundID returns a fresh id, in Meta's real format (base64 holding
// the sender's phone number or BSUID), for a message from from.
func NewInboundID(from string) string { return whatsapp.NewInboundWAMID(from) }

// ContactFor is the contacts[] entry of a shopper: a phone number (wa_id) or,
// for a BSUID, user_id.
func ContactFor(id, name string) whatsapp.Contact {
	c := whatsapp.Contact{Profile: whatsapp.Profile{Name: name}}
	if whatsapp.IsBSUID(id) {
		c.UserID = id
	} else {
		c.WaID = id
	}
	return c
}

// inbound starts a message from id: "from" for a phone number, only
// "from_user_id" for a BSUID (as for username users).
func inbound(from, typ string) whatsapp.Message {
	m := whatsapp.Message{ID: NewInboundID(from), Timestamp: now(), Type: typ}
	if whatsapp.IsBSUID(from) {
		m.FromUserID = from
	} else {
		m.From = from
	}
	return m
}

func replyContext(contextID string) *whatsapp.Context {
	if contextID == "" {
		return nil
	}
	return &whatsapp.Context{From: whatsapp.DevDisplayPhoneNumber, ID: contextID}
}

// TextMessage is a text message from a shopper.
func TextMessage(from, body string) whatsapp.Message {
	m := inbound(from, whatsapp.TypeText)
	m.Text = &whatsapp.Text{Body: body}
	return m
}

// ButtonReplyMessage is a tap on a reply button of message contextID.
func ButtonReplyMessage(from, contextID, id, title string) whatsapp.Message {
	m := inbound(from, whatsapp.TypeInteractive)
	m.Context = replyContext(contextID)
	m.Interactive = &whatsapp.InteractiveReply{Type: whatsapp.ReplyTypeButton, ButtonReply: &whatsapp.ButtonReply{ID: id, Title: title}}
	return m
}

// ListReplyMessage is a pick of a list row of message contextID.
func ListReplyMessage(from, contextID, id, title, description string) whatsapp.Message {
	m := inbound(from, whatsapp.TypeInteractive)
	m.Context = replyContext(contextID)
	m.Interactive = &whatsapp.InteractiveReply{Type: whatsapp.ReplyTypeList, ListReply: &whatsapp.ListReply{ID: id, Title: title, Description: description}}
	return m
}

// OrderMessage is a cart sent from the catalog.
func OrderMessage(from, catalogID, note string, items []whatsapp.ProductItem) whatsapp.Message {
	m := inbound(from, whatsapp.TypeOrder)
	m.Order = &whatsapp.Order{CatalogID: catalogID, Text: note, ProductItems: items}
	return m
}

// LocationMessage is a shared location answering message contextID.
func LocationMessage(from, contextID string, loc whatsapp.Location) whatsapp.Message {
	m := inbound(from, whatsapp.TypeLocation)
	m.Context = replyContext(contextID)
	m.Location = &loc
	return m
}

// AddressFormMessage answers an address_message form (an nfm_reply).
func AddressFormMessage(from, contextID string, v whatsapp.AddressValues) whatsapp.Message {
	resp, _ := json.Marshal(whatsapp.AddressResponse{Values: v})
	m := inbound(from, whatsapp.TypeInteractive)
	m.Context = replyContext(contextID)
	m.Interactive = &whatsapp.InteractiveReply{Type: "nfm_reply", NFMReply: &whatsapp.NFMReply{
		Name: whatsapp.InteractiveAddress, Body: "Address sent", ResponseJSON: string(resp)}}
	return m
}

// DemoAddress is the address simulated shoppers fill in the form with, in
// the given PIN code (560001 when empty).
func DemoAddress(pincode string) whatsapp.AddressValues {
	if pincode == "" {
		pincode = "560001"
	}
	return whatsapp.AddressValues{Name: "Asha", HouseNumber: "12", BuildingName: "Lake View Apartments",
		Address: "MG Road", LandmarkArea: "near Trinity Metro", City: "Bengaluru", State: "Karnataka", PinCode: pincode}
}

// DemoLocation is the location the simulated shoppers share.
var DemoLocation = whatsapp.Location{
	Latitude: 12.971599, Longitude: 77.594566, Name: "Home",
	Address: "12 MG Road, Bengaluru, Karnataka 560001",
}

// StatusUpdate is a delivery status of a message the broker sent.
func StatusUpdate(wamid, status, recipient string) whatsapp.Status {
	s := whatsapp.Status{ID: wamid, Status: status, Timestamp: now()}
	if whatsapp.IsBSUID(recipient) {
		s.RecipientUserID = recipient
	} else {
		s.RecipientID = recipient
	}
	if status == whatsapp.StatusSent {
		s.Pricing = &whatsapp.Pricing{PricingModel: "PMP", Type: "free_customer_service", Category: "service"}
	}
	return s
}

// PaymentStatus is the "captured" payment status WhatsApp Pay sends when a
// shopper pays an order_details message.
func PaymentStatus(recipient string, rec *whatsapp.PaymentRecord) whatsapp.Status {
	s := StatusUpdate("pay."+randomToken(16), whatsapp.PaymentCaptured, recipient)
	s.Pricing = nil
	s.Type = whatsapp.StatusType
	p := &whatsapp.Payment{ReferenceID: rec.ReferenceID, Amount: rec.Amount, Currency: rec.Currency}
	for i := range rec.Transactions {
		if rec.Transactions[i].Status == whatsapp.TxnStatusSuccess {
			t := rec.Transactions[i]
			p.Transaction = &t
		}
	}
	s.Payment = p
	return s
}
