package partnerhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
)

// DefaultTimeout bounds one delivery when Deliverer is built with zero.
const DefaultTimeout = 10 * time.Second

// Deliverer posts signed events to partners' webhook URLs. It implements
// commerce.PartnerHooks.
type Deliverer struct {
	// secret is the partner's signing key: its client secret, opened
	// through the vault (token.WebhookSecret).
	secret func(ctx context.Context, partnerID string) ([]byte, error)
	guard  *Guard
	client *http.Client
	now    func() time.Time
}

var _ commerce.PartnerHooks = (*Deliverer)(nil)

// New builds a Deliverer that signs with each partner's secret (opened
// through vault) and connects only where guard allows; timeout bounds a
// delivery (DefaultTimeout when zero). Its HTTP client uses no proxy (a
// proxy would make the guard check the proxy's address, not the
// partner's) and follows no redirect.
func New(store broker.PartnerStore, vault broker.Vault, guard *Guard, timeout time.Duration) *Deliverer {
	if guard == nil {
		guard = &Guard{}
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: guard.Control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	secret := func(ctx context.Context, id string) ([]byte, error) {
		return token.WebhookSecret(ctx, store, vault, id)
	}
	return &Deliverer{secret: secret, guard: guard, now: time.Now, client: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect would carry the signed body to a URL nobody
		// registered; the 3xx itself is the answer (a failed delivery).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Delivery failure reasons, stored in the outbox: codes, never the URL or
// anything the partner answered.
const (
	ReasonSecret      = "partner secret unavailable"
	ReasonURL         = "invalid webhook URL"
	ReasonInsecure    = "webhook URL not https in production"
	ReasonRefused     = "webhook address refused"
	ReasonUnreachable = "partner webhook unreachable"
)

// Deliver posts body to the partner's webhook URL, signed with its secret.
// A 2xx is a delivery; 408, 429, 5xx, a 3xx (redirects are not followed)
// and network errors are retried; a refused address is retried too (the
// operator may allow it, or DNS may point elsewhere again); other 4xx are
// permanent.
func (d *Deliverer) Deliver(ctx context.Context, p broker.Partner, event string, body []byte) error {
	u, err := url.Parse(p.WebhookURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return &commerce.DeliveryError{Permanent: true, Reason: ReasonURL}
	}
	if u.Scheme != "https" && d.guard.HTTPSOnly {
		return &commerce.DeliveryError{Permanent: true, Reason: ReasonInsecure}
	}
	secret, err := d.secret(ctx, p.ID)
	if err != nil {
		return &commerce.DeliveryError{Permanent: true, Reason: ReasonSecret}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return &commerce.DeliveryError{Permanent: true, Reason: ReasonURL}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sieve-Event", event)
	req.Header.Set(Header, Sign(secret, d.now(), body))
	req.Header.Set("User-Agent", "Sieve-Webhooks/1")
	resp, err := d.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrAddressRefused) {
			return &commerce.DeliveryError{Reason: ReasonRefused}
		}
		return &commerce.DeliveryError{Reason: ReasonUnreachable}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 300 && c < 400, c == 408, c == 429, c >= 500:
		return &commerce.DeliveryError{Reason: fmt.Sprintf("partner webhook answered %d", c)}
	}
	return &commerce.DeliveryError{Permanent: true, Reason: fmt.Sprintf("partner webhook answered %d", resp.StatusCode)}
}
