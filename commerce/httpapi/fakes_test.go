package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	brokerapi "github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/httpapi/httpapitest"
	"github.com/sieve-broker/sieve/commerce"
	shopapi "github.com/sieve-broker/sieve/commerce/httpapi"
)

// Fakes of the shop's narrow ports: a func field per method, set by each
// test for what it expects to be called (an unset one panics, which the
// shell's recover middleware answers 500, so an unexpected call fails).

type fakeShop struct {
	PartnerOrdersFn func(p broker.Partner, f commerce.OrderFilter) ([]commerce.RetailerView, string, string, error)
	PartnerOrderFn  func(p broker.Partner, id string, purpose broker.Purpose) (commerce.RetailerView, broker.Decision, error)
	UpdateStatusFn  func(p broker.Partner, id string, u commerce.StatusUpdate) (commerce.StatusResult, error)
	DispatchFn      func(p broker.Partner, id, logistics string) (commerce.DispatchResult, error)
	RelayFn         func(p broker.Partner, id, text string) (string, error)
	DataRequestFn   func(p broker.Partner, ref string, purpose broker.Purpose, fields []string) (broker.Decision, error)
	OpenOffersFn    func(p broker.Partner) ([]map[string]any, error)
	AcceptOfferFn   func(p broker.Partner, id string) (commerce.OfferResult, error)
	DeclineOfferFn  func(p broker.Partner, id string) (commerce.OfferResult, error)
	ConsentsOfFn    func(subject string) (commerce.ConsentExport, error)
}

func (f *fakeShop) PartnerOrders(_ context.Context, p broker.Partner, o commerce.OrderFilter) ([]commerce.RetailerView, string, string, error) {
	return f.PartnerOrdersFn(p, o)
}
func (f *fakeShop) PartnerOrder(_ context.Context, p broker.Partner, id string, purpose broker.Purpose) (commerce.RetailerView, broker.Decision, error) {
	return f.PartnerOrderFn(p, id, purpose)
}
func (f *fakeShop) UpdateStatus(_ context.Context, p broker.Partner, id string, u commerce.StatusUpdate) (commerce.StatusResult, error) {
	return f.UpdateStatusFn(p, id, u)
}
func (f *fakeShop) Dispatch(_ context.Context, p broker.Partner, id, logistics string) (commerce.DispatchResult, error) {
	return f.DispatchFn(p, id, logistics)
}
func (f *fakeShop) Relay(_ context.Context, p broker.Partner, id, text string) (string, error) {
	return f.RelayFn(p, id, text)
}
func (f *fakeShop) DataRequest(_ context.Context, p broker.Partner, ref string, purpose broker.Purpose, fields []string) (broker.Decision, error) {
	return f.DataRequestFn(p, ref, purpose, fields)
}
func (f *fakeShop) OpenOffers(_ context.Context, p broker.Partner) ([]map[string]any, error) {
	return f.OpenOffersFn(p)
}
func (f *fakeShop) AcceptOffer(_ context.Context, p broker.Partner, id string) (commerce.OfferResult, error) {
	return f.AcceptOfferFn(p, id)
}
func (f *fakeShop) DeclineOffer(_ context.Context, p broker.Partner, id string) (commerce.OfferResult, error) {
	return f.DeclineOfferFn(p, id)
}
func (f *fakeShop) ConsentsOf(_ context.Context, subject string) (commerce.ConsentExport, error) {
	return f.ConsentsOfFn(subject)
}

type fakeNotices struct {
	EventsFn      func(p broker.Partner, cursor string, limit int) ([]json.RawMessage, string, error)
	AcknowledgeFn func(p broker.Partner, a commerce.Ack) (commerce.AckResult, error)
}

func (n *fakeNotices) Events(_ context.Context, p broker.Partner, cursor string, limit int) ([]json.RawMessage, string, error) {
	return n.EventsFn(p, cursor, limit)
}
func (n *fakeNotices) Acknowledge(_ context.Context, p broker.Partner, a commerce.Ack) (commerce.AckResult, error) {
	return n.AcknowledgeFn(p, a)
}

type fakeRights struct {
	ResolveFn       func(waID, userID string) (commerce.SubjectRow, error)
	DisclosuresFn   func(subject string) ([]commerce.Disclosure, error)
	ReleaseExportFn func(subject string, party broker.Party) (commerce.Export, broker.Decision, error)
	EraseFn         func(subject string, actor broker.Party, reason string) error
}

func (r *fakeRights) Resolve(_ context.Context, waID, userID string) (commerce.SubjectRow, error) {
	return r.ResolveFn(waID, userID)
}
func (r *fakeRights) Disclosures(_ context.Context, subject string) ([]commerce.Disclosure, error) {
	return r.DisclosuresFn(subject)
}
func (r *fakeRights) ReleaseExport(_ context.Context, subject string, party broker.Party) (commerce.Export, broker.Decision, error) {
	return r.ReleaseExportFn(subject, party)
}
func (r *fakeRights) Erase(_ context.Context, subject string, actor broker.Party, reason string) error {
	return r.EraseFn(subject, actor, reason)
}

type fakeGrievances struct {
	ListFn func(status string, limit int) ([]commerce.Grievance, error)
	SLAFn  func() (commerce.SLAReport, error)
}

func (g *fakeGrievances) List(_ context.Context, status string, limit int) ([]commerce.Grievance, error) {
	return g.ListFn(status, limit)
}
func (g *fakeGrievances) SLA(context.Context) (commerce.SLAReport, error) { return g.SLAFn() }

// Partners the fake authenticator knows, by bearer token.
var (
	store = broker.Partner{ID: "kirana-1", Kind: broker.KindRetailer,
		Scopes: []broker.Scope{broker.ScopeOrdersRead, broker.ScopeOrdersWrite, broker.ScopeDataRequest}}
	courier = broker.Partner{ID: "courier-1", Kind: broker.KindLogistics,
		Scopes: []broker.Scope{broker.ScopeDeliveryRead, broker.ScopeDeliveryMessage}}
	dpo = broker.Partner{ID: "dpo-1", Kind: broker.KindCompliance, Scopes: []broker.Scope{broker.ScopeAuditRead}}
)

// server is the broker's shell with the shop's routes mounted over fresh
// fakes.
type server struct {
	app        *brokerapi.Server
	shop       *fakeShop
	notices    *fakeNotices
	rights     *fakeRights
	grievances *fakeGrievances
	audit      *httpapitest.Audit
	officers   *httpapitest.Officers
	pseudo     *broker.Pseudonymizer
}

func newServer(t *testing.T, edit func(*shopapi.Deps)) *server {
	t.Helper()
	pseudo, err := broker.NewPseudonymizer(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{shop: &fakeShop{}, notices: &fakeNotices{}, rights: &fakeRights{}, grievances: &fakeGrievances{},
		audit: &httpapitest.Audit{}, officers: &httpapitest.Officers{}, pseudo: pseudo}
	d := shopapi.Deps{Orders: s.shop, Offers: s.shop, Notices: s.notices, Subjects: s.rights, Consents: s.shop,
		Grievances: s.grievances, Pseudonyms: pseudo}
	if edit != nil {
		edit(&d)
	}
	auth := &httpapitest.Authenticator{Partners: map[string]broker.Partner{
		"tok-store": store, "tok-courier": courier, "tok-dpo": dpo}}
	s.app = brokerapi.New(brokerapi.Config{}, brokerapi.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth: auth, Audit: s.audit, Officers: s.officers, Routes: []func(*fiber.App, *brokerapi.Server){shopapi.Mount(d)}})
	return s
}

// as sends a request with the bearer token tok ("" for none).
func (s *server) as(t *testing.T, tok, method, target, body string) httpapitest.Answer {
	t.Helper()
	return httpapitest.Do(t, s.app.App, method, target, httpapitest.Request{Bearer: tok}, body)
}

// officer sends a request as the signed-in officer id ("" for none).
func (s *server) officer(t *testing.T, method, target, id, body string) httpapitest.Answer {
	t.Helper()
	return httpapitest.Do(t, s.app.App, method, target, httpapitest.Request{Officer: id}, body)
}
