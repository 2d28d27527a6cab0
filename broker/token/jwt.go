package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sieve-broker/sieve/broker"
)

// Token lifetimes. RFC 9068 access tokens cannot be recalled one by one,
// so they are short; disabling a partner, or rotating its secret with
// --revoke-tokens, sets the partner's not-before, which refuses every token
// issued before it at once (a plain rotation leaves issued tokens to die
// within MaxLifetime).
const (
	DefaultLifetime = 10 * time.Minute
	MaxLifetime     = 15 * time.Minute
)

const (
	// MaxTokenLen caps what Verify parses. Our tokens are about 450 bytes;
	// the cap keeps hostile input from costing base64 and JSON work.
	MaxTokenLen = 4 << 10
	// Leeway is the clock skew tolerated on exp and iat.
	Leeway = 30 * time.Second
	// AudienceSuffix is appended to the issuer to form the audience: the
	// partner API, a resource distinct from the authorisation server
	// (RFC 9068 §5).
	AudienceSuffix = "/v1"
	// TokenType is the JWT header typ of an access token (RFC 9068 §2.1).
	TokenType = "at+jwt"

	defaultCacheSize = 10_000
)

// Claims are the verified claims of an access token. Verify returns a
// fresh copy: a caller may keep or modify it.
type Claims struct {
	Issuer    string
	Subject   string   // the partner's client id (RFC 9068 §2.2 for client credentials)
	ClientID  string   // equal to Subject
	Audience  []string // contains the issuer + "/v1"
	Scopes    []string // sorted, from the space-separated scope claim
	ID        string   // jti
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// HasScope reports whether the token grants scope s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

func (c *Claims) clone() *Claims {
	cp := *c
	cp.Audience = slices.Clone(c.Audience)
	cp.Scopes = slices.Clone(c.Scopes)
	return &cp
}

// Issuer issues and verifies the broker's RFC 9068 access tokens. It is
// safe for concurrent use.
type Issuer struct {
	kr       *Keyring
	issuer   string
	audience string
	lifetime time.Duration
	parser   *jwt.Parser
	cache    *verifiedCache
	now      func() time.Time // replaced by tests
}

// NewIssuer returns an issuer that signs with kr's current key as issuer
// (BROKER_ISSUER), for the audience issuer + "/v1". A lifetime of zero or
// less means DefaultLifetime; one above MaxLifetime is capped to it.
func NewIssuer(kr *Keyring, issuer string, lifetime time.Duration) *Issuer {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	lifetime = min(lifetime, MaxLifetime)
	iss := &Issuer{kr: kr, issuer: issuer, audience: issuer + AudienceSuffix, lifetime: lifetime,
		cache: newVerifiedCache(defaultCacheSize), now: time.Now}
	iss.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), // pins the alg: no none, no HS256 confusion
		jwt.WithIssuer(issuer),
		jwt.WithAudience(iss.audience), // also makes aud required
		jwt.WithExpirationRequired(),   // exp is optional by default
		jwt.WithIssuedAt(),             // rejects iat in the future beyond the leeway
		jwt.WithLeeway(Leeway),
		jwt.WithStrictDecoding(), // one encoding per token: no malleable variants
		jwt.WithTimeFunc(func() time.Time { return iss.now() }),
	)
	return iss
}

// Issuer returns the iss value of the tokens.
func (i *Issuer) Issuer() string { return i.issuer }

// Audience returns the aud value of the tokens.
func (i *Issuer) Audience() string { return i.audience }

// Lifetime returns how long an issued token is valid.
func (i *Issuer) Lifetime() time.Duration { return i.lifetime }

// issuedClaims is the claim set as signed. aud is a single string: the
// library's RegisteredClaims would write an array (a process-wide switch,
// jwt.MarshalSingleStringAsArray, decides that), and RFC 9068 partners
// commonly compare it as a string.
type issuedClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
}

// The jwt.Claims methods; the parser never sees issuedClaims, so they only
// need to be truthful, not to validate.
func (c *issuedClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *issuedClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *issuedClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *issuedClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *issuedClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *issuedClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Issue signs an access token for the partner clientID with the given
// scopes, which must be known scopes (the token endpoint has checked they
// are granted). It returns the token and its lifetime in seconds.
func (i *Issuer) Issue(clientID string, scopes []string) (token string, expiresIn int, err error) {
	if clientID == "" {
		return "", 0, broker.Errorf(broker.EInvalid, "no client id")
	}
	for _, s := range scopes {
		// A scope with a space in it would smuggle extra scopes into the
		// space-separated claim; only the known names can be issued.
		if !slices.Contains(broker.AllScopes, s) {
			return "", 0, broker.Errorf(broker.EInvalid, "unknown scope")
		}
	}
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)

	now := i.now().Truncate(time.Second) // NumericDate has second precision
	claims := &issuedClaims{
		Issuer: i.issuer, Subject: clientID, Audience: i.audience,
		ExpiresAt: jwt.NewNumericDate(now.Add(i.lifetime)), IssuedAt: jwt.NewNumericDate(now),
		ID: randomID(), ClientID: clientID, Scope: strings.Join(sorted, " "),
	}
	kid, key := i.kr.Current()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["typ"] = TokenType
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", 0, broker.Wrap(broker.EInternal, err, "sign access token")
	}
	return signed, int(i.lifetime / time.Second), nil
}

// randomID returns a 128-bit random jti. Random rather than sequential so
// that jti values do not let partners correlate or count (RFC 9068 §6).
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// errInvalidToken is the one answer to every bad token: the caller learns
// nothing about why, and the token is never echoed.
func errInvalidToken(cause error) error {
	return &broker.Error{Code: broker.EUnauthorized, Message: "invalid access token", Err: cause}
}

// Reasons a token is refused, for the logs. They never carry token content.
var (
	errTooLong      = errors.New("token too long")
	errBadTyp       = errors.New("typ is not at+jwt")
	errCrit         = errors.New("crit header not supported")
	errUnknownKid   = errors.New("kid names no key of the keyring")
	errSubject      = errors.New("sub missing or not equal to client_id")
	errNoJTI        = errors.New("jti missing")
	errNoIAT        = errors.New("iat missing")
	errLifetime     = errors.New("exp too far after iat")
	errRetiredCache = errors.New("key retired")
)

// wireClaims is the claim set as parsed. RegisteredClaims accepts aud as a
// string or an array, as RFC 7519 allows.
type wireClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// Validate implements jwt.ClaimsValidator: the RFC 9068 checks the
// library's options do not cover. It runs after the signature check.
func (c *wireClaims) Validate() error {
	switch {
	case c.Subject == "" || c.ClientID != c.Subject:
		return errSubject
	case c.ID == "":
		return errNoJTI
	case c.IssuedAt == nil:
		return errNoIAT
	case c.ExpiresAt != nil && c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime:
		// Only a key holder can mint this, but a long-lived token from a
		// bug or a leaked key should not outlive the rules we promise.
		return errLifetime
	}
	return nil
}

// keyfunc checks the header (typ, crit, kid) and picks the public key. The
// alg is pinned by the parser before this runs.
func (i *Issuer) keyfunc(t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	// Media types are case-insensitive; RFC 9068 §4 allows the long form.
	if !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
		return nil, errBadTyp
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: an extension we do not understand must fail.
		return nil, errCrit
	}
	kid, _ := t.Header["kid"].(string)
	pub, ok := i.kr.PublicKey(kid)
	if !ok {
		return nil, errUnknownKid
	}
	return pub, nil
}

// Verify checks an access token: length, signature by a key of the ring
// with alg EdDSA, typ at+jwt, iss, aud, exp, iat (with Leeway), sub =
// client_id, jti. Any failure is a broker.EUnauthorized error with a fixed
// message. A token verified before is answered from a cache until its exp,
// unless its key has been retired since.
func (i *Issuer) Verify(raw string) (*Claims, error) {
	if raw == "" || len(raw) > MaxTokenLen {
		return nil, errInvalidToken(errTooLong)
	}
	key := sha256.Sum256([]byte(raw))
	now := i.now()
	if e, ok := i.cache.get(key, now); ok {
		if _, live := i.kr.PublicKey(e.kid); live {
			return e.claims.clone(), nil
		}
		i.cache.drop(key)
		return nil, errInvalidToken(errRetiredCache)
	}
	c, kid, err := i.verify(raw)
	if err != nil {
		return nil, err
	}
	i.cache.put(key, cacheEntry{claims: c, kid: kid, exp: c.ExpiresAt}, now)
	return c.clone(), nil
}

// verify is Verify without the cache: the signature and every claim check.
func (i *Issuer) verify(raw string) (*Claims, string, error) {
	if raw == "" || len(raw) > MaxTokenLen {
		return nil, "", errInvalidToken(errTooLong)
	}
	var wc wireClaims
	t, err := i.parser.ParseWithClaims(raw, &wc, i.keyfunc)
	if err != nil || !t.Valid {
		return nil, "", errInvalidToken(err)
	}
	c := &Claims{
		Issuer: wc.Issuer, Subject: wc.Subject, ClientID: wc.ClientID,
		Audience: []string(wc.Audience), Scopes: strings.Fields(wc.Scope), ID: wc.ID,
		IssuedAt: wc.IssuedAt.Time, ExpiresAt: wc.ExpiresAt.Time,
	}
	slices.Sort(c.Scopes)
	c.Scopes = slices.Compact(c.Scopes)
	kid, _ := t.Header["kid"].(string)
	return c, kid, nil
}

// PublicKey returns the verification key named kid: the JWKS content for
// callers that want a key object rather than JSON.
func (i *Issuer) PublicKey(kid string) (ed25519.PublicKey, bool) { return i.kr.PublicKey(kid) }

// verifiedCache remembers tokens whose signature and claims were checked,
// keyed by the SHA-256 of the raw token (the token itself is a bearer
// credential and is not kept). Only verified tokens enter it, so a flood of
// bad tokens cannot fill it; the bound covers a flood of good ones.
type verifiedCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]cacheEntry
}

type cacheEntry struct {
	claims *Claims // never handed out: callers get clones
	kid    string
	exp    time.Time
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, m: make(map[[32]byte]cacheEntry)}
}

func (c *verifiedCache) get(key [32]byte, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return cacheEntry{}, false
	}
	if !now.Before(e.exp) {
		delete(c.m, key)
		return cacheEntry{}, false
	}
	return e, true
}

func (c *verifiedCache) put(key [32]byte, e cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, old := range c.m {
			if !now.Before(old.exp) {
				delete(c.m, k)
			}
		}
		// Still full of live tokens: evict arbitrary ones (map order is
		// random). A miss only costs one signature check.
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

func (c *verifiedCache) drop(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
