package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// Record is one request the broker made to the fake Send API.
type Record struct {
	// Seq increases by one per recorded request, from 1.
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	PhoneNumberID string    `json:"phone_number_id"`
	// To is the recipient's phone number in digits (no "+").
	To string `json:"to,omitempty"`
	// Recipient is the recipient's BSUID when the message was sent to one.
	Recipient string `json:"recipient,omitempty"`
	// Type is the message type (text, interactive, template) or "mark_read".
	Type            string `json:"type"`
	InteractiveType string `json:"interactive_type,omitempty"`
	// MessageID is the wamid the fake API assigned (for mark_read: the wamid
	// marked as read).
	MessageID string          `json:"message_id"`
	Body      json.RawMessage `json:"body"`
}

// TypeMarkRead is the Record.Type of a mark-as-read request.
const TypeMarkRead = "mark_read"

// Message decodes the recorded body.
func (r *Record) Message() (*whatsapp.OutboundMessage, error) {
	var m whatsapp.OutboundMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil, fmt.Errorf("record %d: %w", r.Seq, err)
	}
	return &m, nil
}

// Kind is "text", "interactive/<type>", "template" or "mark_read".
func (r *Record) Kind() string {
	if r.InteractiveType != "" {
		return r.Type + "/" + r.InteractiveType
	}
	return r.Type
}

// Failure is an injected Send API failure: the next Count sends answer a
// Graph error with Code and HTTPStatus.
type Failure struct {
	Count      int    `json:"count"`
	Code       int    `json:"code"`
	HTTPStatus int    `json:"http_status,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
	Message    string `json:"message,omitempty"`
}

// Capture is a simulated shopper's payment of an order_details message.
type Capture struct {
	ConfigurationName string `json:"configuration_name"`
	ReferenceID       string `json:"reference_id"`
	TransactionID     string `json:"transaction_id,omitempty"`
	Method            string `json:"method,omitempty"`
}

// payment is a payment the store knows: registered when the broker sends an
// order_details message, captured when a shopper pays.
type payment struct {
	configName string
	record     whatsapp.PaymentRecord
}

// defaultMaxRecords bounds the records kept in memory.
const defaultMaxRecords = 200_000

// Store keeps what the fake Send API recorded: sends, payments and pending
// injected failures. It is safe for concurrent use.
type Store struct {
	mu          sync.Mutex
	seq         int64
	records     []Record
	byRecipient map[string][]Record
	changed     chan struct{} // closed on every add: for waiters on all recipients
	// changedBy is closed when a record for that recipient is added, so a
	// shopper waiting for its own messages is not woken by everyone else's
	// (with thousands of simulated shoppers that herd was the bottleneck).
	changedBy map[string]chan struct{}
	payments  map[string]*payment // by reference_id
	failures  []Failure
	max       int
	media     map[string]Media // uploads by media id
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		byRecipient: make(map[string][]Record),
		changed:     make(chan struct{}),
		changedBy:   make(map[string]chan struct{}),
		payments:    make(map[string]*payment),
		max:         defaultMaxRecords,
	}
}

// recipientKey is the key records are indexed under: phone digits or BSUID.
func recipientKey(to string) string {
	if whatsapp.IsBSUID(to) {
		return to
	}
	return strings.TrimPrefix(strings.TrimSpace(to), "+")
}

// add records r (assigning Seq and Time) and wakes waiters.
func (s *Store) add(r Record) Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	r.Seq = s.seq
	r.Time = time.Now().UTC()
	s.records = append(s.records, r)
	key := r.To
	if key == "" {
		key = r.Recipient
	}
	if key != "" {
		s.byRecipient[key] = append(s.byRecipient[key], r)
	}
	if len(s.records) > s.max {
		s.trimLocked()
	}
	close(s.changed)
	s.changed = make(chan struct{})
	if ch, ok := s.changedBy[recipientKey(key)]; ok {
		close(ch)
		delete(s.changedBy, recipientKey(key))
	}
	return r
}

// trimLocked drops the oldest quarter of the records.
func (s *Store) trimLocked() {
	drop := len(s.records) / 4
	s.records = append([]Record(nil), s.records[drop:]...)
	s.byRecipient = make(map[string][]Record)
	for _, r := range s.records {
		key := r.To
		if key == "" {
			key = r.Recipient
		}
		if key != "" {
			s.byRecipient[key] = append(s.byRecipient[key], r)
		}
	}
}

// Query returns up to limit records with Seq > after, for one recipient
// (phone digits, "+digits" or BSUID) or for all when to is "".
func (s *Store) Query(to string, after int64, limit int) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queryLocked(to, after, limit)
}

func (s *Store) queryLocked(to string, after int64, limit int) []Record {
	src := s.records
	if to != "" {
		src = s.byRecipient[recipientKey(to)]
	}
	i := sort.Search(len(src), func(i int) bool { return src[i].Seq > after })
	end := len(src)
	if limit > 0 && end-i > limit {
		end = i + limit
	}
	return append([]Record(nil), src[i:end]...)
}

// Wait is Query that waits up to wait for a first matching record.
func (s *Store) Wait(ctx context.Context, to string, after int64, limit int, wait time.Duration) ([]Record, error) {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		s.mu.Lock()
		recs := s.queryLocked(to, after, limit)
		changed := s.changed
		if to != "" {
			k := recipientKey(to)
			ch, ok := s.changedBy[k]
			if !ok {
				ch = make(chan struct{})
				s.changedBy[k] = ch
			}
			changed = ch
		}
		s.mu.Unlock()
		if len(recs) > 0 || wait <= 0 {
			return recs, nil
		}
		select {
		case <-changed:
		case <-timer:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Sent implements SimAPI.
func (s *Store) Sent(ctx context.Context, to string, after int64, wait time.Duration) ([]Record, error) {
	return s.Wait(ctx, to, after, 0, wait)
}

// LastSeq returns the sequence number of the latest record.
func (s *Store) LastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// InjectFailure queues a failure and returns the number of failing sends pending.
func (s *Store) InjectFailure(f Failure) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Count > 0 {
		s.failures = append(s.failures, f)
	}
	return s.pendingFailuresLocked()
}

// ClearFailures drops all pending injected failures.
func (s *Store) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
}

func (s *Store) pendingFailuresLocked() int {
	n := 0
	for _, f := range s.failures {
		n += f.Count
	}
	return n
}

// nextFailure consumes one pending failure.
func (s *Store) nextFailure() (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.failures) > 0 {
		f := &s.failures[0]
		if f.Count <= 0 {
			s.failures = s.failures[1:]
			continue
		}
		f.Count--
		out := *f
		if f.Count == 0 {
			s.failures = s.failures[1:]
		}
		return out, true
	}
	return Failure{}, false
}

// Reset forgets everything recorded (the sequence keeps increasing).
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
	s.byRecipient = make(map[string][]Record)
	s.payments = make(map[string]*payment)
	s.failures = nil
	s.media = nil
}

// registerOrder records a pending payment for an order_details message.
func (s *Store) registerOrder(m *whatsapp.OutboundMessage) {
	p := m.Interactive.Action.Parameters
	if p == nil || p.TotalAmount == nil || len(p.PaymentSettings) == 0 || p.PaymentSettings[0].PaymentGateway == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.payments[p.ReferenceID]; ok && old.record.Status == whatsapp.PaymentCaptured {
		return
	}
	s.payments[p.ReferenceID] = &payment{
		configName: p.PaymentSettings[0].PaymentGateway.ConfigurationName,
		record: whatsapp.PaymentRecord{
			ReferenceID: p.ReferenceID,
			Status:      whatsapp.PaymentPending,
			Currency:    p.Currency,
			Amount:      *p.TotalAmount,
		},
	}
}

// ErrUnknownPayment is returned for a reference_id no order_details named.
var ErrUnknownPayment = errors.New("no order_details message with this reference_id and configuration")

// CapturePayment marks the payment of an order_details as captured with a
// successful transaction, as WhatsApp Pay does when the shopper pays.
func (s *Store) CapturePayment(_ context.Context, c Capture) (*whatsapp.PaymentRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[c.ReferenceID]
	if !ok || (c.ConfigurationName != "" && p.configName != c.ConfigurationName) {
		return nil, ErrUnknownPayment
	}
	if p.record.Status != whatsapp.PaymentCaptured {
		now := whatsapp.UnixTime(time.Now().Unix())
		id := c.TransactionID
		if id == "" {
			id = "order_" + randomToken(10)
		}
		method := c.Method
		if method == "" {
			method = "upi"
		}
		p.record.Status = whatsapp.PaymentCaptured
		p.record.Transactions = append(p.record.Transactions, whatsapp.Transaction{
			ID: id, Type: whatsapp.GatewayRazorpay, Status: whatsapp.TxnStatusSuccess,
			CreatedTimestamp: now, UpdatedTimestamp: now, Method: &whatsapp.PaymentMethod{Type: method},
		})
	}
	rec := p.record
	rec.Transactions = append([]whatsapp.Transaction(nil), p.record.Transactions...)
	return &rec, nil
}

// lookupPayment answers the payment lookup API.
func (s *Store) lookupPayment(configName, ref string) (whatsapp.PaymentRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[ref]
	if !ok || p.configName != configName {
		return whatsapp.PaymentRecord{}, false
	}
	rec := p.record
	rec.Transactions = append([]whatsapp.Transaction(nil), p.record.Transactions...)
	return rec, true
}

// randomToken returns n random URL-safe characters.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// SendAPI is the fake Cloud API: the Send API, the payment lookup, and the
// /_sim inspection endpoints.
type SendAPI struct {
	Store       *Store
	AccessToken string
	// Logger logs one line per request, without personal data; nil is silent.
	Logger *log.Logger
}

// maxSendBody bounds a Send API request body.
const maxSendBody = 1 << 20

var (
	versionRe = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,3}$`)
	pnidRe    = regexp.MustCompile(`^[0-9]{1,32}$`)
)

// Handler returns the HTTP handler of the fake API.
func (a *SendAPI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{pnid}/messages", a.handleSend)
	mux.HandleFunc("POST /{version}/{pnid}/messages", a.handleSend)
	mux.HandleFunc("GET /{pnid}/payments/{config}/{ref}", a.handlePaymentLookup)
	mux.HandleFunc("GET /{version}/{pnid}/payments/{config}/{ref}", a.handlePaymentLookup)
	mux.HandleFunc("POST /{pnid}/media", a.handleMedia)
	mux.HandleFunc("POST /{version}/{pnid}/media", a.handleMedia)
	mux.HandleFunc("GET /_sim/media/{id}", a.handleSimMedia)
	mux.HandleFunc("GET /_sim/messages", a.handleSimMessages)
	mux.HandleFunc("POST /_sim/fail", a.handleSimFail)
	mux.HandleFunc("DELETE /_sim/fail", a.handleSimFailClear)
	mux.HandleFunc("POST /_sim/payments", a.handleSimCapture)
	mux.HandleFunc("POST /_sim/reset", a.handleSimReset)
	mux.HandleFunc("GET /_sim/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "last_seq": a.Store.LastSeq()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		graphError(w, http.StatusBadRequest, 100, "Unknown path components", "")
	})
	return mux
}

func (a *SendAPI) logf(format string, args ...any) {
	if a.Logger != nil {
		a.Logger.Printf(format, args...)
	}
}

// graphError writes a Graph API error body.
func graphError(w http.ResponseWriter, status, code int, message, details string) {
	ge := whatsapp.GraphErrorResponse{Error: whatsapp.GraphError{
		Message: fmt.Sprintf("(#%d) %s", code, message), Type: "OAuthException", Code: code, FBTraceID: randomToken(11),
	}}
	if code == 190 {
		ge.Error.Message = message
	}
	if details != "" {
		ge.Error.ErrorData = &whatsapp.GraphErrorData{MessagingProduct: whatsapp.MessagingProduct, Details: details}
	}
	writeJSON(w, status, ge)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// authorized checks the Bearer token like Graph does (401, code 190).
func (a *SendAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || a.AccessToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(a.AccessToken)) != 1 {
		graphError(w, http.StatusUnauthorized, 190, "Invalid OAuth access token - Cannot parse access token", "")
		return false
	}
	return true
}

// pathOK checks the version and phone-number id path segments.
func pathOK(w http.ResponseWriter, r *http.Request) (string, bool) {
	if v := r.PathValue("version"); v != "" && !versionRe.MatchString(v) {
		graphError(w, http.StatusBadRequest, 100, "Unknown path components", "unknown Graph API version")
		return "", false
	}
	pnid := r.PathValue("pnid")
	if !pnidRe.MatchString(pnid) {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "phone number id must be numeric")
		return "", false
	}
	return pnid, true
}

func (a *SendAPI) handleSend(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		a.logf("send: 401 bad token")
		return
	}
	pnid, ok := pathOK(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "Content-Type must be application/json")
			return
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSendBody))
	dec.DisallowUnknownFields()
	var m whatsapp.OutboundMessage
	if err := dec.Decode(&m); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			graphError(w, http.StatusRequestEntityTooLarge, 100, "Invalid parameter", "request body too large")
			return
		}
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "malformed request body: "+err.Error())
		a.logf("send: 400 malformed body")
		return
	}
	if dec.More() {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "trailing data after the JSON body")
		return
	}
	if err := m.Validate(); err != nil {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", err.Error())
		a.logf("send: 400 %v", err)
		return
	}
	if m.Document != nil {
		if _, ok := a.Store.mediaByID(m.Document.ID); !ok {
			graphError(w, http.StatusBadRequest, 131053, "Media upload error", "unknown media id")
			return
		}
	}
	if f, ok := a.Store.nextFailure(); ok {
		status := f.HTTPStatus
		if status == 0 {
			status = defaultFailureStatus(f.Code)
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		msg := f.Message
		if msg == "" {
			msg = "Injected failure"
		}
		graphError(w, status, f.Code, msg, "injected by wasim /_sim/fail")
		a.logf("send: injected failure code %d http %d", f.Code, status)
		return
	}
	raw, err := m.Marshal()
	if err != nil {
		graphError(w, http.StatusInternalServerError, 1, "An unknown error occurred", "")
		return
	}
	rec := Record{PhoneNumberID: pnid, Body: raw}
	if m.Type == "" && m.Status == whatsapp.StatusRead {
		rec.Type, rec.MessageID = TypeMarkRead, m.MessageID
		rec = a.Store.add(rec)
		a.logf("send: seq %d mark_read", rec.Seq)
		writeJSON(w, http.StatusOK, whatsapp.SendResponse{Success: true})
		return
	}
	to := m.To
	if to == "" {
		to = m.Recipient
	}
	rec.Type, rec.MessageID = m.Type, whatsapp.NewOutboundWAMID(to) // Meta's format: it holds the phone number
	rec.To, rec.Recipient = strings.TrimPrefix(m.To, "+"), m.Recipient
	if m.Interactive != nil {
		rec.InteractiveType = m.Interactive.Type
		if m.Interactive.Type == whatsapp.InteractiveOrderDetails {
			a.Store.registerOrder(&m)
		}
	}
	rec = a.Store.add(rec)
	a.logf("send: seq %d %s", rec.Seq, rec.Kind())
	resp := whatsapp.SendResponse{MessagingProduct: whatsapp.MessagingProduct, Messages: []whatsapp.SentMessage{{ID: rec.MessageID}}}
	if m.To != "" {
		resp.Contacts = []whatsapp.SentContact{{Input: m.To, WaID: rec.To}}
	} else {
		resp.Contacts = []whatsapp.SentContact{{Input: m.Recipient, UserID: m.Recipient}}
	}
	writeJSON(w, http.StatusOK, resp)
}

// defaultFailureStatus is the HTTP status Graph uses with a code.
func defaultFailureStatus(code int) int {
	switch code {
	case 130429, 4, 80007:
		return http.StatusTooManyRequests
	case 190:
		return http.StatusUnauthorized
	case 0, 1, 2, 131000, 131016:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func (a *SendAPI) handlePaymentLookup(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	if _, ok := pathOK(w, r); !ok {
		return
	}
	ref := r.PathValue("ref")
	if !whatsapp.ValidReferenceID(ref) {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "reference_id must be 1-35 characters of [A-Za-z0-9_.-]")
		return
	}
	rec, ok := a.Store.lookupPayment(r.PathValue("config"), ref)
	if !ok {
		graphError(w, http.StatusNotFound, 100, "Object does not exist", "no payment for this reference_id and configuration")
		return
	}
	a.logf("payment lookup: %s", rec.Status)
	writeJSON(w, http.StatusOK, whatsapp.PaymentLookupResponse{Payments: []whatsapp.PaymentRecord{rec}})
}

func (a *SendAPI) handleSimMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			simError(w, http.StatusBadRequest, "after must be a non-negative integer")
			return
		}
		after = n
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			simError(w, http.StatusBadRequest, "limit must be 1-10000")
			return
		}
		limit = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 30*time.Second {
			simError(w, http.StatusBadRequest, "wait must be a duration up to 30s")
			return
		}
		wait = d
	}
	recs, err := a.Store.Wait(r.Context(), q.Get("to"), after, limit, wait)
	if err != nil {
		return // client went away
	}
	if recs == nil {
		recs = []Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func simError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": "bad_request", "message": msg}})
}

func decodeSimBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		simError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func (a *SendAPI) handleSimFail(w http.ResponseWriter, r *http.Request) {
	var f Failure
	if !decodeSimBody(w, r, &f) {
		return
	}
	if f.Count == 0 {
		f.Count = 1
	}
	if f.Count < 0 || f.Count > 1_000_000 || f.Code < 0 || (f.HTTPStatus != 0 && (f.HTTPStatus < 400 || f.HTTPStatus > 599)) || f.RetryAfter < 0 {
		simError(w, http.StatusBadRequest, "count must be 1-1000000, code non-negative, http_status 400-599")
		return
	}
	if f.Code == 0 && f.HTTPStatus == 0 {
		f.Code = 131000
	}
	pending := a.Store.InjectFailure(f)
	a.logf("sim: %d failing sends pending", pending)
	writeJSON(w, http.StatusOK, map[string]int{"pending": pending})
}

func (a *SendAPI) handleSimFailClear(w http.ResponseWriter, r *http.Request) {
	a.Store.ClearFailures()
	writeJSON(w, http.StatusOK, map[string]int{"pending": 0})
}

func (a *SendAPI) handleSimCapture(w http.ResponseWriter, r *http.Request) {
	var c Capture
	if !decodeSimBody(w, r, &c) {
		return
	}
	rec, err := a.Store.CapturePayment(r.Context(), c)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": err.Error()}})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *SendAPI) handleSimReset(w http.ResponseWriter, r *http.Request) {
	a.Store.Reset()
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
