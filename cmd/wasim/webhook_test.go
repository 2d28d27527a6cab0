package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// webhookSink verifies and records webhook POSTs; fail answers the first
// fail requests with 500.
type webhookSink struct {
	secret []byte
	fail   int32
	calls  atomic.Int32
	mu     sync.Mutex
	bodies [][]byte
	bad    int
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if !whatsapp.VerifySignature(s.secret, body, r.Header.Get(whatsapp.SignatureHeader)) || r.Header.Get("Content-Type") != "application/json" {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if n <= s.fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func newSink(t *testing.T, fail int32) (*webhookSink, *WebhookSender) {
	t.Helper()
	sink := &webhookSink{secret: []byte("sink-secret"), fail: fail}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	ws := NewWebhookSender(srv.URL+"/webhooks/whatsapp", sink.secret, whatsapp.DevPhoneNumberID)
	ws.Backoff, ws.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return sink, ws
}

func TestWebhookSignatureRoundTrip(t *testing.T) {
	sink, ws := newSink(t, 0)
	msgs := []whatsapp.Message{
		TextMessage("919811112222", "Namaste 🙏 café <b>&</b> \\/ \"quoted\""),
		ButtonReplyMessage("919811112222", "wamid.CTX", "consent:accept", "I agree"),
		OrderMessage("919811112222", whatsapp.DevCatalogID, "", []whatsapp.ProductItem{
			{ProductRetailerID: "SKU-ATTA-5KG", Quantity: 2, ItemPrice: whatsapp.Paise(28950).JSONNumber(), Currency: "INR"},
		}),
		LocationMessage("919811112222", "wamid.LOC", DemoLocation),
	}
	n := ws.Notification([]whatsapp.Contact{ContactFor("919811112222", "Asha")}, msgs,
		[]whatsapp.Status{StatusUpdate("wamid.OUT", whatsapp.StatusRead, "919811112222")})
	d, err := ws.Send(context.Background(), n)
	if err != nil || d.Status != 200 || d.Attempts != 1 {
		t.Fatalf("Send: %+v %v", d, err)
	}
	if sink.bad != 0 || len(sink.bodies) != 1 {
		t.Fatalf("sink: %d bad, %d good", sink.bad, len(sink.bodies))
	}
	body := sink.bodies[0]
	// Escaped as Meta escapes (and signed over that): non-ASCII as
	// \uXXXX, "/" as "\/", '<' '>' '&' literal.
	if !bytes.Contains(body, []byte(`"Namaste \ud83d\ude4f caf\u00e9 <b>&<\/b> \\\/ \"quoted\""`)) {
		t.Errorf("body is not escaped as Meta escapes it: %s", body)
	}
	if u, ok := whatsapp.WAMIDUser(evs0ID(t, body)); !ok || u != "919811112222" {
		t.Errorf("inbound id is not in Meta's format holding the sender: %q %v", u, ok)
	}
	got, err := whatsapp.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	evs := got.Events()
	if len(evs) != 5 {
		t.Fatalf("%d events", len(evs))
	}
	if got.Entry[0].ID != whatsapp.DevWABAID || evs[0].PhoneNumberID != whatsapp.DevPhoneNumberID || evs[0].DisplayPhoneNumber != whatsapp.DevDisplayPhoneNumber {
		t.Errorf("envelope: %+v", evs[0])
	}
	if evs[0].ProfileName != "Asha" || evs[0].Message.Text.Body != msgs[0].Text.Body {
		t.Errorf("text event: %+v", evs[0].Message)
	}
	if evs[1].Message.Interactive.ReplyID() != "consent:accept" || evs[1].Message.Context.ID != "wamid.CTX" {
		t.Errorf("button reply: %+v", evs[1].Message)
	}
	lines, err := evs[2].Message.Order.Lines()
	if err != nil || lines[0].UnitPrice != whatsapp.Paise(28950) {
		t.Errorf("order lines: %+v %v", lines, err)
	}
	if !bytes.Contains(body, []byte(`"item_price":289.5`)) {
		t.Errorf("item_price not a JSON number: %s", body)
	}
	if evs[3].Message.Location.Latitude != DemoLocation.Latitude {
		t.Errorf("location: %+v", evs[3].Message.Location)
	}
	if evs[4].Kind != whatsapp.EventStatus || evs[4].Status.Status != "read" {
		t.Errorf("status: %+v", evs[4])
	}
	// A different secret is rejected by the same verifier.
	if whatsapp.VerifySignature([]byte(whatsapp.DevAppSecret), body, ws.Sign(body)) {
		t.Error("signature verified with another secret")
	}
}

func TestWebhookBSUIDShopper(t *testing.T) {
	sink, ws := newSink(t, 0)
	const bsuid = "IN.1410823456789012"
	n := ws.Notification([]whatsapp.Contact{ContactFor(bsuid, "Kiran")}, []whatsapp.Message{TextMessage(bsuid, "Hi")}, nil)
	if _, err := ws.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got, err := whatsapp.Decode(sink.bodies[0])
	if err != nil {
		t.Fatal(err)
	}
	e := got.Events()[0]
	if e.Message.From != "" || e.Message.FromUserID != bsuid || e.UserID != bsuid || e.WaID != "" || e.ProfileName != "Kiran" {
		t.Errorf("event %+v message %+v", e, e.Message)
	}
}

func TestWebhookRetries(t *testing.T) {
	sink, ws := newSink(t, 2)
	d, err := ws.Send(context.Background(), ws.Notification(nil, nil, []whatsapp.Status{StatusUpdate("wamid.1", "sent", "919811112222")}))
	if err != nil || d.Attempts != 3 || d.Status != 200 {
		t.Fatalf("Send: %+v %v", d, err)
	}
	if sink.calls.Load() != 3 || len(sink.bodies) != 1 {
		t.Errorf("%d calls, %d accepted", sink.calls.Load(), len(sink.bodies))
	}
}

func TestWebhookRetriesAreBounded(t *testing.T) {
	sink, ws := newSink(t, 1000)
	ws.MaxAttempts = 4
	d, err := ws.PostBody(context.Background(), []byte(`{"object":"whatsapp_business_account","entry":[]}`))
	if !errors.Is(err, ErrNotAcknowledged) || d.Attempts != 4 || d.Status != 500 {
		t.Fatalf("PostBody: %+v %v", d, err)
	}
	if got := sink.calls.Load(); got != 4 {
		t.Errorf("%d calls, want 4", got)
	}
	// A cancelled context stops the retries.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ws.MaxAttempts = 100
	if _, err := ws.PostBody(ctx, []byte(`{}`)); err == nil {
		t.Error("PostBody succeeded with a cancelled context")
	}
	if got := sink.calls.Load(); got > 5 {
		t.Errorf("%d calls after cancellation", got)
	}
}

func TestWebhookWrongSecretIsRejected(t *testing.T) {
	sink, ws := newSink(t, 0)
	ws.AppSecret = []byte("not-the-sink-secret")
	ws.MaxAttempts = 2
	_, err := ws.Send(context.Background(), ws.Notification(nil, []whatsapp.Message{TextMessage("919811112222", "x")}, nil))
	if !errors.Is(err, ErrNotAcknowledged) || sink.bad != 2 {
		t.Fatalf("err %v, %d rejected", err, sink.bad)
	}
}

// evs0ID returns the id of the first message of a notification body.
func evs0ID(t *testing.T, body []byte) string {
	t.Helper()
	n, err := whatsapp.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return n.Events()[0].Message.ID
}
