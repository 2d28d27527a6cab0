package token

import (
	"context"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The token endpoint's failure throttle. Client secrets are 256-bit random
// values, so guessing one is hopeless; what a flood of guesses can do is
// burn argon2 (19 MiB and ~20 ms of a core each) until real partners queue
// behind it. So failed authentications are counted per client address and
// per client id in token buckets; an empty bucket answers 429 before any
// database or argon2 work, except for a secret this process has verified
// before (the HMAC cache), so a partner keeps getting tokens while someone
// else guesses its id from its own address.
const (
	// Per address: 20 failures at once, then one every 3 s.
	addrFailBurst = 20
	addrFailEvery = 3 * time.Second
	// Per client id: 10 failures at once, then one every 6 s.
	idFailBurst = 10
	idFailEvery = 6 * time.Second
	// failKeysMax bounds each table; full (forgiven) buckets go first.
	failKeysMax = 100_000
)

// ErrDescThrottled is the error_description of a throttled request.
const ErrDescThrottled = "too many failed client authentications; retry after the time in Retry-After"

// throttled is the answer to a request whose address or client id has
// failed too often: 429 with Retry-After. The error code is
// temporarily_unavailable: RFC 6749 §5.2 has no code for it, invalid_client
// must be a 401 when the client used Basic, and slow_down belongs to the
// device grant (RFC 8628); the endpoint already borrows
// temporarily_unavailable (§4.1.2.1) for its 503.
func throttled(retry time.Duration) *OAuthError {
	e := oauthErr(http.StatusTooManyRequests, ErrCodeTemporarilyUnavailable, ErrDescThrottled)
	e.RetryAfter = max(retry, time.Second)
	return e
}

// failureBuckets counts failures per key: a bucket holds up to burst
// failures and forgives one every `every`.
type failureBuckets struct {
	burst float64
	every time.Duration
	mu    sync.Mutex
	m     map[string]*failBucket
}

type failBucket struct {
	tokens float64
	last   time.Time
}

func newFailureBuckets(burst int, every time.Duration) *failureBuckets {
	return &failureBuckets{burst: float64(burst), every: every, m: map[string]*failBucket{}}
}

// refill brings b up to date; the caller holds mu.
func (f *failureBuckets) refill(b *failBucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(f.burst, b.tokens+el.Seconds()/f.every.Seconds())
		b.last = now
	}
}

// state reports whether key may fail once more (ok), whether it has no
// failure on record (clean), and, when not ok, how long until it may.
func (f *failureBuckets) state(key string, now time.Time) (ok, clean bool, retry time.Duration) {
	if key == "" {
		return true, true, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, found := f.m[key]
	if !found {
		return true, true, 0
	}
	f.refill(b, now)
	if b.tokens >= 1 {
		return true, b.tokens >= f.burst, 0
	}
	return false, false, time.Duration((1 - b.tokens) * float64(f.every))
}

// fail counts one failure under key.
func (f *failureBuckets) fail(key string, now time.Time) {
	if key == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, found := f.m[key]
	if !found {
		if len(f.m) >= failKeysMax {
			f.evict(now)
		}
		b = &failBucket{tokens: f.burst, last: now}
		f.m[key] = b
	}
	f.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// evict drops forgiven buckets, and everything if that is not enough (a
// flood from more addresses than the table holds); the caller holds mu.
func (f *failureBuckets) evict(now time.Time) {
	for k, b := range f.m {
		if f.refill(b, now); b.tokens >= f.burst {
			delete(f.m, k)
		}
	}
	if len(f.m) >= failKeysMax {
		clear(f.m)
	}
}

// addrKey is the throttling key of a client address: the address itself,
// or for IPv6 its /64, which one host commonly holds whole.
func addrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// argonClock keeps a moving average of how long one argon2 check takes, so
// that an unknown client id can be answered after as long a pause without
// spending a core on it: the pause is a timer, not work.
type argonClock struct{ ns atomic.Int64 }

func (a *argonClock) observe(d time.Duration) {
	old := a.ns.Load()
	if old == 0 {
		a.ns.Store(int64(d))
		return
	}
	a.ns.Store(old + (int64(d)-old)/8)
}

// pause waits about one argon2 check, or until ctx ends.
func (a *argonClock) pause(ctx context.Context) { sleep(ctx, time.Duration(a.ns.Load())) }

// maxTarpit bounds how long a throttled answer is held.
const maxTarpit = time.Second

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
