package httpapi

import (
	"context"
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	brokerapi "github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

// Orders is what the partner orders API asks of the shop. *commerce.Orders
// implements it. Every method decides the release through the broker's
// pipeline and returns the audited decision; a refusal of an order that is
// not the partner's is ENotFound carrying its decision (commerce.NotFound).
type Orders interface {
	// PartnerOrders lists the orders the partner may see, filtered, with
	// the next page's cursor ("" at the end) and the listing's decision.
	PartnerOrders(ctx context.Context, p broker.Partner, f commerce.OrderFilter) ([]commerce.RetailerView, string, string, error)
	// PartnerOrder releases one order's view for purpose.
	PartnerOrder(ctx context.Context, p broker.Partner, id string, purpose broker.Purpose) (commerce.RetailerView, broker.Decision, error)
	// UpdateStatus moves an order on (EConflict for a move its state
	// does not allow).
	UpdateStatus(ctx context.Context, p broker.Partner, id string, u commerce.StatusUpdate) (commerce.StatusResult, error)
	// Dispatch hands a packed order to a courier.
	Dispatch(ctx context.Context, p broker.Partner, id, logistics string) (commerce.DispatchResult, error)
	// Relay queues a courier's or store's message to the shopper, within
	// the 24-hour window; it returns the decision id.
	Relay(ctx context.Context, p broker.Partner, id, text string) (string, error)
	// DataRequest releases the fields of a shopper reference the purpose
	// allows, and lists what it withheld.
	DataRequest(ctx context.Context, p broker.Partner, ref string, purpose broker.Purpose, fields []string) (broker.Decision, error)
}

// Offers is a store's side of the marketplace (SPEC §9). *commerce.Market
// implements it.
type Offers interface {
	OpenOffers(ctx context.Context, p broker.Partner) ([]map[string]any, error)
	AcceptOffer(ctx context.Context, p broker.Partner, id string) (commerce.OfferResult, error)
	DeclineOffer(ctx context.Context, p broker.Partner, id string) (commerce.OfferResult, error)
}

// Notices is a recipient's mailbox of notices (erasures, withdrawals,
// corrections) for partners without a webhook. *commerce.Notices
// implements it.
type Notices interface {
	// Events returns the partner's notices after cursor, oldest first, and
	// the next cursor ("" when there are no more).
	Events(ctx context.Context, p broker.Partner, cursor string, limit int) ([]json.RawMessage, string, error)
	// Acknowledge records the partner's ack of one notice (signed when
	// the partner registered an ack key).
	Acknowledge(ctx context.Context, p broker.Partner, a commerce.Ack) (commerce.AckResult, error)
}

// SubjectRights is what the compliance API asks of the rights desk: find a
// shopper by identifier, list their disclosures, release their export and
// erase them. *commerce.Rights implements it.
type SubjectRights interface {
	// Resolve finds the shopper by wa_id or by user_id (a BSUID), exactly
	// one of them; ENotFound when there is none.
	Resolve(ctx context.Context, waID, userID string) (commerce.SubjectRow, error)
	// Disclosures lists who received what about the shopper.
	Disclosures(ctx context.Context, subject string) ([]commerce.Disclosure, error)
	// ReleaseExport releases the shopper's data to party through the
	// pipeline; the decision names the audit entry, even on error.
	ReleaseExport(ctx context.Context, subject string, party broker.Party) (commerce.Export, broker.Decision, error)
	// Erase crypto-shreds the shopper, audited with reason (a code).
	Erase(ctx context.Context, subject string, actor broker.Party, reason string) error
}

// Consents exports a shopper's consent artefacts (SPEC §10).
type Consents interface {
	ConsentsOf(ctx context.Context, subject string) (commerce.ConsentExport, error)
}

// Grievances is the rights desk's ticket list and its SLA report.
// *commerce.Desk implements it.
type Grievances interface {
	List(ctx context.Context, status string, limit int) ([]commerce.Grievance, error)
	SLA(ctx context.Context) (commerce.SLAReport, error)
}

var (
	_ Orders        = (*commerce.Orders)(nil)
	_ Offers        = (*commerce.Market)(nil)
	_ Consents      = (*commerce.Service)(nil)
	_ Notices       = (*commerce.Notices)(nil)
	_ SubjectRights = (*commerce.Rights)(nil)
	_ Grievances    = (*commerce.Desk)(nil)
)

// Deps are the ports the routes use; a nil port leaves its routes out.
type Deps struct {
	Orders     Orders
	Offers     Offers
	Notices    Notices
	Subjects   SubjectRights
	Consents   Consents
	Grievances Grievances
	// Pseudonyms names shoppers in answers by their audit pseudonym (the
	// subject routes need it).
	Pseudonyms *broker.Pseudonymizer
}

// handlers are the routes over their ports and the shell they are mounted
// on.
type handlers struct {
	Deps
	s *brokerapi.Server
}

// Mount returns the function that adds the shop's routes to the broker's
// application (broker/httpapi Deps.Routes).
func Mount(d Deps) func(app *fiber.App, s *brokerapi.Server) {
	return func(app *fiber.App, s *brokerapi.Server) {
		h := &handlers{Deps: d, s: s}
		v1 := app.Group("/v1")
		if d.Orders != nil {
			v1.Get("/orders", s.Partner(broker.ScopeOrdersRead), h.listOrders)
			v1.Get("/orders/:id", s.Partner(broker.ScopeOrdersRead), h.getOrder)
			v1.Post("/orders/:id/status", s.Partner(broker.ScopeOrdersWrite), h.updateStatus)
			v1.Post("/orders/:id/dispatch", s.Partner(broker.ScopeOrdersWrite), h.dispatchOrder)
			v1.Get("/orders/:id/delivery", s.Partner(broker.ScopeDeliveryRead), h.getDelivery)
			v1.Post("/orders/:id/messages", s.Partner(broker.ScopeDeliveryMessage), h.relayMessage)
			v1.Post("/data-requests", s.Partner(broker.ScopeDataRequest), h.dataRequest)
			// Without Notices these answer 503: the routes are the
			// contract's whenever the orders API is served.
			v1.Get("/events", s.Partner(""), h.listEvents)
			v1.Post("/acks", s.Partner(""), h.postAck)
		}
		if d.Offers != nil {
			v1.Get("/offers", s.Partner(broker.ScopeOrdersWrite), h.listOffers)
			v1.Post("/offers/:id/accept", s.Partner(broker.ScopeOrdersWrite), h.acceptOffer)
			v1.Post("/offers/:id/decline", s.Partner(broker.ScopeOrdersWrite), h.declineOffer)
		}
		if d.Subjects != nil && d.Pseudonyms != nil {
			v1.Get("/subjects/disclosures", s.Compliance(broker.ScopeAuditRead), h.disclosures)
			v1.Post("/subjects/disclosures", s.Compliance(broker.ScopeAuditRead), h.disclosures)
			v1.Post("/subjects/export", s.Compliance(broker.ScopeSubjectsWrite), h.subjectExport)
			v1.Post("/subjects/erase", s.Compliance(broker.ScopeSubjectsWrite), h.subjectErase)
			if d.Consents != nil {
				v1.Post("/subjects/consents", s.ComplianceAny(broker.ScopeAuditRead, broker.ScopeSubjectsWrite), h.subjectConsents)
			}
		}
		if d.Grievances != nil {
			v1.Get("/grievances", s.Compliance(broker.ScopeAuditRead), h.grievances)
		}
	}
}
