package token

import "time"

// Test hooks: the clock, the cache, and the internals fuzzing checks.

// SetNow replaces the issuer's clock.
func SetNow(i *Issuer, now func() time.Time) { i.now = now }

// CacheLen returns the number of cached verified tokens.
func CacheLen(i *Issuer) int { return i.cache.len() }

// VerifyUncached verifies without consulting or filling the cache.
func VerifyUncached(i *Issuer, raw string) (*Claims, error) {
	c, _, err := i.verify(raw)
	return c, err
}

// ParsePHC parses an argon2id PHC string and formats it back.
func ParsePHC(s string) (canonical string, memoryKiB, passes uint32, ok bool) {
	p, ok := parsePHC(s)
	if !ok {
		return "", 0, 0, false
	}
	return p.String(), p.memory, p.time, true
}

// FillArgonPool occupies every argon2 slot of s, in both lanes, until
// release is called.
func FillArgonPool(s *Server) (release func()) {
	for _, lane := range []chan struct{}{s.clean, s.suspect} {
		for range cap(lane) {
			lane <- struct{}{}
		}
	}
	return func() {
		for _, lane := range []chan struct{}{s.clean, s.suspect} {
			for range cap(lane) {
				<-lane
			}
		}
	}
}

// SetAuthNow replaces the clock of the authenticator's partner cache.
func SetAuthNow(a *Authenticator, now func() time.Time) { a.now = now }

// RetryAfterHeader is retryAfterHeader.
var RetryAfterHeader = retryAfterHeader
