package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// LoadConfig configures the load generator.
type LoadConfig struct {
	// Shoppers is the number of distinct simulated shoppers.
	Shoppers int
	// Rate is the offered rate: webhook POSTs per second in ingest mode,
	// shoppers started per second in flow mode.
	Rate float64
	// Duration bounds the time during which requests are started.
	Duration time.Duration
	// Batch is the number of messages per POST (ingest mode).
	Batch int
	// DupRate is the probability that a POST re-sends an earlier body
	// byte for byte (a redelivery).
	DupRate float64
	// OutOfOrder mixes in status POSTs whose statuses arrive out of order
	// (read, then sent, then delivered).
	OutOfOrder bool
	// MaxInFlight bounds concurrent requests; a request due while the bound
	// is reached is skipped and counted, keeping the loop open.
	MaxInFlight int
	// MaxRequests bounds the number of requests (0: Rate × Duration).
	MaxRequests int
	// Seed makes the generated traffic reproducible.
	Seed uint64
	// AllowNonLoopback lifts the loopback-only guard (tests never need it).
	AllowNonLoopback bool
	// IDs is how the shoppers are named (SPEC §10 "Identity"): "phone"
	// (the default), "phone+bsuid", "username" (a BSUID only), or "mixed"
	// (the three in turn).
	IDs string
}

// Shopper identity shapes of LoadConfig.IDs.
var loadIDShapes = []string{"phone", "phone+bsuid", "username", "mixed"}

// loadUser is simulated shopper i with phone digits phone, shaped by ids.
func loadUser(ids, phone string, i int) User {
	shape := ids
	if shape == "mixed" {
		shape = loadIDShapes[i%3]
	}
	bsuid := "IN.77" + phone[len(phone)-8:] + "000000" // stable per shopper
	switch shape {
	case "phone+bsuid":
		return User{Phone: phone, BSUID: bsuid}
	case "username":
		return User{BSUID: bsuid, Username: fmt.Sprintf("@shopper%d", i)}
	}
	return User{Phone: phone}
}

// LoadReport is what the load generator measured.
type LoadReport struct {
	Mode            string         `json:"mode"`
	OfferedRate     float64        `json:"offered_rate"`
	DurationSeconds float64        `json:"duration_s"`
	Requests        int            `json:"requests"`
	Acknowledged    int            `json:"acknowledged"`
	Failed          int            `json:"failed"`
	Skipped         int            `json:"skipped"`
	Duplicates      int            `json:"duplicates"`
	MessagesAcked   int            `json:"messages_acknowledged"`
	StatusesAcked   int            `json:"statuses_acknowledged"`
	MessagesPerSec  float64        `json:"messages_per_s"`
	RequestsPerSec  float64        `json:"requests_per_s"`
	LatencyMs       Percentiles    `json:"latency_ms"`
	StatusCodes     map[string]int `json:"status_codes"`
	// Flow mode only.
	Orders       int      `json:"orders,omitempty"`
	OrdersPerSec float64  `json:"orders_per_s,omitempty"`
	FlowErrors   []string `json:"flow_errors,omitempty"`
	// BrokerMessages are the messages the broker sent the shoppers of
	// completed orders, each chargeable (Meta bills service messages from
	// 1 Oct 2026); MessagesPerOrder is their mean per order.
	BrokerMessages   int     `json:"broker_messages,omitempty"`
	MessagesPerOrder float64 `json:"messages_per_order,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles computes nearest-rank percentiles.
func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i]) / float64(time.Millisecond)
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
}

// checkLoopback refuses targets that are not on this machine.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("load: bad URL: %w", err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("load: refusing non-loopback target %q (the load generator only targets this machine)", host)
	}
	return nil
}

func (c *LoadConfig) normalize() error {
	if c.Shoppers < 1 {
		c.Shoppers = 1
	}
	if c.Batch < 1 {
		c.Batch = 1
	}
	if c.Batch > 1000 {
		return errors.New("load: batch is at most 1000 (Meta's limit per POST)")
	}
	if c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		return errors.New("load: rate must be positive")
	}
	if c.Duration <= 0 {
		return errors.New("load: duration must be positive")
	}
	if c.DupRate < 0 || c.DupRate > 1 {
		return errors.New("load: dup-rate must be within [0, 1]")
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 512
	}
	if c.IDs == "" {
		c.IDs = "phone"
	}
	if !slices.Contains(loadIDShapes, c.IDs) {
		return errors.New("load: ids is one of phone, phone+bsuid, username, mixed")
	}
	return nil
}

// shopperID is the wa_id of simulated shopper i.
func shopperID(i int) string { return fmt.Sprintf("9198%08d", i) }

// loadPayload is one prepared webhook POST.
type loadPayload struct {
	body      []byte
	messages  int
	statuses  int
	duplicate bool
}

// generator produces the ingest traffic.
type generator struct {
	cfg  LoadConfig
	ws   *WebhookSender
	rng  *rand.Rand
	next int
	sent []loadPayload
}

func (g *generator) payload(i int) (loadPayload, error) {
	if g.cfg.DupRate > 0 && len(g.sent) > 0 && g.rng.Float64() < g.cfg.DupRate {
		p := g.sent[g.rng.IntN(len(g.sent))]
		p.duplicate = true
		return p, nil
	}
	var n *whatsapp.Notification
	p := loadPayload{}
	if g.cfg.OutOfOrder && i%4 == 3 {
		// Statuses of earlier outbound messages, delivered out of order.
		var statuses []whatsapp.Status
		for len(statuses) < g.cfg.Batch {
			k := g.rng.IntN(g.cfg.Shoppers)
			who := loadUser(g.cfg.IDs, shopperID(k), k).Address()
			wamid := whatsapp.NewOutboundWAMID(who)
			for _, st := range []string{whatsapp.StatusRead, whatsapp.StatusSent, whatsapp.StatusDelivered} {
				statuses = append(statuses, StatusUpdate(wamid, st, who))
			}
		}
		n = g.ws.Notification(nil, nil, statuses)
		p.statuses = len(statuses)
	} else {
		var contacts []whatsapp.Contact
		var msgs []whatsapp.Message
		seen := map[string]bool{}
		for range g.cfg.Batch {
			k := g.next % g.cfg.Shoppers
			who := shopperID(k)
			u := loadUser(g.cfg.IDs, who, k)
			g.next++
			if !seen[who] {
				seen[who] = true
				contacts = append(contacts, u.Contact("Load "+who[len(who)-4:]))
			}
			m := TextMessage(who, "Hi")
			u.Stamp(&m)
			msgs = append(msgs, m)
		}
		n = g.ws.Notification(contacts, msgs, nil)
		p.messages = len(msgs)
	}
	body, err := n.Marshal()
	if err != nil {
		return p, err
	}
	p.body = body
	if len(g.sent) < 256 {
		g.sent = append(g.sent, p)
	} else {
		g.sent[g.rng.IntN(len(g.sent))] = p
	}
	return p, nil
}

// loadStats accumulates results under a mutex.
type loadStats struct {
	mu        sync.Mutex
	latencies []time.Duration
	codes     map[string]int
	acked     int
	failed    int
	messages  int
	statuses  int
	dups      int
	orders    int
	flowErrs  []string
	sentToUs  int // flow mode: messages the broker sent the shoppers
}

func (s *loadStats) record(code string, ok bool, lat time.Duration, p loadPayload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code]++
	if p.duplicate {
		s.dups++
	}
	if ok {
		s.acked++
		s.latencies = append(s.latencies, lat)
		if !p.duplicate {
			s.messages += p.messages
			s.statuses += p.statuses
		}
	} else {
		s.failed++
	}
}

// schedule runs the open loop: for i in [0, total) it waits until the due
// time of item i (start + i/rate), then prepares it and hands it to fire in
// a new goroutine, or skips it unprepared when MaxInFlight requests are
// already running (preparing what is never sent would take CPU from the
// machine under test). It
// stops starting work after Duration or when ctx ends, waits for the running
// work, and returns the numbers started and skipped.
func schedule[T any](ctx context.Context, cfg LoadConfig, total int, prepare func(i int) T, fire func(v T, due time.Time)) (started, skipped int) {
	sem := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return started, skipped
			case <-t.C:
			}
		}
		if ctx.Err() != nil || time.Since(start) > cfg.Duration {
			return started, skipped
		}
		select {
		case sem <- struct{}{}:
			started++
			v := prepare(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				fire(v, due)
			}()
		default:
			skipped++
		}
	}
	return started, skipped
}

// RunLoad offers signed webhook POSTs to the broker at a fixed rate for a
// bounded time and count, and measures how fast they are acknowledged.
// Latency is measured from each request's scheduled time, so a slow broker
// cannot hide queueing (no coordinated omission).
func RunLoad(ctx context.Context, cfg LoadConfig, ws *WebhookSender) (*LoadReport, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if !cfg.AllowNonLoopback {
		if err := checkLoopback(ws.URL); err != nil {
			return nil, err
		}
	}
	total := int(math.Ceil(cfg.Rate * cfg.Duration.Seconds()))
	if cfg.MaxRequests > 0 && total > cfg.MaxRequests {
		total = cfg.MaxRequests
	}
	g := &generator{cfg: cfg, ws: ws, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	// Fail early if payloads cannot be built at all.
	if _, err := g.payload(0); err != nil {
		return nil, err
	}
	g.sent, g.next = nil, 0
	single := *ws
	single.MaxAttempts = 1
	single.Client = loadClient(ws.Client, 10*time.Second, cfg.MaxInFlight)
	defer single.Client.CloseIdleConnections()

	stats := &loadStats{codes: map[string]int{}}
	begin := time.Now()
	prepare := func(i int) loadPayload {
		p, err := g.payload(i)
		if err != nil {
			return loadPayload{} // counted as a failed request
		}
		return p
	}
	started, skipped := schedule(ctx, cfg, total, prepare, func(p loadPayload, due time.Time) {
		if p.body == nil {
			stats.record("encode_error", false, 0, p)
			return
		}
		d, err := single.PostBody(ctx, p.body)
		code := strconv.Itoa(d.Status)
		if d.Status == 0 {
			code = "network_error"
		}
		stats.record(code, err == nil, time.Since(due), p)
	})
	elapsed := time.Since(begin)
	rep := &LoadReport{
		Mode:            "ingest",
		OfferedRate:     cfg.Rate,
		DurationSeconds: elapsed.Seconds(),
		Requests:        started,
		Acknowledged:    stats.acked,
		Failed:          stats.failed,
		Skipped:         skipped,
		Duplicates:      stats.dups,
		MessagesAcked:   stats.messages,
		StatusesAcked:   stats.statuses,
		MessagesPerSec:  float64(stats.messages) / elapsed.Seconds(),
		RequestsPerSec:  float64(stats.acked) / elapsed.Seconds(),
		LatencyMs:       percentiles(stats.latencies),
		StatusCodes:     stats.codes,
	}
	return rep, nil
}

// loadClient is an HTTP client with the timeout of c (or timeout, if c is
// nil or has none) whose transport keeps up to conns idle connections per
// host, one per request in flight.
func loadClient(c *http.Client, timeout time.Duration, conns int) *http.Client {
	if c != nil && c.Timeout > 0 {
		timeout = c.Timeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = conns, conns, 30*time.Second
	return &http.Client{Timeout: timeout, Transport: t}
}

// RunFlowLoad starts full Shopper purchases at the offered rate (shoppers
// per second) for the duration, up to Shoppers purchases, and reports
// completed orders per second.
func RunFlowLoad(ctx context.Context, cfg LoadConfig, ws *WebhookSender, sim SimAPI, stepTimeout time.Duration) (*LoadReport, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if !cfg.AllowNonLoopback {
		if err := checkLoopback(ws.URL); err != nil {
			return nil, err
		}
	}
	total := int(math.Ceil(cfg.Rate * cfg.Duration.Seconds()))
	total = min(total, cfg.Shoppers)
	if cfg.MaxRequests > 0 {
		total = min(total, cfg.MaxRequests)
	}
	// Every shopper in flight holds a connection to the broker and, while
	// it waits for the bot, one to the simulator: keep them all for reuse.
	// (With net/http's default of two idle connections per host, most
	// requests dialled a new connection, and the load generator spent more
	// of the machine opening and closing them than on its shoppers.)
	hooks := *ws
	hooks.Client = loadClient(ws.Client, 10*time.Second, cfg.MaxInFlight)
	defer hooks.Client.CloseIdleConnections()
	if sc, ok := sim.(*SimClient); ok {
		pooled := *sc
		pooled.Client = loadClient(sc.Client, 40*time.Second, cfg.MaxInFlight)
		defer pooled.Client.CloseIdleConnections()
		sim = &pooled
	}
	stats := &loadStats{codes: map[string]int{}}
	base := cfg.Seed % 1_000_000
	begin := time.Now()
	started, skipped := schedule(ctx, cfg, total, func(i int) int { return i }, func(i int, due time.Time) {
		phone := fmt.Sprintf("9197%08d", (base+uint64(i))%100_000_000)
		u := loadUser(cfg.IDs, phone, i)
		sh := &Shopper{
			WaID:        phone,
			User:        &u,
			Name:        fmt.Sprintf("Flow %d", i),
			Webhooks:    &hooks,
			Sim:         sim,
			StepTimeout: stepTimeout,
		}
		res, err := sh.Run(ctx)
		stats.mu.Lock()
		defer stats.mu.Unlock()
		if err != nil {
			stats.failed++
			stats.codes["error"]++
			if len(stats.flowErrs) < 5 {
				stats.flowErrs = append(stats.flowErrs, err.Error())
			}
			return
		}
		stats.orders++
		stats.codes["completed"]++
		stats.messages += res.WebhooksSent
		stats.sentToUs += res.BrokerMessages
		stats.latencies = append(stats.latencies, time.Since(due))
	})
	elapsed := time.Since(begin)
	sort.Strings(stats.flowErrs)
	return &LoadReport{
		Mode:             "flow",
		OfferedRate:      cfg.Rate,
		DurationSeconds:  elapsed.Seconds(),
		Requests:         started,
		Acknowledged:     stats.orders,
		Failed:           stats.failed,
		Skipped:          skipped,
		MessagesAcked:    stats.messages,
		MessagesPerSec:   float64(stats.messages) / elapsed.Seconds(),
		LatencyMs:        percentiles(stats.latencies),
		StatusCodes:      stats.codes,
		Orders:           stats.orders,
		OrdersPerSec:     float64(stats.orders) / elapsed.Seconds(),
		FlowErrors:       stats.flowErrs,
		BrokerMessages:   stats.sentToUs,
		MessagesPerOrder: float64(stats.sentToUs) / float64(max(stats.orders, 1)),
	}, nil
}

// WriteText prints the report for people.
func (r *LoadReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "mode            %s\n", r.Mode)
	fmt.Fprintf(w, "offered rate    %.1f/s for %.2fs\n", r.OfferedRate, r.DurationSeconds)
	fmt.Fprintf(w, "requests        %d started, %d acknowledged, %d failed, %d skipped (in-flight limit)\n", r.Requests, r.Acknowledged, r.Failed, r.Skipped)
	if r.Mode == "flow" {
		fmt.Fprintf(w, "orders          %d (%.2f orders/s)\n", r.Orders, r.OrdersPerSec)
		fmt.Fprintf(w, "webhooks        %d (%.1f/s)\n", r.MessagesAcked, r.MessagesPerSec)
		fmt.Fprintf(w, "messages per order %.1f (%d sent by the broker)\n", r.MessagesPerOrder, r.BrokerMessages)
		fmt.Fprintf(w, "order latency   p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
		for _, e := range r.FlowErrors {
			fmt.Fprintf(w, "error           %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "acknowledged    %d messages (%.1f messages/s), %d statuses, %d duplicates sent\n", r.MessagesAcked, r.MessagesPerSec, r.StatusesAcked, r.Duplicates)
	fmt.Fprintf(w, "latency of 200  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	codes := make([]string, 0, len(r.StatusCodes))
	for c := range r.StatusCodes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "status %-9s %d\n", c, r.StatusCodes[c])
	}
}
