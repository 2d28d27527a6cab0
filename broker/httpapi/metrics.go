package httpapi

import (
	"crypto/subtle"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sieve-broker/sieve/broker"
)

// Metrics holds the Prometheus registry. Labels are route patterns, status
// codes, partner kinds and outcomes — never raw paths, ids or personal data.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	limited  *prometheus.CounterVec
	counters map[string]*prometheus.CounterVec // domainCounters, fixed after NewMetrics
	handler  fiber.Handler
}

// domainCounters are the domain events commerce and the witness client
// count (commerce.Metrics, witness.Counter), each declared here once, with
// its help and its labels, so a scrape shows what each one means and a
// label cannot change with the first caller. Inc counts nothing for a name
// not declared here; TestDomainCountersDeclared finds every name counted
// in the code and fails when one is missing. Label values are codes and
// kinds, never ids or personal data.
var domainCounters = []struct {
	name, help string
	labels     []string
}{
	{"sieve_orders_total", "Order status changes, by new status.", []string{"kind"}},
	{"sieve_message_status_total", "WhatsApp delivery statuses received, by status.", []string{"kind"}},
	{"sieve_inbox_events_total", "Inbound webhook events, new or duplicate.", []string{"kind"}},
	{"sieve_inbox_failed_total", "Inbound events whose processing failed.", nil},
	{"sieve_outbox_total", "Outbound messages by message kind and outcome (sent, retry, dead).", []string{"kind", "outcome"}},
	{"sieve_outbox_fallbacks_total", "Outbound messages sent as their plain-text fallback.", nil},
	{"sieve_erasures_total", "Shopper erasures, by the kind of party that asked.", []string{"kind"}},
	{"sieve_identity_events_total", "Shopper identity changes (created, linked, relinked, change_ignored, change_unknown).", []string{"kind"}},
	{"sieve_identity_conflicts_total", "Inbound identifiers that pointed at two different shoppers.", nil},
	{"sieve_offers_total", "Order offers to stores, by outcome (offered, accepted, declined, expired).", []string{"kind"}},
	{"sieve_notices_total", "Recipient notices sent to partners, by notice type.", []string{"kind"}},
	{"sieve_payment_lookups_total", "Payment lookups, by result (confirmed, disagrees, retry, failed).", []string{"kind"}},
	{"sieve_payments_refused_total", "Payment captures refused, by reason code.", []string{"kind"}},
	{"sieve_restrictions_total", "Shoppers pausing or resuming processing (GDPR Art. 18), by reason code.", []string{"kind"}},
	{"sieve_audit_cosignatures_total", "Checkpoint cosignature requests, by witness name and outcome.", []string{"kind", "outcome"}},
	{"sieve_audit_checkpoints_short_of_quorum_total", "Checkpoints that did not reach the witness quorum.", nil},
}

// NewMetrics registers the HTTP metrics, the domain counters and the Go
// runtime collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: reg, counters: map[string]*prometheus.CounterVec{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sieve_http_requests_total",
		Help: "HTTP requests by route pattern, method and final status (errors included); route is \"unmatched\" for paths no route knows."},
		[]string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sieve_http_request_duration_seconds",
		Help: "HTTP request latency by route pattern.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
		[]string{"route"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sieve_rate_limited_total",
		Help: "Requests refused by the per-partner rate limit, by partner kind."}, []string{"kind"})
	reg.MustRegister(m.requests, m.latency, m.limited)
	for _, d := range domainCounters {
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.name, Help: d.help}, d.labels)
		reg.MustRegister(cv)
		m.counters[d.name] = cv
	}
	m.handler = adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() fiber.Handler { return m.handler }

// Inc counts a domain event (commerce.Metrics): name with the label
// values of its declaration in domainCounters, in order. An undeclared name
// or a wrong number of labels counts nothing: metrics never fail a request.
func (m *Metrics) Inc(name string, labels ...string) {
	cv, ok := m.counters[name]
	if !ok {
		return
	}
	if c, err := cv.GetMetricWithLabelValues(labels...); err == nil {
		c.Inc()
	}
}

// metricsAuth requires the metrics bearer token when one is configured:
// the counters tell order volumes and erasures by kind.
func (s *Server) metricsAuth(c *fiber.Ctx) error {
	want := s.cfg.MetricsToken
	if want == "" {
		return c.Next()
	}
	got := string(c.Request().Header.Peek(fiber.HeaderAuthorization))
	if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+want)) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
		return broker.Errorf(broker.EUnauthorized, "metrics need the metrics bearer token")
	}
	return c.Next()
}

// unmatchedRoute is the route label of requests no route pattern knows:
// one fixed value, so scanners cannot grow the label set.
const unmatchedRoute = "unmatched"

// observe records every request's route, status and latency. It renders an
// error itself (with the application's error handler) before counting, so
// the status counted is the one the client gets; it runs outside recover,
// so a panic is counted as the 500 it becomes.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.App.Config().ErrorHandler(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	route := s.routeLabel(c)
	m := s.deps.Metrics
	m.requests.WithLabelValues(route, c.Method(), strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	return nil
}

// routeLabel is the route pattern a request belongs to. When a middleware
// (body limits, the fallback, the dashboard's catch-all) answered before
// any route matched, the pattern is found in the route table: the one for
// the path and method, else the path's pattern for another method (a 405),
// else the fixed unmatched label.
func (s *Server) routeLabel(c *fiber.Ctx) string {
	method := c.Method()
	if method == fiber.MethodHead {
		method = fiber.MethodGet
	}
	if r := c.Route(); r != nil && s.endpoints[method+" "+r.Path] {
		return r.Path
	}
	path, other := c.Path(), ""
	for _, e := range s.patterns {
		if !matchPath(e.path, path) {
			continue
		}
		if e.method == method {
			return e.path
		}
		other = e.path
	}
	if other != "" {
		return other
	}
	return unmatchedRoute
}

// endpoint is one route of the table, for routeLabel.
type endpoint struct{ method, path string }

// indexRoutes remembers the endpoint routes (not middleware) once all are
// registered: the metrics labels come from this fixed set.
func (s *Server) indexRoutes() {
	s.endpoints = map[string]bool{}
	for _, r := range s.App.GetRoutes(true) {
		if r.Method == fiber.MethodHead || r.Path == "/" {
			continue
		}
		s.endpoints[r.Method+" "+r.Path] = true
		s.patterns = append(s.patterns, endpoint{r.Method, r.Path})
	}
}
