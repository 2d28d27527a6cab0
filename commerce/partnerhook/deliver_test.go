package partnerhook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// receiver is a partner's webhook endpoint on loopback that records what
// reaches it and answers with status (and Location, for a redirect).
type receiver struct {
	srv      *httptest.Server
	status   int
	location string
	mu       sync.Mutex
	bodies   [][]byte
	sigs     []string
}

func newReceiver(t *testing.T, status int, location string) *receiver {
	t.Helper()
	r := &receiver{status: status, location: location}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.sigs = append(r.sigs, req.Header.Get(Header))
		r.mu.Unlock()
		if r.location != "" {
			w.Header().Set("Location", r.location)
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func (r *receiver) port() string { return r.srv.URL[strings.LastIndex(r.srv.URL, ":")+1:] }

func hasIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func testDeliverer(t *testing.T, g *Guard) *Deliverer {
	t.Helper()
	d := New(nil, nil, g, 3*time.Second)
	d.secret = func(context.Context, string) ([]byte, error) { return []byte("whsec_test"), nil }
	return d
}

func deliveryErr(t *testing.T, err error) *commerce.DeliveryError {
	t.Helper()
	var de *commerce.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a DeliveryError", err)
	}
	return de
}

var body = []byte(`{"id":"evt_1","type":"order.placed","data":{"order_id":"ord_1","delivery":{"address":"12 MG Road"}}}`)

// TestDeliverRefusesInternalAddresses: every spelling of the local host,
// and the cloud metadata address, is refused when the connection is made,
// whatever was accepted when the URL was registered; nothing reaches the
// listening server.
func TestDeliverRefusesInternalAddresses(t *testing.T) {
	rcv := newReceiver(t, 204, "")
	d := testDeliverer(t, &Guard{})
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]", "0.0.0.0", "[::ffff:127.0.0.1]"} {
		t.Run(host, func(t *testing.T) {
			if host == "[::1]" && !hasIPv6Loopback() {
				t.Skip("no IPv6 loopback here: nothing to dial")
			}
			err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: "http://" + host + ":" + rcv.port() + "/hook"}, "order.placed", body)
			de := deliveryErr(t, err)
			if de.Reason != ReasonRefused || de.Permanent {
				t.Errorf("Deliver to %s: %+v, want a retryable %q", host, de, ReasonRefused)
			}
		})
	}
	// The metadata address: refused before any packet leaves.
	start := time.Now()
	err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: "http://169.254.169.254/latest/meta-data/"}, "order.placed", body)
	if de := deliveryErr(t, err); de.Reason != ReasonRefused {
		t.Errorf("Deliver to the metadata address: %+v", de)
	}
	if time.Since(start) > time.Second {
		t.Errorf("the refusal took %v: the dial was attempted", time.Since(start))
	}
	if n := rcv.calls(); n != 0 {
		t.Fatalf("%d deliveries reached the loopback server", n)
	}
}

// TestDeliverAllowed delivers to loopback once the allow list names it,
// signed so the partner's Verify accepts it.
func TestDeliverAllowed(t *testing.T) {
	rcv := newReceiver(t, 204, "")
	d := testDeliverer(t, &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: rcv.srv.URL + "/hook"}, "order.placed", body); err != nil {
		t.Fatal(err)
	}
	if rcv.calls() != 1 || string(rcv.bodies[0]) != string(body) {
		t.Fatalf("calls %d", rcv.calls())
	}
	if err := Verify([]byte("whsec_test"), rcv.sigs[0], rcv.bodies[0], time.Now(), 0); err != nil {
		t.Errorf("signature: %v", err)
	}
}

// TestDeliverNoRedirects: a 307 (which would re-POST the signed body) and
// a 302 are answers, not directions: the target sees nothing, and the
// delivery is a failure to retry.
func TestDeliverNoRedirects(t *testing.T) {
	target := newReceiver(t, 204, "")
	g := &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	d := testDeliverer(t, g)
	for _, code := range []int{301, 302, 303, 307, 308} {
		from := newReceiver(t, code, target.srv.URL+"/stolen")
		err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: from.srv.URL + "/hook"}, "order.placed", body)
		de := deliveryErr(t, err)
		if de.Permanent || !strings.Contains(de.Reason, "answered") {
			t.Errorf("%d: %+v, want a retryable failure", code, de)
		}
		if from.calls() != 1 {
			t.Errorf("%d: the registered URL got %d calls", code, from.calls())
		}
	}
	if n := target.calls(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

// TestDeliverHTTPSOnly: in production an http URL is never posted to.
func TestDeliverHTTPSOnly(t *testing.T) {
	rcv := newReceiver(t, 204, "")
	d := testDeliverer(t, &Guard{HTTPSOnly: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: rcv.srv.URL}, "order.placed", body)
	if de := deliveryErr(t, err); !de.Permanent || de.Reason != ReasonInsecure {
		t.Errorf("http in production: %+v", de)
	}
	if rcv.calls() != 0 {
		t.Error("posted over http in production")
	}
}

// TestDeliverStatuses classifies the partner's answers.
func TestDeliverStatuses(t *testing.T) {
	g := &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	d := testDeliverer(t, g)
	for _, tt := range []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {202, true, false}, {400, false, true}, {404, false, true}, {410, false, true},
		{408, false, false}, {429, false, false}, {500, false, false}, {503, false, false},
	} {
		rcv := newReceiver(t, tt.status, "")
		err := d.Deliver(context.Background(), broker.Partner{ID: "cli_1", WebhookURL: rcv.srv.URL}, "order.placed", body)
		if tt.ok {
			if err != nil {
				t.Errorf("%d: %v", tt.status, err)
			}
			continue
		}
		if de := deliveryErr(t, err); de.Permanent != tt.permanent {
			t.Errorf("%d: %+v, want permanent %v", tt.status, de, tt.permanent)
		}
	}
}
