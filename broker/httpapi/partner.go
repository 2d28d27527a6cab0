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

// Partner authenticates the bearer token, checks the scope and the
// partner's rate limit; the handlers after it read the partner with
// PartnerOf. Scope "" admits any partner token.
func (s *Server) Partner(scope broker.Scope) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok, err := bearer(c)
		if err != nil {
			return err
		}
		if s.deps.Auth == nil {
			return broker.Errorf(broker.EUnauthorized, "partner tokens are not accepted here")
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

// PartnerOf is the partner Partner authenticated for this request (the
// zero Partner when none was).
func PartnerOf(c *fiber.Ctx) broker.Partner {
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

// DecodeJSON reads a JSON body strictly: the right content type, valid
// UTF-8, bounded depth and member count (both checked before decoding),
// one value, no unknown fields (when strict).
func DecodeJSON(c *fiber.Ctx, v any, strict bool) error {
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
