package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// sent is one message the broker sent to the fake Send API.
type sent struct {
	Seq  int
	To   string
	ID   string // the wamid the fake Send API returned, in Meta's format
	Body map[string]any
	Raw  []byte
}

func (s sent) str(path ...string) string {
	var v any = s.Body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	str, _ := v.(string)
	return str
}

// kind is "text", or the interactive type ("button", "list", …).
func (s sent) kind() string {
	if t := s.str("type"); t != "interactive" {
		return t
	}
	return s.str("interactive", "type")
}

// text is the visible text: a text body or an interactive body.
func (s sent) text() string {
	if s.kind() == "text" {
		return s.str("text", "body")
	}
	return s.str("interactive", "body", "text")
}

// replyIDs lists the button and list-row ids offered.
func (s sent) replyIDs() []string {
	var ids []string
	action, _ := s.Body["interactive"].(map[string]any)
	if action == nil {
		return nil
	}
	a, _ := action["action"].(map[string]any)
	for _, b := range asList(a["buttons"]) {
		if r, ok := b.(map[string]any)["reply"].(map[string]any); ok {
			ids = append(ids, r["id"].(string))
		}
	}
	for _, sec := range asList(a["sections"]) {
		for _, r := range asList(sec.(map[string]any)["rows"]) {
			ids = append(ids, r.(map[string]any)["id"].(string))
		}
	}
	return ids
}

func (s sent) referenceID() string {
	return s.str("interactive", "action", "parameters", "reference_id")
}

func asList(v any) []any { l, _ := v.([]any); return l }

// fakeSendAPI records what the broker sends, like wasim serve, and can be
// told to fail.
type fakeSendAPI struct {
	srv      *httptest.Server
	mu       sync.Mutex
	msgs     []sent
	failNext atomic.Int32 // answer this many sends with 500
	failCode int
	media    map[string][]byte // uploaded files by media id (POST /{pnid}/media)
}

func newFakeSendAPI(t *testing.T) *fakeSendAPI {
	f := &fakeSendAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+whatsapp.DevAccessToken {
			w.WriteHeader(401)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/media") {
			f.upload(t, w, r)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var m whatsapp.OutboundMessage
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil || m.Validate() != nil {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"message":"invalid","type":"OAuthException","code":100}}`)
			t.Errorf("broker sent an invalid message: %v / %v: %s", err, m.Validate(), raw)
			return
		}
		if f.failNext.Load() > 0 {
			f.failNext.Add(-1)
			code := f.failCode
			if code == 0 {
				code = 131000
			}
			w.WriteHeader(500)
			fmt.Fprintf(w, `{"error":{"message":"fail","type":"OAuthException","code":%d}}`, code)
			return
		}
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		f.mu.Lock()
		seq := len(f.msgs) + 1
		to := m.To
		if to == "" {
			to = m.Recipient
		}
		id := whatsapp.NewOutboundWAMID(to) // Meta's format: the phone number inside
		f.msgs = append(f.msgs, sent{Seq: seq, To: to, ID: id, Body: body, Raw: raw})
		f.mu.Unlock()
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":%q}]}`,
			m.To, strings.TrimPrefix(m.To, "+"), id)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSendAPI) all() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.msgs...)
}

// harness is a broker on 127.0.0.1:0 with a fresh database and keys.
type harness struct {
	t    *testing.T
	m    *Main
	base string
	wa   *fakeSendAPI
	seen map[string]int // per recipient: messages already consumed
}

func newHarness(t *testing.T, adjust ...func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOpts{adjust: adjust})
}

// partner registers a partner and returns a bearer token for it.
func (h *harness) partner(name string, kind broker.PartyKind, store string, scopes ...string) (string, string) {
	h.t.Helper()
	ctx := context.Background()
	id, secret, err := token.CreatePartner(ctx, h.m.Sys.DB.Partners(), h.m.Sys.Sealer, token.PartnerSpec{Name: name, Kind: kind,
		Scopes: scopes, Store: store})
	if err != nil {
		h.t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", h.base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tok) != nil {
		h.t.Fatalf("token: status %d", resp.StatusCode)
	}
	return id, tok.AccessToken
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (h *harness) do(method, path, bearer string, body any, out any) *http.Response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp
}

// webhook posts a signed notification body; it returns the status.
func (h *harness) webhook(body string) int {
	h.t.Helper()
	return h.webhookSigned(body, whatsapp.Sign([]byte(whatsapp.DevAppSecret), []byte(body)))
}

func (h *harness) webhookSigned(body, sig string) int {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.base+"/webhooks/whatsapp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	return resp.StatusCode
}

var msgSeq atomic.Int64

// wamid returns a fresh inbound message id in Meta's real format for a
// shopper of the default test number; wamidFor holds wa's own number (or
// BSUID), as Meta's ids do.
func wamid() string { return wamidFor("919811110000") }

func wamidFor(wa string) string { return whatsapp.NewInboundWAMID(wa) }

// envelope wraps values (each a JSON "value" object body without metadata).
func envelope(values ...string) string {
	var changes []string
	for _, v := range values {
		changes = append(changes, `{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"919000000001","phone_number_id":"`+
			whatsapp.DevPhoneNumberID+`"},`+v+`}}`)
	}
	// Escaped as Meta escapes webhook bodies (and signed over that).
	return string(whatsapp.MetaEscape([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"100000000000000","changes":[` +
		strings.Join(changes, ",") + `]}]}`)))
}

func ts() string { return fmt.Sprintf("%q", fmt.Sprint(time.Now().Unix())) }

// message builds a value with one inbound message from wa (name Asha).
func message(wa, typ, payload string) string {
	return fmt.Sprintf(`"contacts":[{"profile":{"name":"Asha Verma"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":%s,"type":%q,%s}]`,
		wa, wa, wamidFor(wa), ts(), typ, payload)
}

func textMsg(wa, body string) string {
	return message(wa, "text", fmt.Sprintf(`"text":{"body":%q}`, body))
}

func replyMsg(wa, id string) string {
	kind := "button_reply"
	if strings.HasPrefix(id, "slot:") {
		kind = "list_reply"
	}
	return message(wa, "interactive", fmt.Sprintf(`"interactive":{"type":%q,%q:{"id":%q,"title":"x"}}`, kind, kind, id))
}

func orderMsg(wa string, items ...string) string {
	return message(wa, "order", `"order":{"catalog_id":"100000000000002","product_items":[`+strings.Join(items, ",")+`]}`)
}

func item(sku string, qty int, price string) string {
	return fmt.Sprintf(`{"product_retailer_id":%q,"quantity":%d,"item_price":%s,"currency":"INR"}`, sku, qty, price)
}

func locationMsg(wa, address string) string {
	return message(wa, "location", fmt.Sprintf(`"location":{"latitude":12.9716,"longitude":77.5946,"name":"Home","address":%q}`, address))
}

func paymentStatus(wa, ref string, amount int64, status, txn string) string {
	return fmt.Sprintf(`"statuses":[{"id":%q,"status":%q,"timestamp":%s,"recipient_id":%q,"type":"payment","payment":{"reference_id":%q,"amount":{"value":%d,"offset":100},"currency":"INR","transaction":{"id":"pay_%d","type":"razorpay","status":%q,"method":{"type":"upi"}}}}]`,
		"pmt."+ref+"."+txn, status, ts(), wa, ref, amount, msgSeq.Add(1), txn)
}

func statusMsg(wa, id, status string) string {
	return fmt.Sprintf(`"statuses":[{"id":%q,"status":%q,"timestamp":%s,"recipient_id":%q}]`, id, status, ts(), wa)
}

// next waits for the next message to wa matching pred, skipping (and
// consuming) others; it fails the test after a timeout.
func (h *harness) next(wa string, what string, pred func(sent) bool) sent {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var mine []sent
		for _, m := range h.wa.all() {
			if m.To == "+"+wa || m.To == wa {
				mine = append(mine, m)
			}
		}
		for i := h.seen[wa]; i < len(mine); i++ {
			h.seen[wa] = i + 1
			if pred(mine[i]) {
				return mine[i]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range h.wa.all() {
		h.t.Logf("sent #%d to %s: %s %q", m.Seq, m.To, m.kind(), m.text())
	}
	var errs []string
	rows, _ := h.m.Sys.DB.Pool.Query(context.Background(), `SELECT kind || ' ' || status || ' ' || coalesce(last_error, '') FROM outbox`)
	for rows.Next() {
		var s string
		rows.Scan(&s) //nolint:errcheck
		errs = append(errs, s)
	}
	rows.Close()
	rows, _ = h.m.Sys.DB.Pool.Query(context.Background(), `SELECT kind || ' ' || coalesce(processed_at::text, 'pending') || ' ' || coalesce(last_error, '') FROM inbox`)
	for rows.Next() {
		var s string
		rows.Scan(&s) //nolint:errcheck
		errs = append(errs, "inbox: "+s)
	}
	rows.Close()
	h.t.Logf("outbox/inbox: %v", errs)
	h.t.Fatalf("timed out waiting for %s to %s", what, wa)
	return sent{}
}

func kindIs(k string) func(sent) bool { return func(s sent) bool { return s.kind() == k } }

func offers(id string) func(sent) bool {
	return func(s sent) bool {
		for _, x := range s.replyIDs() {
			if x == id {
				return true
			}
		}
		return false
	}
}

func contains(text string) func(sent) bool {
	return func(s sent) bool { return strings.Contains(s.text(), text) }
}

// count counts rows of a table (for "nothing stored" checks).
func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.m.Sys.DB.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func signOf(body string) string {
	return whatsapp.Sign([]byte(whatsapp.DevAppSecret), []byte(body))
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// orderStatus reads an order's status.
func (h *harness) orderStatus(id string) string {
	h.t.Helper()
	var s string
	if err := h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT status FROM orders WHERE id = $1`, id).Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitIdle waits until the inbox and the outbox have nothing pending.
func (h *harness) waitIdle() {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.count(`SELECT count(*) FROM inbox WHERE processed_at IS NULL`) == 0 &&
			h.count(`SELECT count(*) FROM outbox WHERE status = 'pending'`) == 0 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	h.t.Fatal("broker did not become idle")
}

// decisionRecorder notes every X-Decision-Id a broker answers, by the
// broker's address, whichever test client asked: SPEC §5.3 says every one
// names an audit entry that exists, and checkDecisionIDs holds every
// integration test to it.
type decisionRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	ids  map[string][]string // host:port -> decision ids answered
}

func (d *decisionRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(req)
	if err == nil {
		if id := resp.Header.Get("X-Decision-Id"); id != "" {
			d.mu.Lock()
			d.ids[req.URL.Host] = append(d.ids[req.URL.Host], id)
			d.mu.Unlock()
		}
	}
	return resp, err
}

// take returns and forgets the ids answered by host.
func (d *decisionRecorder) take(host string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := d.ids[host]
	delete(d.ids, host)
	return ids
}

var decisions = &decisionRecorder{base: http.DefaultTransport, ids: map[string][]string{}}

func init() {
	// Every client the tests use goes through the recorder: http.Get and
	// http.DefaultClient, and the client that does not follow redirects.
	http.DefaultClient.Transport = decisions
	noRedirects.Transport = decisions
}

// checkDecisionIDs makes the test fail, at its end and while its broker
// still runs, if any X-Decision-Id its broker answered names no audit
// entry (neither integrated nor pending).
func (h *harness) checkDecisionIDs() {
	host := strings.TrimPrefix(h.base, "http://")
	h.t.Cleanup(func() {
		ids := decisions.take(host)
		if len(ids) == 0 {
			return
		}
		// Pending first, then integrated, in two statements: the sequencer
		// moves entries from one to the other, and a statement that read
		// both tables at different moments (Citus plans the two subqueries
		// separately) could miss an entry in flight. In this order it cannot.
		var notPending, missing []string
		err := h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(d.did), '{}') FROM unnest($1::text[]) AS d(did)
			WHERE NOT EXISTS (SELECT 1 FROM audit_pending p WHERE p.decision_id = d.did)`, ids).Scan(&notPending)
		if err == nil && len(notPending) > 0 {
			err = h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(d.did), '{}') FROM unnest($1::text[]) AS d(did)
				WHERE NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.decision_id = d.did)`, notPending).Scan(&missing)
		}
		if err != nil {
			h.t.Errorf("checking %d decision ids: %v", len(ids), err)
			return
		}
		if len(missing) > 0 {
			h.t.Errorf("%d of %d X-Decision-Id answered name no audit entry: %v", len(missing), len(ids), missing)
		}
	})
}
