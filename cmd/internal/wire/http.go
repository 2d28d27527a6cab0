package wire

import (
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
		OAuth:    s.Tokens.Endpoint(s.Log),
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
