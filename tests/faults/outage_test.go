package faults

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// probe is one request a poller made.
type probe struct {
	Start, End time.Time
	Status     int // 0 on a network error
}

// poller GETs a URL every interval until stopped.
type poller struct {
	mu     sync.Mutex
	probes []probe
	stop   chan struct{}
	done   chan struct{}
}

func startPoller(t *testing.T, url string, every time.Duration) *poller {
	t.Helper()
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			start := time.Now()
			status := httpStatus(client, url)
			p.mu.Lock()
			p.probes = append(p.probes, probe{Start: start, End: time.Now(), Status: status})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *poller) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *poller) all() []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probe(nil), p.probes...)
}

// within returns the probes that started after from and ended before to.
func within(ps []probe, from, to time.Time) []probe {
	var out []probe
	for _, p := range ps {
		if p.Start.After(from) && p.End.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// TestDatabaseOutage stops a private PostgreSQL (pg_ctl stop -m immediate)
// while webhooks stream in, and starts it again. While it is down the
// broker must not acknowledge a webhook (the Cloud API then redelivers) and
// /readyz must be 503; when it is back the broker must recover by itself,
// without a restart, and nothing it acknowledged may be lost.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	pg := startPrivatePG(t)
	dbURL := pg.url("postgres")
	w := newWorld(t, dbURL)
	// Sends take a while, so that some are on the wire when the database
	// dies: their sent marks must be written when it is back, not lost
	// (which would send them again).
	sp := newSendProxy(t, w.sim)
	sp.set(func(int) fault { return fault{Delay: 200 * time.Millisecond} })
	w.apiBase = sp.URL + "/v25.0"
	b := w.startBroker("brokerd", "")
	w.seedRetailer("")
	st := openStore(t, dbURL)
	hp := newHookProxy(t, b.url)
	ready := startPoller(t, b.url+"/readyz", 100*time.Millisecond)

	ingest := w.wasimLoad("--shoppers", "150", "--rate", "60", "--duration", "14s", "--batch", "2",
		"--dup-rate", "0.1", "--seed", "201", "--webhook-url", hp.URL)
	waitFor(t, "100 messages acknowledged before the outage", 60*time.Second, func() (bool, string) {
		n := len(hp.acked())
		return n >= 100, fmt.Sprintf("%d acknowledged", n)
	})

	// Crash while sends are on the wire (polled tightly: they last 200 ms).
	var inflight int64
	for end := time.Now().Add(budget(t, 30*time.Second)); inflight == 0 && time.Now().Before(end); {
		if inflight = sp.inflight.Load(); inflight == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if inflight == 0 {
		t.Fatal("no send was ever in flight to crash the database under")
	}
	crashedAt := time.Now()
	pg.crash(t)
	downAt := time.Now()
	if pg.accepting() {
		t.Fatal("PostgreSQL still accepts connections after pg_ctl stop -m immediate")
	}
	// Keep it down until the broker has answered enough requests without it.
	waitFor(t, "webhooks and readiness probes to meet a 3-second outage", 60*time.Second, func() (bool, string) {
		hooks := 0
		for _, r := range hp.records() {
			if r.Start.After(downAt) {
				hooks++
			}
		}
		probes := len(within(ready.all(), downAt, time.Now()))
		return hooks >= 30 && probes >= 10 && time.Since(downAt) >= 3*time.Second,
			fmt.Sprintf("%d webhooks, %d readiness probes since the stop", hooks, probes)
	})
	upAt := time.Now()
	pg.start(t)
	t.Logf("PostgreSQL was down for %s; %d sends were in flight when it crashed", upAt.Sub(downAt).Round(time.Millisecond), inflight)

	recovered := waitFor(t, "/readyz to answer 200 again", 60*time.Second, func() (bool, string) {
		ps := ready.all()
		if len(ps) == 0 {
			return false, "no probe yet"
		}
		last := ps[len(ps)-1]
		return last.Start.After(upAt) && last.Status == http.StatusOK, fmt.Sprintf("last probe %d", last.Status)
	})
	t.Logf("ready again %s after PostgreSQL started", recovered.Round(time.Millisecond))
	if !b.running() {
		t.Fatalf("brokerd exited during the outage (%v): it must ride it out", b.err)
	}
	rep := ingest()
	t.Logf("ingest: %d requests, %d acknowledged, %d failed, codes %v", rep.Requests, rep.Acknowledged, rep.Failed, rep.StatusCodes)

	// New work is taken in and completed end to end.
	shopStart := time.Now()
	order := w.wasimShop(hp.URL, "919700000201", 60*time.Second)
	drainStart := time.Now()
	st.waitDrained("the inbox, the outbox and the audit log to drain after the outage", 180*time.Second)
	t.Logf("purchase after the outage took %s; drained %s later", drainStart.Sub(shopStart).Round(time.Millisecond),
		time.Since(drainStart).Round(time.Millisecond))
	ready.halt()

	// While down: no 200 from /readyz or the webhook, for every request that
	// started after the stop and finished before the start.
	var readyWrong []string
	down := within(ready.all(), downAt, upAt)
	for _, p := range down {
		if p.Status != http.StatusServiceUnavailable {
			readyWrong = append(readyWrong, fmt.Sprintf("%d at +%s", p.Status, p.Start.Sub(downAt).Round(time.Millisecond)))
		}
	}
	if len(down) == 0 || len(readyWrong) > 0 {
		t.Errorf("/readyz during the outage: %d probes, %d not 503: %s", len(down), len(readyWrong), some(readyWrong))
	}
	var hookDown []hookRec
	for _, r := range hp.records() {
		if r.Start.After(downAt) && r.End.Before(upAt) {
			hookDown = append(hookDown, r)
		}
	}
	codes := map[int]int{}
	for _, r := range hookDown {
		codes[r.Status]++
	}
	// Any non-200 makes the Cloud API redeliver; SPEC §7 says which: 503.
	if len(hookDown) == 0 || codes[http.StatusServiceUnavailable] != len(hookDown) {
		t.Errorf("webhooks during the outage: %d deliveries, answers %v; want every one 503", len(hookDown), codes)
	}
	after := hp.acknowledgedAfter(upAt)
	if after == 0 {
		t.Errorf("no webhook was acknowledged after PostgreSQL came back")
	}

	sent, resent := checkOutboxOnce(t, w, st, crashedAt)
	his := checkHisOnce(t, w, st, hp, "9198", resent)
	if his.Acked < rep.MessagesAcked {
		t.Errorf("wasim counted %d messages acknowledged, the recording proxy only %d", rep.MessagesAcked, his.Acked)
	}
	if n := len(resent); n > 0 {
		t.Logf("%d shoppers got a message again after the crash: sent marks committed without waiting for the WAL flush were lost with it", n)
	}
	size := checkAuditClean(t, w, st)
	t.Logf("%d Hi acknowledged (%d after PostgreSQL came back), %d stored, %d notices; %d sent once; order %s; audit ok at %d",
		his.Acked, after, his.Stored, his.Notices, sent, order, size)
	b.terminate(t)
}
