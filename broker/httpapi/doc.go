// Package httpapi is the HTTP adapter: the Fiber application with every
// route of the contract, the bearer-token middleware, per-partner rate
// limits, Prometheus metrics, and the one table that maps broker error
// codes to HTTP statuses.
//
// It depends on the domain (broker, commerce) and on small interfaces it
// declares itself; cmd/brokerd plugs the concrete adapters in.
package httpapi
