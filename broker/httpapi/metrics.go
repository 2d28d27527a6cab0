package httpapi

import (
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the Prometheus registry. Labels are route patterns, status
// codes, partner kinds and outcomes — never raw paths, ids or personal data.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	limited  *prometheus.CounterVec
	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
	handler  fiber.Handler
}

// NewMetrics registers the HTTP metrics and the Go runtime collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: reg, counters: map[string]*prometheus.CounterVec{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sieve_http_requests_total",
		Help: "HTTP requests by route pattern, method and status."}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sieve_http_request_duration_seconds",
		Help: "HTTP request latency by route pattern.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
		[]string{"route"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sieve_rate_limited_total",
		Help: "Requests refused by the per-partner rate limit, by partner kind."}, []string{"kind"})
	reg.MustRegister(m.requests, m.latency, m.limited)
	m.handler = adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() fiber.Handler { return m.handler }

// Inc counts a domain event (commerce.Metrics): name with up to two label
// values, labelled "kind" and "outcome".
func (m *Metrics) Inc(name string, labels ...string) {
	m.mu.Lock()
	cv, ok := m.counters[name]
	if !ok {
		names := []string{"kind", "outcome"}[:min(len(labels), 2)]
		cv = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: "Domain event count."}, names)
		if err := m.Registry.Register(cv); err != nil {
			m.mu.Unlock()
			return
		}
		m.counters[name] = cv
	}
	m.mu.Unlock()
	if len(labels) > 2 {
		labels = labels[:2]
	}
	if c, err := cv.GetMetricWithLabelValues(labels...); err == nil {
		c.Inc()
	}
}

// observe records every request's route, status and latency.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		if fe, ok := err.(*fiber.Error); ok {
			status = fe.Code
		}
	}
	route := c.Route().Path
	if status == fiber.StatusNotFound && (route == "/" || route == "") {
		route = "unmatched"
	}
	m := s.deps.Metrics
	m.requests.WithLabelValues(route, c.Method(), strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	return err
}
