package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one Send API request when Client.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// maxResponseSize bounds how much of a Graph API response is read.
const maxResponseSize = 1 << 20

// maxRetryAfter caps a Retry-After hint.
const maxRetryAfter = time.Hour

// Client calls the Cloud API Send API and the payment lookup. It is safe for
// concurrent use. The access token is only ever put in the Authorization
// header.
type Client struct {
	// BaseURL is the Graph API base including the version, e.g.
	// "https://graph.facebook.com/v25.0", or the wasim simulator.
	BaseURL string
	// AccessToken is the system-user or business token.
	AccessToken string
	// HTTPClient defaults to a client with a private transport.
	HTTPClient *http.Client
	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration
	// UserAgent is sent when set.
	UserAgent string
}

// NewClient returns a Client for baseURL (with the version segment) and token.
func NewClient(baseURL, accessToken string) *Client {
	return &Client{
		BaseURL:     baseURL,
		AccessToken: accessToken,
		HTTPClient: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}},
	}
}

// SendResult is the accepted answer of the Send API. Acceptance is not
// delivery: delivery arrives later as status webhooks.
type SendResult struct {
	// MessageID is the wamid of the accepted message.
	MessageID string
	// WaID is the recipient's WhatsApp id (absent when sent to a BSUID).
	WaID string
	// UserID is the recipient's BSUID when the Send API returned one.
	UserID string
}

// SendError is a failed Send API (or payment lookup) call, classified for the
// outbox: Retryable failures may be retried after RetryAfter (when non-zero)
// or a backoff; the others must not be. Reason is a fixed description of the
// error code and never contains personal data.
type SendError struct {
	// Code is the Graph error code (0 when there was no Graph error).
	Code int
	// HTTPStatus is the HTTP status (0 on a network error).
	HTTPStatus int
	Retryable  bool
	RetryAfter time.Duration
	Reason     string
	// FBTraceID is Meta's opaque trace id, for support requests.
	FBTraceID string
	// Err is the underlying network or decoding error, if any.
	Err error
}

// Error implements error.
func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("whatsapp: ")
	if e.Retryable {
		b.WriteString("retryable ")
	} else {
		b.WriteString("permanent ")
	}
	b.WriteString("error")
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (http %d)", e.HTTPStatus)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// IsRetryable reports whether err (from [Client.Send] and friends) may be
// retried, and the delay the server asked for (0 when none). Validation
// errors are never retryable; a SendError says so itself; other errors (a
// cancelled context) are treated as retryable.
func IsRetryable(err error) (bool, time.Duration) {
	if err == nil {
		return false, 0
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Retryable, se.RetryAfter
	}
	var ve *ValidationError
	if errors.As(err, &ve) || errors.Is(err, ErrInvalidRecipient) {
		return false, 0
	}
	return true, 0
}

// GraphErrorResponse is the body of a Graph API error.
type GraphErrorResponse struct {
	Error GraphError `json:"error"`
}

// GraphError is a Graph API error. Message and Details may quote the request
// (and so personal data): do not log them.
type GraphError struct {
	Message      string          `json:"message"`
	Type         string          `json:"type,omitempty"`
	Code         int             `json:"code"`
	ErrorSubcode int             `json:"error_subcode,omitempty"`
	ErrorData    *GraphErrorData `json:"error_data,omitempty"`
	FBTraceID    string          `json:"fbtrace_id,omitempty"`
}

// GraphErrorData carries the details of a Graph error.
type GraphErrorData struct {
	MessagingProduct string `json:"messaging_product,omitempty"`
	Details          string `json:"details,omitempty"`
}

// errorClass is how a Graph error code is handled.
type errorClass struct {
	retryable bool
	reason    string
}

// graphErrors classifies the codes the broker meets. Codes not listed fall
// back to the HTTP status: 429 and 5xx are retryable, other 4xx permanent.
var graphErrors = map[int]errorClass{
	1:      {true, "API temporarily unavailable"},
	2:      {true, "service temporarily unavailable"},
	4:      {true, "application request limit reached"},
	80007:  {true, "WhatsApp Business Account rate limit reached"},
	130429: {true, "Cloud API throughput rate limit reached"},
	131000: {true, "unknown error at WhatsApp"},
	131016: {true, "WhatsApp service unavailable"},
	131056: {true, "too many messages to this recipient (pair rate limit)"},

	10:     {false, "permission denied"},
	100:    {false, "invalid parameter"},
	190:    {false, "access token invalid or expired"},
	200:    {false, "permission error"},
	368:    {false, "temporarily blocked for policy violations"},
	2046:   {false, "invalid order status transition"},
	2047:   {false, "order already paid and cannot be canceled"},
	131008: {false, "required parameter missing"},
	131009: {false, "parameter value invalid"},
	131021: {false, "recipient cannot be the sender"},
	131026: {false, "message undeliverable to this recipient"},
	131030: {false, "recipient not in the allowed list"},
	131047: {false, "re-engagement required: more than 24 hours since the customer's last message"},
	131048: {false, "spam rate limit: message quality too low"},
	131049: {false, "not delivered to maintain ecosystem engagement"},
	131051: {false, "unsupported message type"},
	131062: {false, "business-scoped user id not supported for this message type"},
	133010: {false, "phone number not registered on Cloud API"},
}

// classify turns an HTTP status, a Graph error (possibly nil) and the
// response headers into a SendError.
func classify(status int, ge *GraphError, h http.Header) *SendError {
	se := &SendError{HTTPStatus: status}
	if ge != nil {
		se.Code = ge.Code
		se.FBTraceID = ge.FBTraceID
	}
	if c, ok := graphErrors[se.Code]; ok && se.Code != 0 {
		se.Retryable, se.Reason = c.retryable, c.reason
	} else {
		switch {
		case status == http.StatusTooManyRequests:
			se.Retryable, se.Reason = true, "rate limited"
		case status >= 500:
			se.Retryable, se.Reason = true, "server error"
		case se.Code != 0:
			se.Reason = "graph error"
		default:
			se.Reason = "request rejected"
		}
	}
	if se.Retryable {
		se.RetryAfter = parseRetryAfter(h.Get("Retry-After"), time.Now())
	}
	return se
}

// parseRetryAfter reads delay-seconds or an HTTP date, capped at an hour.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

func (c *Client) endpoint(segments ...string) (string, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		return "", errors.New("whatsapp: client has no BaseURL")
	}
	var b strings.Builder
	b.WriteString(base)
	for _, s := range segments {
		if s == "" {
			return "", errors.New("whatsapp: empty path segment")
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String(), nil
}

// do performs one request and returns the body of a 2xx answer or a
// *SendError.
func (c *Client) do(ctx context.Context, method, endpoint string, body []byte) ([]byte, error) {
	return c.doAs(ctx, method, endpoint, body, "application/json")
}

// doAs is do with the body's content type.
func (c *Client) doAs(ctx context.Context, method, endpoint string, body []byte, contentType string) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &SendError{Retryable: true, Reason: "network error", Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		if resp.StatusCode/100 == 2 {
			// The request was accepted; retrying could send it twice.
			return nil, &SendError{HTTPStatus: resp.StatusCode, Reason: "reading the success response failed", Err: err}
		}
		return nil, &SendError{HTTPStatus: resp.StatusCode, Retryable: true, Reason: "reading the error response failed", Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	var ger GraphErrorResponse
	if json.Unmarshal(data, &ger) == nil && ger.Error.Code != 0 {
		return nil, classify(resp.StatusCode, &ger.Error, resp.Header)
	}
	return nil, classify(resp.StatusCode, nil, resp.Header)
}

// SendResponse is the Send API's success body, in Graph's key order: the
// client reads it and the wasim simulator writes it. A mark-as-read answer
// is {"success": true} alone.
type SendResponse struct {
	MessagingProduct string        `json:"messaging_product,omitempty"`
	Contacts         []SentContact `json:"contacts,omitempty"`
	Messages         []SentMessage `json:"messages,omitempty"`
	Success          bool          `json:"success,omitempty"`
}

// SentContact is the recipient of a sent message as Graph names it: the
// input as given, and the wa_id, or the user_id (BSUID) of a username user.
type SentContact struct {
	Input  string `json:"input"`
	WaID   string `json:"wa_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// SentMessage is the id (wamid) of a sent message.
type SentMessage struct {
	ID string `json:"id"`
}

// Send validates and sends a message from the business number phoneNumberID.
// Errors are a *ValidationError (fix the message), ErrInvalidRecipient, or a
// *SendError; see [IsRetryable].
func (c *Client) Send(ctx context.Context, phoneNumberID string, m *OutboundMessage) (*SendResult, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return c.SendRaw(ctx, phoneNumberID, body)
}

// SendRaw sends an already-encoded message body, e.g. one stored in a
// durable outbox, without validating it again.
func (c *Client) SendRaw(ctx context.Context, phoneNumberID string, body []byte) (*SendResult, error) {
	ep, err := c.endpoint(phoneNumberID, "messages")
	if err != nil {
		return nil, err
	}
	data, err := c.do(ctx, http.MethodPost, ep, body)
	if err != nil {
		return nil, err
	}
	var r SendResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &SendError{HTTPStatus: http.StatusOK, Reason: "malformed success response", Err: errors.New(jsonErrorText(err))}
	}
	res := &SendResult{}
	if len(r.Messages) > 0 {
		res.MessageID = r.Messages[0].ID
	}
	if len(r.Contacts) > 0 {
		res.WaID, res.UserID = r.Contacts[0].WaID, r.Contacts[0].UserID
	}
	if res.MessageID == "" && !r.Success {
		return nil, &SendError{HTTPStatus: http.StatusOK, Reason: "success response without a message id"}
	}
	return res, nil
}

// MarkRead marks an inbound message (and the earlier ones) as read.
func (c *Client) MarkRead(ctx context.Context, phoneNumberID, messageID string) error {
	_, err := c.Send(ctx, phoneNumberID, NewMarkRead(messageID))
	return err
}

// PaymentLookupResponse is the answer of the payment lookup API.
type PaymentLookupResponse struct {
	Payments []PaymentRecord `json:"payments"`
}

// PaymentRecord is a payment as the lookup API reports it. Transactions is
// empty until the shopper attempts to pay; at most one is "success".
type PaymentRecord struct {
	ReferenceID  string        `json:"reference_id"`
	Status       string        `json:"status"`
	Currency     string        `json:"currency"`
	Amount       Amount        `json:"amount"`
	Transactions []Transaction `json:"transactions,omitempty"`
}

// Captured reports whether the payment record is captured with a successful
// transaction.
func (p *PaymentRecord) Captured() bool {
	if p.Status != PaymentCaptured {
		return false
	}
	for _, t := range p.Transactions {
		if t.Status == TxnStatusSuccess {
			return true
		}
	}
	return false
}

// PaymentLookup asks WhatsApp for the payments of an order_details
// reference_id: GET /{phone-number-id}/payments/{configuration-name}/{reference-id}.
// The broker must confirm a payment this way rather than trust the webhook
// alone.
func (c *Client) PaymentLookup(ctx context.Context, phoneNumberID, configName, referenceID string) (*PaymentLookupResponse, error) {
	if !ValidReferenceID(referenceID) {
		return nil, &ValidationError{Field: "reference_id", Problem: "must be 1-35 characters of [A-Za-z0-9_.-]"}
	}
	ep, err := c.endpoint(phoneNumberID, "payments", configName, referenceID)
	if err != nil {
		return nil, err
	}
	data, err := c.do(ctx, http.MethodGet, ep, nil)
	if err != nil {
		return nil, err
	}
	var r PaymentLookupResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &SendError{HTTPStatus: http.StatusOK, Reason: "malformed payment lookup response", Err: errors.New(jsonErrorText(err))}
	}
	return &r, nil
}
