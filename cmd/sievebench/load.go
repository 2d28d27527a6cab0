package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is a closed-loop HTTP load figure.
type LoadResult struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
}

// closedLoop runs conc workers issuing requests made by mk for d (and at
// most maxReq requests), and reports throughput and latency percentiles.
func closedLoop(ctx context.Context, conc int, d time.Duration, maxReq int64, mk func(i int64) *http.Request, ok func(*http.Response) bool) LoadResult {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	var n, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := n.Add(1)
				if i > maxReq {
					return
				}
				req := mk(i)
				t0 := time.Now()
				resp, err := client.Do(req)
				el := time.Since(t0)
				if err != nil {
					errs.Add(1)
					continue
				}
				good := ok(resp)
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if !good {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], el)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := LoadResult{Requests: len(all), Errors: int(errs.Load()), PerSecond: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		res.P50Ms = ms(all[len(all)*50/100])
		res.P99Ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
