package token

import (
	"context"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Authenticator verifies bearer tokens and checks the partner still exists,
// is enabled (a disabled partner's tokens die at once) and has not revoked
// the token (issued before the partner's NotBefore).
type Authenticator struct {
	Issuer *Issuer
	Store  broker.PartnerStore
	mu     sync.Mutex
	cache  map[string]cachedPartner
	now    func() time.Time // the cache's clock; nil: time.Now
}

type cachedPartner struct {
	p   broker.Partner
	exp time.Time
}

// partnerTTL bounds how long a disable takes to bite in other processes.
const partnerTTL = 2 * time.Second

// Authenticate implements httpapi.Authenticator: the partner and the
// token's scopes that the partner still holds. Any token or partner
// problem is EUnauthorized with one message (a caller learns nothing of
// why); a store that is away is its error (EUnavailable), not a refusal.
func (a *Authenticator) Authenticate(ctx context.Context, bearer string) (broker.Partner, []broker.Scope, error) {
	claims, err := a.Issuer.Verify(bearer)
	if err != nil {
		return broker.Partner{}, nil, broker.Errorf(broker.EUnauthorized, "invalid token")
	}
	now := time.Now()
	if a.now != nil {
		now = a.now()
	}
	a.mu.Lock()
	c, ok := a.cache[claims.ClientID]
	a.mu.Unlock()
	if !ok || now.After(c.exp) {
		p, err := a.Store.GetPartner(ctx, claims.ClientID)
		if err != nil {
			if broker.ErrorCode(err) == broker.EUnavailable {
				return broker.Partner{}, nil, err
			}
			return broker.Partner{}, nil, broker.Errorf(broker.EUnauthorized, "invalid token")
		}
		c = cachedPartner{p: p, exp: now.Add(partnerTTL)}
		a.mu.Lock()
		if a.cache == nil || len(a.cache) > 10000 {
			a.cache = map[string]cachedPartner{}
		}
		a.cache[claims.ClientID] = c
		a.mu.Unlock()
	}
	// A token issued before the partner's not-before (set on disable and
	// on rotate-secret --revoke-tokens) is dead even once the partner is
	// enabled again. The cached partner carries it, so a revocation bites
	// here within partnerTTL, like a disable.
	if c.p.Disabled || claims.IssuedAt.Before(c.p.NotBefore) {
		return broker.Partner{}, nil, broker.Errorf(broker.EUnauthorized, "invalid token")
	}
	// The token's scopes, narrowed to what the partner holds now.
	var scopes []broker.Scope
	for _, s := range claims.Scopes {
		for _, g := range c.p.Scopes {
			if s == g {
				scopes = append(scopes, s)
			}
		}
	}
	return c.p, scopes, nil
}
