package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

type ctxKey int

const (
	keyPartner ctxKey = iota
	keyScopes
)

// bearer extracts the bearer token, refusing absurd headers early.
func bearer(c *fiber.Ctx) (string, error) {
	h := c.Request().Header.Peek(fiber.HeaderAuthorization)
	if len(h) == 0 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="sieve"`)
		return "", broker.Errorf(broker.EUnauthorized, "missing bearer token")
	}
	if len(h) > MaxAuthorization {
		return "", broker.Errorf(broker.EUnauthorized, "invalid token")
	}
	scheme, tok, ok := strings.Cut(string(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", broker.Errorf(broker.EUnauthorized, "invalid token")
	}
	return strings.TrimSpace(tok), nil
}

// partner authenticates the bearer token, checks the scope and the
// partner's rate limit.
func (s *Server) partner(scope broker.Scope) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok, err := bearer(c)
		if err != nil {
			return err
		}
		p, scopes, err := s.deps.Auth.Authenticate(c.UserContext(), tok)
		if err != nil {
			if broker.ErrorCode(err) == broker.EUnavailable {
				return err
			}
			return broker.Errorf(broker.EUnauthorized, "invalid token")
		}
		// A token issued before its partner's kind was checked may carry
		// a compliance scope: it grants nothing to other kinds.
		scopes = broker.ScopesForKind(p.Kind, scopes)
		if ok, wait := s.lim.allow(p.ID, time.Now()); !ok {
			s.deps.Metrics.limited.WithLabelValues(string(p.Kind)).Inc()
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait/time.Second)+1))
			return broker.Errorf(broker.ERateLimited, "rate limit exceeded")
		}
		if scope != "" && !slices.Contains(scopes, scope) { // "": any partner token (events, acks)
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="insufficient_scope", scope="`+scope+`"`)
			return broker.Errorf(broker.EForbidden, "token lacks scope %s", scope)
		}
		p.Scopes = scopes
		c.Locals(keyPartner, p)
		return c.Next()
	}
}

func partnerOf(c *fiber.Ctx) broker.Partner {
	p, _ := c.Locals(keyPartner).(broker.Partner)
	return p
}

// Bounds on a JSON request body, checked by one byte scan before anything
// is decoded: a body within the 1 MB limit can still hold 68,000 keys, and
// decoding them all costs every partner's latency, not just the sender's.
const (
	// MaxJSONDepth is the deepest nesting of objects and arrays accepted.
	MaxJSONDepth = 32
	// MaxJSONMembers caps object members plus array elements in a body
	// (every API body has a few dozen at most); over it is a 413.
	MaxJSONMembers = 256
)

// decodeJSON reads a JSON body strictly: the right content type, valid
// UTF-8, bounded depth and member count (both checked before decoding),
// one value, no unknown fields (when strict).
func decodeJSON(c *fiber.Ctx, v any, strict bool) error {
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return broker.Errorf(broker.EUnsupported, "content type must be application/json")
	}
	body := c.Body()
	switch tooDeep, tooMany := jsonShape(body, MaxJSONDepth, MaxJSONMembers); {
	case tooDeep:
		return broker.Errorf(broker.EInvalid, "JSON nested too deeply")
	case tooMany:
		return broker.Errorf(broker.ETooLarge, "JSON body has more than %d members", MaxJSONMembers)
	}
	if !utf8.Valid(body) {
		return broker.Errorf(broker.EInvalid, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return broker.Errorf(broker.EInvalid, "field %q has the wrong type", te.Field)
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return broker.Errorf(broker.EInvalid, "malformed JSON body")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return broker.Errorf(broker.EInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return broker.Errorf(broker.EInvalid, "malformed JSON body")
	}
	if dec.More() {
		return broker.Errorf(broker.EInvalid, "trailing data after the JSON body")
	}
	return nil
}

// jsonShape scans a JSON text once without decoding it and reports
// whether it nests deeper than maxDepth or holds more than maxMembers
// object members and array elements. It stops at the first excess, so a
// hostile body costs at most one pass over its bytes. Malformed text is
// left for the decoder to refuse.
func jsonShape(b []byte, maxDepth, maxMembers int) (tooDeep, tooMany bool) {
	var stack [64]byte // open containers ('{' or '['), maxDepth <= 64
	maxDepth = min(maxDepth, len(stack))
	d, members, inStr, esc, firstElem := 0, 0, false, false, false
	for _, ch := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
			}
			continue
		}
		if firstElem && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' {
			// The first element of an array (none when it closes at once).
			firstElem = false
			if ch != ']' {
				members++
			}
		}
		switch ch {
		case '"':
			inStr = true
		case '{', '[':
			if d == maxDepth {
				return true, false
			}
			stack[d] = ch
			d++
			firstElem = ch == '['
		case '}', ']':
			if d > 0 {
				d--
			}
		case ':':
			members++
		case ',':
			if d > 0 && stack[d-1] == '[' {
				members++
			}
		default:
			continue
		}
		if members > maxMembers {
			return false, true
		}
	}
	return false, false
}

func (s *Server) listOrders(c *fiber.Ctx) error {
	f := commerce.OrderFilter{Status: c.Query("status"), Cursor: c.Query("cursor")}
	if f.Status != "" && !slices.Contains(append([]string{commerce.StatusPlaced}, commerce.PartnerStatuses...), f.Status) {
		return broker.Errorf(broker.EInvalid, "unknown status")
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return broker.Errorf(broker.EInvalid, "since must be an RFC 3339 time")
		}
		f.Since = t
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return broker.Errorf(broker.EInvalid, "limit must be 1 to 100")
		}
		f.Limit = n
	}
	if len(f.Cursor) > 200 {
		return broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	views, next, decision, err := s.deps.Shop.PartnerOrders(c.UserContext(), partnerOf(c), f)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", decision)
	if views == nil {
		views = []commerce.RetailerView{}
	}
	var nextCursor any
	if next != "" {
		nextCursor = next
	}
	return c.JSON(fiber.Map{"orders": views, "next_cursor": nextCursor})
}

func (s *Server) getOrder(c *fiber.Ctx) error {
	return s.orderView(c, broker.PurposeOrderFulfilment)
}

func (s *Server) getDelivery(c *fiber.Ctx) error {
	return s.orderView(c, broker.PurposeDelivery)
}

func (s *Server) orderView(c *fiber.Ctx, purpose broker.Purpose) error {
	view, d, err := s.deps.Shop.PartnerOrder(c.UserContext(), partnerOf(c), c.Params("id"), purpose)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", d.ID)
	if d.Outcome == "denied" {
		return broker.Errorf(broker.EDenied, "release denied: %s", d.Reason)
	}
	return c.JSON(view)
}

func (s *Server) updateStatus(c *fiber.Ctx) error {
	var body map[string]any
	if err := decodeJSON(c, &body, false); err != nil {
		return err
	}
	st, ok := body["status"].(string)
	if !ok {
		return broker.Errorf(broker.EInvalid, "status is required")
	}
	delete(body, "status")
	res, err := s.deps.Shop.UpdateStatus(c.UserContext(), partnerOf(c), c.Params("id"),
		commerce.StatusUpdate{Status: st, Extra: body})
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (s *Server) dispatchOrder(c *fiber.Ctx) error {
	var body struct {
		Logistics string `json:"logistics"`
	}
	if err := decodeJSON(c, &body, true); err != nil {
		return err
	}
	res, err := s.deps.Shop.Dispatch(c.UserContext(), partnerOf(c), c.Params("id"), body.Logistics)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (s *Server) relayMessage(c *fiber.Ctx) error {
	var body struct {
		Text string `json:"text"`
	}
	if err := decodeJSON(c, &body, true); err != nil {
		return err
	}
	id, err := s.deps.Shop.Relay(c.UserContext(), partnerOf(c), c.Params("id"), body.Text)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "decision_id": id})
}

func (s *Server) dataRequest(c *fiber.Ctx) error {
	var body struct {
		Subject string   `json:"subject"`
		Purpose string   `json:"purpose"`
		Fields  []string `json:"fields"`
	}
	if err := decodeJSON(c, &body, true); err != nil {
		return err
	}
	if body.Subject == "" || body.Purpose == "" {
		return broker.Errorf(broker.EInvalid, "subject and purpose are required")
	}
	d, err := s.deps.Shop.DataRequest(c.UserContext(), partnerOf(c), body.Subject, broker.Purpose(body.Purpose), body.Fields)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", d.ID)
	released := d.Released
	if released == nil {
		released = broker.Record{}
	}
	denied := d.Withheld
	if denied == nil {
		denied = []broker.Withheld{}
	}
	privacy := fiber.Map{"decision_id": d.ID, "purpose": string(d.Purpose)}
	if !d.RetainUntil.IsZero() {
		privacy["retain_until"] = d.RetainUntil
	}
	return c.JSON(fiber.Map{"released": released, "denied": denied, "decision_id": d.ID, "privacy": privacy})
}
