// Package config reads the broker's configuration from the environment
// (SPEC §3). Each section sets its defaults and validates itself; Validate
// reports every problem at once, so a bad deployment fails with one clear
// message instead of one problem per restart.
package config

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/broker/seal"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/partnerhook"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// Config is the whole configuration.
type Config struct {
	Env      string // "production" or "development"
	Server   Server
	Database Database
	Keys     Keys
	Policy   Policy
	WhatsApp WhatsApp
	Workers  Workers

	// parseErrs are the variables whose values did not parse; Validate
	// reports them, so a typo never silently becomes a default.
	parseErrs []string
	Webhooks  Webhooks
	Witness   Witness
	Desk      Desk
}

// Witness configures the cosigning of audit checkpoints (SPEC §6).
type Witness struct {
	// PolicyFile is the witness policy (BROKER_WITNESS_POLICY): `witness
	// NAME VKEY URL` lines and `quorum N`; empty means no cosigning.
	PolicyFile string
}

// Desk is the rights desk (SPEC §10): the contact every notice and answer
// names, and the grievance timers, never longer than the law's.
type Desk struct {
	// Contact is SIEVE_DPO_CONTACT: the grievance officer / DPO contact.
	Contact string
	// AckWithin (SIEVE_GRIEVANCE_ACK, at most 48h) and ResolveWithin
	// (SIEVE_GRIEVANCE_RESOLVE, at most 30d) are the grievance timers.
	AckWithin, ResolveWithin time.Duration
}

// Server is the HTTP side.
type Server struct {
	Addr            string
	Issuer          string
	ShutdownTimeout time.Duration
	// TrustedProxies are the reverse proxies and load balancers in front
	// (BROKER_TRUSTED_PROXIES: CIDRs or addresses, comma-separated). Only
	// when the peer is one of them is X-Forwarded-For consulted for the
	// client's address; see TrustedProxyPrefixes.
	TrustedProxies []string
	// PartnerRate is each partner's sustained request rate per process
	// (BROKER_PARTNER_RATE, requests/s); bursts of twice that pass.
	PartnerRate float64
	// MetricsToken is the bearer token GET /metrics requires
	// (BROKER_METRICS_TOKEN); empty leaves /metrics open.
	MetricsToken string
	// ReadTimeout bounds reading a request, and the wait for a new
	// connection's first byte (BROKER_READ_TIMEOUT; 0: httpapi's 15 s).
	ReadTimeout time.Duration
}

// Database is PostgreSQL.
type Database struct {
	URL      string
	MaxConns int32
	// ReadURL is an optional streaming replica for the dashboard's and the
	// compliance API's audit reads (BROKER_READ_DATABASE_URL).
	ReadURL string
}

// Keys is where the key material lives.
type Keys struct {
	Dir string
	// Create allows creating missing keys (never in production).
	Create bool
	// Rotation is how often a new age identity is made and the data keys
	// re-wrapped to it (BROKER_KEY_ROTATION, "7d" or a Go duration).
	Rotation time.Duration
	// BackupRetention is how long database backups are kept
	// (BROKER_BACKUP_RETENTION); an age identity is retired that long after
	// it was superseded, which bounds how long an erased shopper stays
	// readable in a backup.
	BackupRetention time.Duration
	// TrustedCheckpoint is the file where brokerd keeps the last audit
	// checkpoint it verified, outside the database, so that a log cut back
	// to an older size is caught (BROKER_TRUSTED_CHECKPOINT; default
	// $BROKER_KEY_DIR/trusted-checkpoint).
	TrustedCheckpoint string
	// LogKeyHandover is how long the previous log key keeps co-signing
	// checkpoints after `keys rotate --log` (BROKER_LOG_KEY_HANDOVER,
	// default 7d), so monitors have time to pin the new one.
	LogKeyHandover time.Duration
	// JWTPrepublish is how long a new JWT key sits in the JWKS before it
	// signs (BROKER_JWT_PREPUBLISH, default 10m): longer than the JWKS
	// max-age (300 s), so no cached key set misses a fresh token's key.
	JWTPrepublish time.Duration
}

// JWKSMaxAge is the Cache-Control max-age of /.well-known/jwks.json; the
// JWT prepublication period must be longer.
const JWKSMaxAge = 300 * time.Second

// Policy selects the policy directory (empty: the embedded policies).
type Policy struct{ Dir string }

// WhatsApp is the Cloud API side.
type WhatsApp struct {
	AppSecret     string
	VerifyToken   string
	AccessToken   string
	APIBase       string
	PhoneNumberID string
	CatalogID     string
	PaymentConfig string
	StoreName     string
	// PaymentLookup is BROKER_PAYMENT_LOOKUP, "on" or "off": confirm every
	// captured payment with the Cloud API's payment lookup before placing
	// the order (Meta: do not rely on the webhook alone). On in production,
	// where it cannot be turned off; off by default in development, whose
	// simulator answers it when turned on.
	PaymentLookup string
}

// Webhooks limits where partner webhooks may go (SPEC §3).
type Webhooks struct {
	// Allow is BROKER_WEBHOOK_ALLOW: CIDR prefixes, comma-separated, that
	// partner webhook URLs may reach although they are loopback, private or
	// link-local. Empty: only public addresses.
	Allow string
}

// Workers tunes the background work.
type Workers struct {
	RetentionInterval time.Duration
	Workers           int
	// NoticeDeadline is how long a partner has to acknowledge a recipient
	// notice (BROKER_NOTICE_DEADLINE, default 72h); NoticeRefresh how
	// often the overdue set the release pipeline checks is reloaded
	// (BROKER_NOTICE_REFRESH, default 10s; an acknowledgement reloads it
	// at once).
	NoticeDeadline time.Duration
	NoticeRefresh  time.Duration
	// ErasureWarning is how long before an erasure for inactivity the
	// shopper is warned (BROKER_ERASURE_WARNING, default and minimum 48h:
	// DPDP Rules 2025, Rule 8(2)).
	ErasureWarning time.Duration
	// OfferTTL is how long a candidate store has to take an order offer
	// (BROKER_OFFER_TTL; 0: commerce.DefaultOfferTTL, 60 s).
	OfferTTL time.Duration
}

// DefaultLocalDatabaseURL is the project-local cluster when scripts/pg.sh
// cannot be asked (a binary run outside a clone): its clusters made before
// ports were chosen per clone all listen on 55432.
const DefaultLocalDatabaseURL = "postgres://postgres@127.0.0.1:55432/sieve?sslmode=disable"

// LocalDatabaseURL is the URL of the project-local cluster of the clone
// around the working directory, as `scripts/pg.sh url` prints it: each
// clone's cluster has its own port, so none is assumed here. Outside a
// clone it is DefaultLocalDatabaseURL.
func LocalDatabaseURL() string {
	dir, err := os.Getwd()
	if err != nil {
		return DefaultLocalDatabaseURL
	}
	for {
		script := filepath.Join(dir, "scripts", "pg.sh")
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			// Only Sieve's own script: a scripts/pg.sh of another project
			// around the working directory is not run.
			if !strings.HasPrefix(string(mod), "module github.com/sieve-broker/sieve\n") {
				return DefaultLocalDatabaseURL
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, script, "url").Output()
			u := strings.TrimSpace(string(out))
			if err != nil || !strings.HasPrefix(u, "postgres://") || strings.ContainsAny(u, "\n ") {
				return DefaultLocalDatabaseURL
			}
			return u
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return DefaultLocalDatabaseURL
		}
		dir = parent
	}
}

// FromEnv reads the configuration from the environment; getenv is os.Getenv
// in production and a map in tests.
func FromEnv(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{
		Env:      getenv("BROKER_ENV"),
		Server:   Server{Addr: getenv("BROKER_ADDR"), Issuer: getenv("BROKER_ISSUER")},
		Database: Database{URL: getenv("DATABASE_URL"), ReadURL: getenv("BROKER_READ_DATABASE_URL")},
		Keys: Keys{Dir: getenv("BROKER_KEY_DIR"), TrustedCheckpoint: getenv("BROKER_TRUSTED_CHECKPOINT"),
			LogKeyHandover: durationOrInvalid(getenv("BROKER_LOG_KEY_HANDOVER")),
			JWTPrepublish:  durationOrInvalid(getenv("BROKER_JWT_PREPUBLISH"))},
		Policy: Policy{Dir: getenv("BROKER_POLICY_DIR")},
		WhatsApp: WhatsApp{
			AppSecret:     getenv("WHATSAPP_APP_SECRET"),
			VerifyToken:   getenv("WHATSAPP_VERIFY_TOKEN"),
			AccessToken:   getenv("WHATSAPP_ACCESS_TOKEN"),
			APIBase:       getenv("WHATSAPP_API_BASE"),
			PhoneNumberID: getenv("WHATSAPP_PHONE_NUMBER_ID"),
			CatalogID:     getenv("WHATSAPP_CATALOG_ID"),
			PaymentConfig: getenv("WHATSAPP_PAYMENT_CONFIG"),
			StoreName:     getenv("SIEVE_STORE_NAME"),
			PaymentLookup: getenv("BROKER_PAYMENT_LOOKUP"),
		},
	}
	p := parser{getenv: getenv, errs: &c.parseErrs}
	c.Server.PartnerRate = p.float("BROKER_PARTNER_RATE")
	c.Database.MaxConns = int32(p.int("BROKER_DB_MAX_CONNS", 1<<20))
	c.Server.ShutdownTimeout = p.duration("BROKER_SHUTDOWN_TIMEOUT")
	c.Workers.Workers = p.int("BROKER_WORKERS", 1<<20)
	c.Workers.RetentionInterval = p.duration("BROKER_RETENTION_INTERVAL")
	c.Workers.NoticeDeadline = p.duration("BROKER_NOTICE_DEADLINE")
	c.Workers.NoticeRefresh = p.duration("BROKER_NOTICE_REFRESH")
	c.Workers.ErasureWarning = p.duration("BROKER_ERASURE_WARNING")
	c.Workers.OfferTTL = p.duration("BROKER_OFFER_TTL")
	c.Keys.Rotation = durationOrInvalid(getenv("BROKER_KEY_ROTATION"))
	c.Keys.BackupRetention = durationOrInvalid(getenv("BROKER_BACKUP_RETENTION"))
	c.Webhooks.Allow = getenv("BROKER_WEBHOOK_ALLOW")
	c.Server.MetricsToken = getenv("BROKER_METRICS_TOKEN")
	c.Server.ReadTimeout = p.duration("BROKER_READ_TIMEOUT")
	c.Server.TrustedProxies = strings.FieldsFunc(getenv("BROKER_TRUSTED_PROXIES"), func(r rune) bool { return r == ',' || r == ' ' })
	c.Witness.PolicyFile = getenv("BROKER_WITNESS_POLICY")
	c.Desk.Contact = strings.TrimSpace(getenv("SIEVE_DPO_CONTACT"))
	c.Desk.AckWithin = durationOrInvalid(getenv("SIEVE_GRIEVANCE_ACK"))
	c.Desk.ResolveWithin = durationOrInvalid(getenv("SIEVE_GRIEVANCE_RESOLVE"))
	return c
}

// Production reports whether this is a production deployment.
func (c *Config) Production() bool { return c.Env == "production" }

// SetDefaults fills what is unset, with development values outside
// production (production gets no defaults for secrets).
func (c *Config) SetDefaults() {
	if c.Env == "" {
		c.Env = "development"
	}
	c.Server.SetDefaults()
	if c.Database.MaxConns == 0 {
		// Webhook ingest, partner reads, workers and the sequencer each
		// hold a connection per transaction; 4 (pgx's default on 2 cores)
		// queues them behind each other.
		c.Database.MaxConns = 32
	}
	if c.Database.URL == "" && !c.Production() {
		c.Database.URL = LocalDatabaseURL()
	}
	c.Keys.SetDefaults(c.Production())
	c.WhatsApp.SetDefaults(c.Production())
	if c.Workers.RetentionInterval == 0 {
		c.Workers.RetentionInterval = time.Hour
	}
	if c.Workers.Workers == 0 {
		c.Workers.Workers = 8
	}
	if c.Workers.NoticeDeadline == 0 {
		c.Workers.NoticeDeadline = 72 * time.Hour
	}
	if c.Workers.NoticeRefresh == 0 {
		c.Workers.NoticeRefresh = 10 * time.Second
	}
	if c.Workers.ErasureWarning == 0 {
		c.Workers.ErasureWarning = 48 * time.Hour
	}
	if c.Desk.Contact == "" && !c.Production() {
		c.Desk.Contact = commerce.DefaultDPOContact
	}
	if c.Desk.AckWithin == 0 {
		c.Desk.AckWithin = commerce.MaxGrievanceAck
	}
	if c.Desk.ResolveWithin == 0 {
		c.Desk.ResolveWithin = commerce.MaxGrievanceResolve
	}
}

// SetDefaults fills the server section.
func (s *Server) SetDefaults() {
	if s.Addr == "" {
		s.Addr = "127.0.0.1:8080"
	}
	if s.Issuer == "" {
		s.Issuer = "http://" + s.Addr
	}
	s.Issuer = strings.TrimRight(s.Issuer, "/")
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = 8 * time.Second
	}
	if s.PartnerRate == 0 {
		s.PartnerRate = 200
	}
}

// SetDefaults fills the key section.
func (k *Keys) SetDefaults(production bool) {
	if k.Dir == "" && !production {
		k.Dir = filepath.Join(".data", "keys")
	}
	k.Create = !production
	if k.Rotation == 0 {
		k.Rotation = seal.DefaultKeyRotation
	}
	if k.BackupRetention == 0 {
		k.BackupRetention = seal.DefaultBackupRetention
	}
	if k.TrustedCheckpoint == "" && k.Dir != "" {
		k.TrustedCheckpoint = filepath.Join(k.Dir, "trusted-checkpoint")
	}
	if k.LogKeyHandover == 0 {
		k.LogKeyHandover = 7 * 24 * time.Hour
	}
	if k.JWTPrepublish == 0 {
		k.JWTPrepublish = 2 * JWKSMaxAge
	}
}

// durationOrInvalid parses "<N>d" (days) or a Go duration ("36h"); unset
// is 0 (the default), and anything unparsable or not positive is -1, which
// Validate reports.
func durationOrInvalid(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return -1
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if p, err := time.ParseDuration(v); err == nil {
		d = p
	}
	if d <= 0 {
		return -1
	}
	return d
}

// SetDefaults fills the WhatsApp section with the simulator's values in
// development.
func (w *WhatsApp) SetDefaults(production bool) {
	if w.PaymentConfig == "" {
		w.PaymentConfig = "sieve-razorpay"
	}
	if w.StoreName == "" {
		w.StoreName = "Sieve Fresh"
	}
	if w.PaymentLookup == "" {
		w.PaymentLookup = "off"
		if production {
			w.PaymentLookup = "on"
		}
	}
	if production {
		return
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&w.AppSecret, whatsapp.DevAppSecret)
	def(&w.VerifyToken, whatsapp.DevVerifyToken)
	def(&w.AccessToken, whatsapp.DevAccessToken)
	def(&w.APIBase, whatsapp.DevAPIBase)
	def(&w.PhoneNumberID, whatsapp.DevPhoneNumberID)
	def(&w.CatalogID, whatsapp.DevCatalogID)
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, e := range c.parseErrs {
		if !isDatabaseVar(e) { // databaseProblems reports those
			add("%s", e)
		}
	}
	if c.Env != "production" && c.Env != "development" {
		add("BROKER_ENV must be production or development, not %q", c.Env)
	}
	if c := c.Desk.Contact; len([]rune(c)) > 120 || strings.ContainsAny(c, "\n\r") {
		add("SIEVE_DPO_CONTACT must be one line of at most 120 characters")
	}
	if _, port, err := net.SplitHostPort(c.Server.Addr); err != nil || port == "" {
		add("BROKER_ADDR must be host:port, not %q", c.Server.Addr)
	}
	if u, err := url.Parse(c.Server.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("BROKER_ISSUER must be an http(s) URL, not %q", c.Server.Issuer)
	} else if c.Production() && u.Scheme != "https" {
		add("BROKER_ISSUER must be https in production")
	}
	for _, v := range c.Server.TrustedProxies {
		if _, ok := parseProxy(v); !ok {
			add("BROKER_TRUSTED_PROXIES must list CIDRs or addresses, not %q", v)
		}
	}
	if c.Server.PartnerRate < 0 {
		add("BROKER_PARTNER_RATE must be a positive number of requests per second")
	}
	if c.Server.ReadTimeout < 0 || c.Server.ReadTimeout > 5*time.Minute {
		add("BROKER_READ_TIMEOUT must be a positive duration up to 5m")
	}
	if t := c.Server.MetricsToken; t != "" && (len(t) < 16 || strings.ContainsAny(t, " \t\r\n")) {
		add("BROKER_METRICS_TOKEN must be at least 16 characters without spaces")
	}
	if c.Server.ShutdownTimeout < 0 || c.Server.ShutdownTimeout > 10*time.Second {
		add("BROKER_SHUTDOWN_TIMEOUT must be a duration up to 10s")
	}
	errs = append(errs, c.databaseProblems()...)
	if c.Database.ReadURL != "" {
		if u, err := url.Parse(c.Database.ReadURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("BROKER_READ_DATABASE_URL must be a postgres:// URL")
		}
	}
	if c.Keys.Dir == "" {
		add("BROKER_KEY_DIR is required in production")
	}
	if c.Keys.LogKeyHandover < 0 {
		add("BROKER_LOG_KEY_HANDOVER must be a positive duration (e.g. 7d or 72h)")
	}
	if c.Keys.JWTPrepublish < 0 {
		add("BROKER_JWT_PREPUBLISH must be a positive duration (e.g. 10m)")
	} else if c.Production() && c.Keys.JWTPrepublish <= JWKSMaxAge {
		add("BROKER_JWT_PREPUBLISH must be longer than the JWKS max-age (%s) in production", JWKSMaxAge)
	}
	if c.Policy.Dir != "" {
		if st, err := os.Stat(c.Policy.Dir); err != nil || !st.IsDir() {
			add("BROKER_POLICY_DIR %q is not a directory", c.Policy.Dir)
		}
	}
	w := c.WhatsApp
	for _, f := range []struct{ name, v string }{{"WHATSAPP_APP_SECRET", w.AppSecret},
		{"WHATSAPP_VERIFY_TOKEN", w.VerifyToken}, {"WHATSAPP_ACCESS_TOKEN", w.AccessToken},
		{"WHATSAPP_API_BASE", w.APIBase}, {"WHATSAPP_PHONE_NUMBER_ID", w.PhoneNumberID}} {
		if f.v == "" {
			add("%s is required in production", f.name)
		}
	}
	if c.Production() && (w.AppSecret == whatsapp.DevAppSecret || w.AccessToken == whatsapp.DevAccessToken ||
		w.VerifyToken == whatsapp.DevVerifyToken) {
		add("the development WhatsApp secrets must not be used in production")
	}
	if w.APIBase != "" {
		if u, err := url.Parse(w.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("WHATSAPP_API_BASE must be an http(s) URL, not %q", w.APIBase)
		}
	}
	switch {
	case w.PaymentLookup != "on" && w.PaymentLookup != "off":
		add("BROKER_PAYMENT_LOOKUP must be on or off, not %q", w.PaymentLookup)
	case w.PaymentLookup == "off" && c.Production():
		add("BROKER_PAYMENT_LOOKUP must be on in production: a payment webhook alone does not place an order")
	}
	if w.PhoneNumberID != "" && strings.Trim(w.PhoneNumberID, "0123456789") != "" {
		add("WHATSAPP_PHONE_NUMBER_ID must be digits")
	}
	if _, err := partnerhook.ParseAllow(c.Webhooks.Allow); err != nil {
		add("BROKER_WEBHOOK_ALLOW: %v", err)
	}
	if c.Workers.Workers < 0 || c.Workers.Workers > 64 {
		add("BROKER_WORKERS must be 1 to 64")
	}
	if c.Keys.Rotation < 0 {
		add("BROKER_KEY_ROTATION must be a positive duration such as 7d or 36h")
	}
	if c.Keys.BackupRetention < 0 {
		add("BROKER_BACKUP_RETENTION must be a positive duration such as 30d")
	}
	if c.Workers.RetentionInterval < 0 {
		add("BROKER_RETENTION_INTERVAL must be a positive duration")
	}
	if c.Workers.NoticeDeadline < 0 || c.Workers.NoticeRefresh < 0 {
		add("BROKER_NOTICE_DEADLINE and BROKER_NOTICE_REFRESH must be positive durations")
	}
	if c.Workers.OfferTTL < 0 {
		add("BROKER_OFFER_TTL must be a positive duration")
	}
	if c.Workers.ErasureWarning != 0 && c.Workers.ErasureWarning < 48*time.Hour {
		add("BROKER_ERASURE_WARNING must be at least 48h (DPDP Rules 2025, Rule 8(2))")
	}
	if c.Desk.Contact == "" {
		add("SIEVE_DPO_CONTACT is required in production: every notice and rights answer names it")
	}
	if c.Desk.AckWithin < 0 || c.Desk.AckWithin > commerce.MaxGrievanceAck {
		add("SIEVE_GRIEVANCE_ACK must be a positive duration of at most 48h (Consumer Protection (E-Commerce) Rules 2020)")
	}
	if c.Desk.ResolveWithin < 0 || c.Desk.ResolveWithin > commerce.MaxGrievanceResolve {
		add("SIEVE_GRIEVANCE_RESOLVE must be a positive duration of at most 30d (Consumer Protection (E-Commerce) Rules 2020)")
	}
	return joinProblems(errs)
}

// ValidateDatabase reports the problems of the database section alone, for
// tools that open nothing else (`brokerctl migrate` runs in production
// before keys or WhatsApp secrets exist).
func (c *Config) ValidateDatabase() error {
	return joinProblems(c.databaseProblems())
}

func (c *Config) databaseProblems() []error {
	var errs []error
	for _, e := range c.parseErrs {
		if isDatabaseVar(e) {
			errs = append(errs, errors.New(e))
		}
	}
	if c.Database.URL != "" {
		if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("DATABASE_URL must be a postgres:// URL"))
		}
	} else {
		errs = append(errs, errors.New("DATABASE_URL is required (make run and make test set it for the local cluster)"))
	}
	if c.Database.MaxConns < 0 || c.Database.MaxConns > 10000 {
		errs = append(errs, errors.New("BROKER_DB_MAX_CONNS must be 1 to 10000"))
	}
	return errs
}

// isDatabaseVar reports whether a parse problem is the database section's.
func isDatabaseVar(problem string) bool {
	return strings.HasPrefix(problem, "BROKER_DB_") || strings.HasPrefix(problem, "DATABASE_URL")
}

func joinProblems(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New("invalid configuration: " + strings.Join(msgs, "; "))
}

// WebhookGuard is the address guard of partner webhooks: the allow list,
// and https only in production. Call it on a validated configuration.
func (c *Config) WebhookGuard() *partnerhook.Guard {
	allow, _ := partnerhook.ParseAllow(c.Webhooks.Allow)
	return &partnerhook.Guard{Allow: allow, HTTPSOnly: c.Production()}
}

// parser reads typed environment variables. A value that does not parse is
// recorded (by name, never by value: a mistyped secret could land in the
// wrong variable) and leaves the zero value, which SetDefaults fills, so
// Validate can report it with every other problem.
type parser struct {
	getenv func(string) string
	errs   *[]string
}

func (p parser) fail(name, want string) {
	*p.errs = append(*p.errs, name+" must be "+want)
}

// int parses a base-10 integer within ±limit.
func (p parser) int(name string, limit int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > limit || n < -limit {
		p.fail(name, "a whole number")
		return 0
	}
	return n
}

// float parses a finite decimal number.
func (p parser) float(name string) float64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(name, "a number")
		return 0
	}
	return f
}

// duration parses a Go duration ("90s", "1h"). An explicit zero is
// returned as -1, which Validate's range checks reject, since zero means
// "unset" to SetDefaults.
func (p parser) duration(name string) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(name, `a duration such as "30s" or "1h"`)
		return 0
	}
	if d == 0 {
		return -1
	}
	return d
}

// TrustedProxyPrefixes parses TrustedProxies (a bare address is a
// single-address prefix); entries that do not parse are left out, and
// Validate reports them.
func (s *Server) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, v := range s.TrustedProxies {
		if p, ok := parseProxy(v); ok {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(v string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}
