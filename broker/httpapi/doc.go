// Package httpapi is the broker's HTTP shell: the Fiber application, the
// bearer-token and officer middleware (Partner, Compliance), per-partner
// rate limits, Prometheus metrics, the one table that maps broker error
// codes to HTTP statuses, and the broker's own routes (OAuth, JWKS, the
// WhatsApp webhook, the audit log and its proofs, reports, breaches, the
// privacy notice).
//
// It depends on broker and on small interfaces it declares itself, never
// on commerce: the shop's routes (commerce/httpapi) and the dashboard
// (commerce/httpapi/ui) mount themselves through Deps.Routes and Deps.UI,
// using Partner, Compliance, OfficerAction and DecodeJSON. cmd/brokerd
// plugs the concrete adapters in.
package httpapi
