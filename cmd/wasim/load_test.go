package main

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

func TestRunLoadIsBoundedAndSigned(t *testing.T) {
	sink, ws := newSink(t, 0)
	cfg := LoadConfig{Shoppers: 7, Rate: 200, Duration: 250 * time.Millisecond, Batch: 3, Seed: 1}
	start := time.Now()
	rep, err := RunLoad(context.Background(), cfg, ws)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	calls := int(sink.calls.Load())
	if calls != rep.Requests || calls < 5 || calls > 50 {
		t.Fatalf("%d calls, report %+v", calls, rep)
	}
	if sink.bad != 0 || rep.Failed != 0 || rep.Acknowledged != calls || rep.StatusCodes["200"] != calls {
		t.Errorf("bad %d, report %+v", sink.bad, rep)
	}
	if rep.MessagesAcked != 3*calls || rep.MessagesPerSec <= 0 {
		t.Errorf("messages %d for %d calls", rep.MessagesAcked, calls)
	}
	if rep.LatencyMs.P50 <= 0 || rep.LatencyMs.P50 > rep.LatencyMs.P99 || rep.LatencyMs.P99 > rep.LatencyMs.Max {
		t.Errorf("latency %+v", rep.LatencyMs)
	}
	senders := map[string]bool{}
	for _, b := range sink.bodies {
		n, err := whatsapp.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		evs := n.Events()
		if len(evs) != 3 {
			t.Fatalf("%d events in a batch of 3", len(evs))
		}
		for _, e := range evs {
			senders[e.WaID] = true
			if e.ProfileName == "" {
				t.Errorf("message without a contact: %+v", e)
			}
		}
	}
	if len(senders) != 7 {
		t.Errorf("%d distinct shoppers, want 7", len(senders))
	}
}

func TestRunLoadDuplicatesAndOutOfOrder(t *testing.T) {
	sink, ws := newSink(t, 0)
	cfg := LoadConfig{Shoppers: 3, Rate: 400, Duration: 200 * time.Millisecond, DupRate: 0.3, OutOfOrder: true, Seed: 42, MaxRequests: 60}
	rep, err := RunLoad(context.Background(), cfg, ws)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests > 60 || rep.Duplicates == 0 || rep.StatusesAcked == 0 {
		t.Fatalf("report %+v", rep)
	}
	seen := map[[32]byte]int{}
	statusOrders := 0
	for _, b := range sink.bodies {
		seen[sha256.Sum256(b)]++
		n, err := whatsapp.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, e := range n.Events() {
			if e.Kind == whatsapp.EventStatus {
				order = append(order, e.Status.Status)
			}
		}
		if len(order) > 0 {
			statusOrders++
			if strings.Join(order[:3], ",") != "read,sent,delivered" {
				t.Errorf("status order %v", order)
			}
		}
	}
	repeated := 0
	for _, c := range seen {
		repeated += c - 1
	}
	if repeated != rep.Duplicates {
		t.Errorf("%d identical redeliveries seen, report says %d", repeated, rep.Duplicates)
	}
	if statusOrders == 0 {
		t.Error("no status POSTs")
	}
}

func TestRunLoadRejects(t *testing.T) {
	ws := NewWebhookSender("http://example.com/webhooks/whatsapp", []byte("s"), "1")
	if _, err := RunLoad(context.Background(), LoadConfig{Rate: 1, Duration: time.Second}, ws); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback target: %v", err)
	}
	ws.URL = "http://127.0.0.1:1/x"
	for name, cfg := range map[string]LoadConfig{
		"zero rate":     {Rate: 0, Duration: time.Second},
		"zero duration": {Rate: 1},
		"big batch":     {Rate: 1, Duration: time.Second, Batch: 1001},
		"dup rate":      {Rate: 1, Duration: time.Second, DupRate: 2},
	} {
		if _, err := RunLoad(context.Background(), cfg, ws); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestRunLoadCountsFailures(t *testing.T) {
	sink, ws := newSink(t, 1000) // always 500
	rep, err := RunLoad(context.Background(), LoadConfig{Rate: 100, Duration: 100 * time.Millisecond, Seed: 3}, ws)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acknowledged != 0 || rep.Failed != rep.Requests || rep.StatusCodes["500"] != rep.Requests || int(sink.calls.Load()) != rep.Requests {
		t.Errorf("report %+v, %d calls (no retries expected)", rep, sink.calls.Load())
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("percentiles %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("percentiles of nothing")
	}
}
