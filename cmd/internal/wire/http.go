package wire

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/token"
)

// HTTP builds the HTTP application over the system.
func (s *System) HTTP(extra func(*httpapi.Deps)) *httpapi.Server {
	metrics := httpapi.NewMetrics()
	s.Shop.Metrics = metrics
	d := httpapi.Deps{
		Log:      s.Log,
		DB:       s.DB,
		Auth:     &token.Authenticator{Issuer: s.Issuer, Store: s.DB},
		OAuth:    s.oauth,
		JWKS:     s.SignKeys.JWKS,
		WhatsApp: s.Receiver,
		Shop:     s.Shop,
		Rights:   s.Rights,
		Desk:     s.Desk,
		Breaches: &breachAPI{s: s},
		Audit:    &auditAPI{s: s},
		Reports:  &Reports{s: s},
		Partners: s.DB,
		Policy:   s.Policy,
		OpenAPI:  httpapi.OpenAPI(),
		Metrics:  metrics,
		Privacy:  s.notices.page,
	}
	s.UI()(&d)
	if extra != nil {
		extra(&d)
	}
	rate := s.Config.Server.PartnerRate
	return httpapi.New(httpapi.Config{Issuer: s.Config.Server.Issuer, PartnerRate: rate, PartnerBurst: int(2 * rate),
		MetricsToken: s.Config.Server.MetricsToken, ReadTimeout: s.Config.Server.ReadTimeout,
		TrustedProxies: s.Config.Server.TrustedProxyPrefixes()}, d)
}

// oauth adapts the token endpoint logic to the HTTP layer.
func (s *System) oauth(ctx context.Context, form map[string][]string, user, pass string, hasBasic bool, addr string) (int, map[string]string, []byte) {
	one := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	dup := false
	for _, k := range []string{"grant_type", "scope", "client_id", "client_secret"} {
		if len(form[k]) > 1 {
			dup = true
		}
	}
	res, oerr := s.Tokens.Token(ctx, token.TokenRequest{GrantType: one("grant_type"), Scope: one("scope"),
		FormClientID: one("client_id"), FormClientSecret: one("client_secret"), BasicUser: user, BasicPass: pass,
		HasBasic: hasBasic, DuplicateParams: dup, ClientAddr: addr})
	if oerr != nil {
		h := map[string]string{}
		if oerr.WWWAuthenticate != "" {
			h["WWW-Authenticate"] = oerr.WWWAuthenticate
		}
		if oerr.RetryAfter > 0 {
			h["Retry-After"] = strconv.Itoa(int((oerr.RetryAfter + time.Second - 1) / time.Second))
		}
		if oerr.Err != nil {
			s.Log.Warn("token endpoint", "code", oerr.Code, "err", oerr.Err)
		}
		b, _ := json.Marshal(oerr)
		return oerr.Status, h, b
	}
	b, _ := json.Marshal(res)
	return http.StatusOK, nil, b
}
