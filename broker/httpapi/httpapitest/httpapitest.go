// Package httpapitest holds fakes of broker/httpapi's ports and a request
// helper, so that the handlers mounted on the shell (the broker's own, the
// shop's in commerce/httpapi) are tested without a database, as wtf's mock
// package and http/server_test.go do: each fake has a func field per
// method, which a test sets for what it expects to be called. An unset one
// panics, which the recover middleware answers with a 500, so an
// unexpected call fails the test.
package httpapitest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Audit fakes httpapi.AuditAPI.
type Audit struct {
	CheckpointFn  func() (string, error)
	InclusionFn   func(index, size uint64) (any, error)
	ConsistencyFn func(from, to uint64) (any, error)
	EntriesFn     func(f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error)
	RecordFn      func(ev broker.Event) error
}

func (a *Audit) Checkpoint(context.Context) (string, error) { return a.CheckpointFn() }
func (a *Audit) Inclusion(_ context.Context, index, size uint64) (any, error) {
	return a.InclusionFn(index, size)
}
func (a *Audit) Consistency(_ context.Context, from, to uint64) (any, error) {
	return a.ConsistencyFn(from, to)
}
func (a *Audit) Entries(_ context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	return a.EntriesFn(f, cursor, limit)
}
func (a *Audit) Record(_ context.Context, ev broker.Event) error { return a.RecordFn(ev) }

// OfficerHeader names the officer Officers signs in.
const OfficerHeader = "X-Test-Officer"

// Officers fakes httpapi.OfficerAuth: it signs in the officer named by the
// OfficerHeader header and remembers, per request, whether the route asked
// for a mutating session.
type Officers struct{ Mutating []bool }

func (o *Officers) Officer(c *fiber.Ctx, mutating bool) (broker.Party, bool) {
	o.Mutating = append(o.Mutating, mutating)
	id := c.Get(OfficerHeader)
	return broker.Party{ID: id, Kind: broker.KindOfficer}, id != ""
}

// Authenticator fakes httpapi.Authenticator: the bearer token is the key
// of Partners.
type Authenticator struct {
	Partners map[string]broker.Partner
}

func (a *Authenticator) Authenticate(_ context.Context, bearer string) (broker.Partner, []broker.Scope, error) {
	p, ok := a.Partners[bearer]
	if !ok {
		return broker.Partner{}, nil, broker.Errorf(broker.EUnauthorized, "invalid token")
	}
	return p, p.Scopes, nil
}

// Answer is a response, read whole.
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// JSON decodes the body as an object.
func (a Answer) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.Body), &m); err != nil {
		t.Fatalf("body %q: %v", a.Body, err)
	}
	return m
}

// ErrorCode is the error shape's code ("" when the body is no error).
func (a Answer) ErrorCode(t testing.TB) string {
	t.Helper()
	e, _ := a.JSON(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// Request says who sends it: an officer (OfficerHeader) or a bearer token.
type Request struct {
	Officer string
	Bearer  string
}

// Do sends one request to app (a JSON body when body is not "").
func Do(t testing.TB, app *fiber.App, method, target string, as Request, body string) Answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if as.Officer != "" {
		req.Header.Set(OfficerHeader, as.Officer)
	}
	if as.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+as.Bearer)
	}
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return Answer{res.StatusCode, res.Header, string(b)}
}
