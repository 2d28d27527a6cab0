package token

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Endpoint returns the token endpoint (RFC 6749 §4.4) as the HTTP layer
// mounts it (httpapi.OAuthFunc): it reads the form and the Basic
// credentials, runs Token, and answers with the status, the headers
// (WWW-Authenticate, Retry-After) and the JSON body. A repeated parameter
// is refused. The cause of a server error is logged, never sent.
func (s *Server) Endpoint(log *slog.Logger) func(ctx context.Context, form map[string][]string, user, pass string, hasBasic bool, addr string) (int, map[string]string, []byte) {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, form map[string][]string, user, pass string, hasBasic bool, addr string) (int, map[string]string, []byte) {
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
		res, oerr := s.Token(ctx, TokenRequest{GrantType: one("grant_type"), Scope: one("scope"),
			FormClientID: one("client_id"), FormClientSecret: one("client_secret"), BasicUser: user, BasicPass: pass,
			HasBasic: hasBasic, DuplicateParams: dup, ClientAddr: addr})
		if oerr != nil {
			h := map[string]string{}
			if oerr.WWWAuthenticate != "" {
				h["WWW-Authenticate"] = oerr.WWWAuthenticate
			}
			if oerr.RetryAfter > 0 {
				h["Retry-After"] = retryAfterHeader(oerr.RetryAfter)
			}
			if oerr.Err != nil {
				log.Warn("token endpoint", "code", oerr.Code, "err", oerr.Err)
			}
			b, _ := json.Marshal(oerr)
			return oerr.Status, h, b
		}
		b, _ := json.Marshal(res)
		return http.StatusOK, nil, b
	}
}

// retryAfterHeader is d in whole seconds, rounded up (RFC 9110 §10.2.3).
func retryAfterHeader(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
