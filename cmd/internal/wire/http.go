package wire

import (
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/token"
	shopapi "github.com/sieve-broker/sieve/commerce/httpapi"
)

// HTTP builds the HTTP application over the system.
func (s *System) HTTP(extra func(*httpapi.Deps)) *httpapi.Server {
	metrics := httpapi.NewMetrics()
	s.Service.Metrics = metrics
	d := httpapi.Deps{
		Log:      s.Log,
		DB:       s.DB,
		Auth:     &token.Authenticator{Issuer: s.Issuer, Store: s.DB.Partners()},
		OAuth:    s.Tokens.Endpoint(s.Log),
		JWKS:     s.SignKeys.JWKS,
		WhatsApp: s.Receiver,
		Breaches: &breachAPI{s: s},
		Audit:    &auditAPI{s: s},
		Reports:  &Reports{s: s},
		OpenAPI:  httpapi.OpenAPI(),
		Metrics:  metrics,
		Privacy:  s.notices.page,
	}
	shop := shopapi.Deps{Orders: s.Orders, Offers: s.Market, Subjects: s.Rights, Grievances: s.Desk, Pseudonyms: s.Pseudo}
	if s.Notices != nil {
		shop.Notices = s.Notices
	}
	if s.Service.Consents != nil {
		shop.Consents = s.Service
	}
	d.Routes = append(d.Routes, shopapi.Mount(shop))
	s.UI()(&d)
	if extra != nil {
		extra(&d)
	}
	rate := s.Config.Server.PartnerRate
	return httpapi.New(httpapi.Config{Issuer: s.Config.Server.Issuer, PartnerRate: rate, PartnerBurst: int(2 * rate),
		MetricsToken: s.Config.Server.MetricsToken, ReadTimeout: s.Config.Server.ReadTimeout,
		TrustedProxies: s.Config.Server.TrustedProxyPrefixes()}, d)
}
