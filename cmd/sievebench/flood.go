package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FloodResult is the partner-read figure under a flood of secret guesses at
// /oauth/token, beside the same run's reads without it.
type FloodResult struct {
	Guessers  int        `json:"guessers"`
	Guesses   int64      `json:"guesses"`
	Throttled int64      `json:"guesses_throttled_429"`
	Refused   int64      `json:"guesses_refused_401"`
	Reads     LoadResult `json:"partner_reads"`
}

// guessFlood runs guessers closed-loop clients that ask /oauth/token for a
// token with a random secret, half for made-up client ids and half for the
// real partner's id, until ctx ends; it counts the answers into res.
func guessFlood(ctx context.Context, guessers int, realID string, res *FloodResult) {
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: guessers, MaxConnsPerHost: guessers}}
	var n, throttled, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range guessers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := realID
				if (g+i)%2 == 0 {
					id = "cli_" + randomText(16)
				}
				form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {randomText(43)}}
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+brokerAddr+"/oauth/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				n.Add(1)
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					throttled.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res.Guessers, res.Guesses, res.Throttled, res.Refused = guessers, n.Load(), throttled.Load(), refused.Load()
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:n]
}

// readsUnderFlood measures partner reads (as phase 4 does) while guessers
// flood the token endpoint; the flood starts a second before the reads so
// they meet it at full strength.
func (r *runner) readsUnderFlood(ctx context.Context, guessers int, realID, tok string, ids []string) FloodResult {
	var res FloodResult
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { guessFlood(fctx, guessers, realID, &res); close(done) }()
	time.Sleep(time.Second)
	res.Reads = closedLoop(ctx, r.conc, r.dur, 5_000_000, func(i int64) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+brokerAddr+"/v1/orders/"+ids[int(i)%len(ids)], nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}, func(resp *http.Response) bool {
		return resp.StatusCode == 200 && resp.Header.Get("X-Decision-Id") != ""
	})
	stop()
	<-done
	return res
}
