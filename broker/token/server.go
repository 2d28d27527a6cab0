package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// GrantClientCredentials is the only grant the token endpoint serves.
const GrantClientCredentials = "client_credentials"

// OAuth2 error codes of RFC 6749 §5.2, and the two server-side ones the
// token endpoint borrows from §4.1.2.1 when it cannot answer.
const (
	ErrCodeInvalidRequest         = "invalid_request"
	ErrCodeInvalidClient          = "invalid_client"
	ErrCodeUnsupportedGrantType   = "unsupported_grant_type"
	ErrCodeInvalidScope           = "invalid_scope"
	ErrCodeServerError            = "server_error"
	ErrCodeTemporarilyUnavailable = "temporarily_unavailable"
)

// BasicChallenge is the WWW-Authenticate value of an invalid_client answer.
const BasicChallenge = `Basic realm="sieve"`

const (
	maxClientIDLen = 128
	// A verified secret is remembered (as an HMAC) for half a day: it lets
	// a partner past the failure throttle while someone guesses its id,
	// and a rotation (a new stored hash) voids it at once.
	secretCacheTTL = 12 * time.Hour
	secretCacheMax = 10_000
)

// TokenRequest is a token request as the HTTP layer read it from the wire.
type TokenRequest struct {
	GrantType        string // form grant_type
	Scope            string // form scope, space-separated; "" asks for every granted scope
	FormClientID     string // form client_id
	FormClientSecret string // form client_secret
	// BasicUser and BasicPass are the two halves of an Authorization:
	// Basic header as sent: still form-urlencoded (RFC 6749 §2.3.1);
	// Token decodes them. See ParseBasicAuth.
	BasicUser, BasicPass string
	// HasBasic is set when the request carried Authorization: Basic, even
	// a malformed one (then with empty user and password).
	HasBasic bool
	// DuplicateParams is set when any form parameter appeared more than
	// once, which RFC 6749 §3.2 forbids.
	DuplicateParams bool
	// ClientAddr is the client's IP address (behind trusted proxies, the
	// one they forwarded); failed authentications are throttled per
	// address as well as per client id. "" skips the address throttle.
	ClientAddr string
}

// TokenResponse is the success body of the token endpoint (RFC 6749 §5.1).
// No refresh token: a client-credentials client just asks again (§4.4.3).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// OAuthError is an error answer of the token endpoint: the HTTP status, the
// JSON body of RFC 6749 §5.2 and, for invalid_client, the WWW-Authenticate
// header to send. Descriptions are fixed texts: no client input is echoed.
type OAuthError struct {
	Status          int    `json:"-"`
	Code            string `json:"error"`
	Description     string `json:"error_description"`
	WWWAuthenticate string `json:"-"`
	// Err is the cause of a server_error or temporarily_unavailable, for
	// the log; never sent.
	Err error `json:"-"`
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up): on a 429 of the failure throttle and on a 503.
	RetryAfter time.Duration `json:"-"`
}

func oauthErr(status int, code, desc string) *OAuthError {
	return &OAuthError{Status: status, Code: code, Description: desc}
}

// invalidClient is the one answer to every failed client authentication
// (unknown client, wrong secret, disabled partner, no credentials), so that
// it tells nobody which client ids exist. It is 401 with a Basic challenge
// in every case: RFC 6749 §5.2 requires that when Basic was used and allows
// it otherwise, and it tells form-auth clients which scheme we support.
func invalidClient() *OAuthError {
	e := oauthErr(http.StatusUnauthorized, ErrCodeInvalidClient, "client authentication failed")
	e.WWWAuthenticate = BasicChallenge
	return e
}

// Server is the logic of the OAuth2 token endpoint for the client
// credentials grant. It is safe for concurrent use.
type Server struct {
	store  broker.PartnerStore
	issuer *Issuer
	// argon2 costs 19 MiB and ~20 ms of one core, so checks run in two
	// bounded lanes: clean, for a client id and an address with no
	// failure on record, as wide as the cores; suspect, one at a time,
	// for the rest. Guesses thus never queue ahead of a clean partner.
	clean, suspect chan struct{}
	checked        *secretCache
	byAddr, byID   *failureBuckets
	// argonTime is how long a check takes: unknown client ids are
	// answered after as long a pause (no argon2), so response time does
	// not tell which ids exist and guesses at random ids cost no CPU.
	argonTime argonClock
}

// NewServer returns the token endpoint logic over the partner registry.
func NewServer(store broker.PartnerStore, issuer *Issuer) *Server {
	s := &Server{store: store, issuer: issuer,
		clean: make(chan struct{}, runtime.GOMAXPROCS(0)), suspect: make(chan struct{}, 1),
		checked: newSecretCache(secretCacheMax, secretCacheTTL),
		byAddr:  newFailureBuckets(addrFailBurst, addrFailEvery), byID: newFailureBuckets(idFailBurst, idFailEvery)}
	// Time one check now, so the first unknown id already pauses as long.
	start := time.Now()
	dummy, err := HashSecret(NewSecret())
	if err != nil {
		panic("token: hash dummy secret: " + err.Error()) // only crypto/rand fails here
	}
	CheckSecret(dummy, NewSecret())
	s.argonTime.observe(time.Since(start) / 2)
	return s
}

// Token answers a token request: RFC 6749 §4.4 (client credentials), with
// errors per §5.2. Exactly one of the results is non-zero.
func (s *Server) Token(ctx context.Context, req TokenRequest) (TokenResponse, *OAuthError) {
	if req.DuplicateParams {
		return TokenResponse{}, oauthErr(http.StatusBadRequest, ErrCodeInvalidRequest, "request parameters must not be repeated")
	}
	switch req.GrantType {
	case "":
		return TokenResponse{}, oauthErr(http.StatusBadRequest, ErrCodeInvalidRequest, "grant_type is required")
	case GrantClientCredentials:
	default:
		return TokenResponse{}, oauthErr(http.StatusBadRequest, ErrCodeUnsupportedGrantType, "only client_credentials is supported")
	}

	clientID, secret, oe := credentials(req)
	if oe != nil {
		return TokenResponse{}, oe
	}
	p, oe := s.authenticate(ctx, clientID, secret, addrKey(req.ClientAddr))
	if oe != nil {
		if oe.Status == http.StatusTooManyRequests {
			// Hold the answer on a timer: a guesser in a closed loop then
			// sends a request a second per connection, not thousands,
			// each of which would still cost HTTP and form parsing.
			sleep(ctx, min(oe.RetryAfter, maxTarpit))
		}
		return TokenResponse{}, oe
	}

	// A legacy row may hold a compliance scope its kind may not: it is
	// never granted (asked for, it is invalid_scope).
	scopes, oe := grantScopes(req.Scope, broker.ScopesForKind(p.Kind, p.Scopes))
	if oe != nil {
		return TokenResponse{}, oe
	}
	if oe := s.waitNotBefore(ctx, p.NotBefore); oe != nil {
		return TokenResponse{}, oe
	}
	tok, expiresIn, err := s.issuer.Issue(p.ID, scopes)
	if err != nil {
		e := oauthErr(http.StatusInternalServerError, ErrCodeServerError, "could not issue a token")
		e.Err = err
		return TokenResponse{}, e
	}
	return TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: expiresIn,
		Scope: strings.Join(scopes, " ")}, nil
}

// credentials picks the client's credentials from the one method it used.
func credentials(req TokenRequest) (clientID, secret string, _ *OAuthError) {
	if req.HasBasic {
		// RFC 6749 §2.3: one authentication method per request. A
		// client_id in the form that repeats the Basic user is tolerated
		// (some libraries always send it); a form secret is not.
		user, err1 := url.QueryUnescape(req.BasicUser)
		pass, err2 := url.QueryUnescape(req.BasicPass)
		if err1 != nil || err2 != nil {
			return "", "", oauthErr(http.StatusBadRequest, ErrCodeInvalidRequest, "malformed client credentials")
		}
		if req.FormClientSecret != "" || (req.FormClientID != "" && req.FormClientID != user) {
			return "", "", oauthErr(http.StatusBadRequest, ErrCodeInvalidRequest, "use exactly one client authentication method")
		}
		return user, pass, nil
	}
	if req.FormClientID == "" && req.FormClientSecret == "" {
		return "", "", invalidClient()
	}
	return req.FormClientID, req.FormClientSecret, nil
}

// authenticate checks the client's secret and that it may get tokens.
// Failures count against the address and the client id; once either is
// over its limit, only a secret verified before gets past the throttle.
func (s *Server) authenticate(ctx context.Context, clientID, secret, addr string) (broker.Partner, *OAuthError) {
	now := time.Now()
	if clientID == "" || secret == "" || len(clientID) > maxClientIDLen || len(secret) > maxSecretLen {
		if ok, _, retry := s.byAddr.state(addr, now); !ok {
			return broker.Partner{}, throttled(retry)
		}
		s.byAddr.fail(addr, now)
		return broker.Partner{}, invalidClient()
	}
	addrOK, addrClean, addrRetry := s.byAddr.state(addr, now)
	idOK, idClean, idRetry := s.byID.state(clientID, now)
	// limited, when positive, is how long until the request would be
	// under the limit again.
	var limited time.Duration
	if !addrOK || !idOK {
		limited = max(addrRetry, idRetry, time.Second)
	}
	// The cheap pre-check: over the limit, a secret this process has not
	// verified before is refused without a database or argon2 call.
	if limited > 0 && !s.checked.seen(clientID, secret, now) {
		return broker.Partner{}, throttled(limited)
	}
	p, err := s.store.GetPartner(ctx, clientID)
	switch {
	case broker.IsNotFound(err), broker.ErrorCode(err) == broker.EInvalid: // EInvalid: an id no row can hold
		// Unknown ids count against the address only: a table keyed by
		// made-up ids would grow for nothing.
		s.byAddr.fail(addr, now)
		s.argonTime.pause(ctx)
		return broker.Partner{}, invalidClient()
	case err != nil:
		return broker.Partner{}, storeErr(err)
	}
	lane := s.clean
	if !addrClean || !idClean {
		lane = s.suspect
	}
	if oe := s.checkSecret(ctx, lane, limited, p.ID, p.SecretHash, secret); oe != nil {
		if oe.Code == ErrCodeInvalidClient {
			s.byAddr.fail(addr, now)
			s.byID.fail(p.ID, now)
		}
		return broker.Partner{}, oe
	}
	// Checked after the secret, so only the partner itself learns that it
	// is disabled (and even then only as invalid_client).
	if p.Disabled {
		return broker.Partner{}, invalidClient()
	}
	return p, nil
}

// checkSecret answers nil when secret matches phc: from the cache of
// recent successes when it can, else (unless the request is over the
// failure limit for another `limited`) through argon2 in the given lane.
func (s *Server) checkSecret(ctx context.Context, lane chan struct{}, limited time.Duration, clientID, phc, secret string) *OAuthError {
	if s.checked.verified(clientID, phc, secret, time.Now()) {
		return nil
	}
	if limited > 0 {
		// Seen before, but under an older stored hash (the secret was
		// rotated since): no argon2 while over the limit.
		return throttled(limited)
	}
	select {
	case lane <- struct{}{}:
	case <-ctx.Done():
		e := oauthErr(http.StatusServiceUnavailable, ErrCodeTemporarilyUnavailable, "try again later")
		e.Err = ctx.Err()
		return e
	}
	start := time.Now()
	ok := CheckSecret(phc, secret)
	s.argonTime.observe(time.Since(start))
	<-lane
	if !ok {
		return invalidClient()
	}
	s.checked.add(clientID, phc, secret, time.Now())
	return nil
}

// maxNotBeforeWait bounds how long a token request waits for the partner's
// not-before to pass; longer means the database's clock runs ahead of ours.
const maxNotBeforeWait = 2 * time.Second

// waitNotBefore holds a token request until a token issued now would not
// be refused by the partner's not-before. iat has whole seconds (truncated),
// so a token issued in the very second of a revocation would carry an iat
// before it: wait for the next whole second instead of lying about iat.
// Only an authenticated partner, just after its revocation, ever waits.
func (s *Server) waitNotBefore(ctx context.Context, notBefore time.Time) *OAuthError {
	if notBefore.IsZero() {
		return nil
	}
	at := notBefore.Truncate(time.Second)
	if at.Before(notBefore) {
		at = at.Add(time.Second)
	}
	wait := at.Sub(s.issuer.now())
	if wait <= 0 {
		return nil
	}
	if wait > maxNotBeforeWait {
		e := oauthErr(http.StatusServiceUnavailable, ErrCodeTemporarilyUnavailable, "try again later")
		e.Err, e.RetryAfter = errors.New("partner not-before is ahead of this clock"), wait
		return e
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		e := oauthErr(http.StatusServiceUnavailable, ErrCodeTemporarilyUnavailable, "try again later")
		e.Err = ctx.Err()
		return e
	}
}

func storeErr(err error) *OAuthError {
	if broker.ErrorCode(err) == broker.EUnavailable {
		e := oauthErr(http.StatusServiceUnavailable, ErrCodeTemporarilyUnavailable, "try again later")
		e.Err = err
		return e
	}
	e := oauthErr(http.StatusInternalServerError, ErrCodeServerError, "internal error")
	e.Err = err
	return e
}

// grantScopes decides the token's scopes: every granted scope when none is
// asked for (RFC 6749 §3.3 lets the server pick a default), else exactly
// the ones asked for, each of which must be known and granted.
func grantScopes(requested string, granted []string) ([]string, *OAuthError) {
	if strings.TrimSpace(requested) == "" {
		out := slices.Clone(granted)
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	var out []string
	for _, s := range strings.Fields(requested) {
		switch {
		case !slices.Contains(broker.AllScopes, s):
			return nil, oauthErr(http.StatusBadRequest, ErrCodeInvalidScope, "unknown scope requested")
		case !slices.Contains(granted, s):
			return nil, oauthErr(http.StatusBadRequest, ErrCodeInvalidScope, "requested scope is not granted to this client")
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ParseBasicAuth splits an Authorization header value of the Basic scheme
// (RFC 7617) into its user and password, still form-urlencoded as RFC 6749
// §2.3.1 sends them; ok is false for any other scheme or a malformed value.
func ParseBasicAuth(header string) (user, pass string, ok bool) {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, pass, true
}

// secretCache remembers recent successful secret checks so a partner that
// asks for a token every few minutes does not pay argon2 each time, and
// gets past the failure throttle. Keys are HMACs under a per-process random
// key of (client id, secret): no secret is kept, and the entries are
// useless outside this process. Each entry holds the stored hash the secret
// was verified against, so a rotated secret (a new stored hash) misses.
type secretCache struct {
	mac []byte
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[[32]byte]verifiedSecret
}

type verifiedSecret struct {
	phc string
	exp time.Time
}

func newSecretCache(max int, ttl time.Duration) *secretCache {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &secretCache{mac: k, ttl: ttl, max: max, m: make(map[[32]byte]verifiedSecret)}
}

func (c *secretCache) key(clientID, secret string) [32]byte {
	h := hmac.New(sha256.New, c.mac)
	for _, s := range []string{clientID, secret} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(s)>>24), byte(len(s)>>16), byte(len(s)>>8), byte(len(s))
		h.Write(n[:]) // length-prefixed: no two pairs hash alike
		h.Write([]byte(s))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (c *secretCache) get(clientID, secret string, now time.Time) (verifiedSecret, bool) {
	key := c.key(clientID, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && !now.Before(e.exp) {
		delete(c.m, key)
		return verifiedSecret{}, false
	}
	return e, ok
}

// seen reports whether secret was verified for clientID lately, under any
// stored hash: the pre-check of a throttled request.
func (c *secretCache) seen(clientID, secret string, now time.Time) bool {
	_, ok := c.get(clientID, secret, now)
	return ok
}

// verified reports whether secret was verified for clientID lately against
// the stored hash phc.
func (c *secretCache) verified(clientID, phc, secret string, now time.Time) bool {
	e, ok := c.get(clientID, secret, now)
	return ok && subtle.ConstantTimeCompare([]byte(e.phc), []byte(phc)) == 1
}

func (c *secretCache) add(clientID, phc, secret string, now time.Time) {
	key := c.key(clientID, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.exp) || len(c.m) >= c.max {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = verifiedSecret{phc: phc, exp: now.Add(c.ttl)}
}
