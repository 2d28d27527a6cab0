// Package config reads the broker's configuration from the environment
// (SPEC §3). Each section sets its defaults and validates itself; Validate
// reports every problem at once, so a bad deployment fails with one clear
// message instead of one problem per restart.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	Witness  Witness
}

// Witness configures the cosigning of audit checkpoints (SPEC §6).
type Witness struct {
	// PolicyFile is the witness policy (BROKER_WITNESS_POLICY): `witness
	// NAME VKEY URL` lines and `quorum N`; empty means no cosigning.
	PolicyFile string
}

// Server is the HTTP side.
type Server struct {
	Addr            string
	Issuer          string
	ShutdownTimeout time.Duration
	// PartnerRate is each partner's sustained request rate per process
	// (BROKER_PARTNER_RATE, requests/s); bursts of twice that pass.
	PartnerRate float64
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
}

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
}

// Workers tunes the background work.
type Workers struct {
	RetentionInterval time.Duration
	Workers           int
}

// LocalDatabaseURL is the project-local cluster that scripts/pg.sh starts.
const LocalDatabaseURL = "postgres://postgres@127.0.0.1:55432/sieve?sslmode=disable"

// FromEnv reads the configuration from the environment; getenv is os.Getenv
// in production and a map in tests.
func FromEnv(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{
		Env: getenv("BROKER_ENV"),
		Server: Server{Addr: getenv("BROKER_ADDR"), Issuer: getenv("BROKER_ISSUER"),
			PartnerRate: float64(atoiOr(getenv("BROKER_PARTNER_RATE"), 0))},
		Database: Database{URL: getenv("DATABASE_URL"), MaxConns: int32(atoiOr(getenv("BROKER_DB_MAX_CONNS"), 0)),
			ReadURL: getenv("BROKER_READ_DATABASE_URL")},
		Keys:   Keys{Dir: getenv("BROKER_KEY_DIR")},
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
		},
	}
	if v := getenv("BROKER_SHUTDOWN_TIMEOUT"); v != "" {
		c.Server.ShutdownTimeout, _ = time.ParseDuration(v)
		if c.Server.ShutdownTimeout == 0 {
			c.Server.ShutdownTimeout = -1 // reported by Validate
		}
	}
	c.Workers.Workers = atoiOr(getenv("BROKER_WORKERS"), 0)
	c.Witness.PolicyFile = getenv("BROKER_WITNESS_POLICY")
	if v := getenv("BROKER_RETENTION_INTERVAL"); v != "" {
		c.Workers.RetentionInterval, _ = time.ParseDuration(v)
		if c.Workers.RetentionInterval == 0 {
			c.Workers.RetentionInterval = -1
		}
	}
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
		c.Database.URL = LocalDatabaseURL
	}
	c.Keys.SetDefaults(c.Production())
	c.WhatsApp.SetDefaults(c.Production())
	if c.Workers.RetentionInterval == 0 {
		c.Workers.RetentionInterval = time.Hour
	}
	if c.Workers.Workers == 0 {
		c.Workers.Workers = 8
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
	if c.Env != "production" && c.Env != "development" {
		add("BROKER_ENV must be production or development, not %q", c.Env)
	}
	if _, port, err := net.SplitHostPort(c.Server.Addr); err != nil || port == "" {
		add("BROKER_ADDR must be host:port, not %q", c.Server.Addr)
	}
	if u, err := url.Parse(c.Server.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("BROKER_ISSUER must be an http(s) URL, not %q", c.Server.Issuer)
	} else if c.Production() && u.Scheme != "https" {
		add("BROKER_ISSUER must be https in production")
	}
	if c.Server.PartnerRate < 0 {
		add("BROKER_PARTNER_RATE must be a positive number of requests per second")
	}
	if c.Server.ShutdownTimeout < 0 || c.Server.ShutdownTimeout > 10*time.Second {
		add("BROKER_SHUTDOWN_TIMEOUT must be a duration up to 10s")
	}
	if c.Database.URL != "" {
		if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("DATABASE_URL must be a postgres:// URL")
		}
	} else {
		add("DATABASE_URL is required (make run and make test set it for the local cluster)")
	}
	if c.Database.ReadURL != "" {
		if u, err := url.Parse(c.Database.ReadURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("BROKER_READ_DATABASE_URL must be a postgres:// URL")
		}
	}
	if c.Keys.Dir == "" {
		add("BROKER_KEY_DIR is required in production")
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
	if w.PhoneNumberID != "" && strings.Trim(w.PhoneNumberID, "0123456789") != "" {
		add("WHATSAPP_PHONE_NUMBER_ID must be digits")
	}
	if c.Workers.Workers < 0 || c.Workers.Workers > 64 {
		add("BROKER_WORKERS must be 1 to 64")
	}
	if c.Workers.RetentionInterval < 0 {
		add("BROKER_RETENTION_INTERVAL must be a positive duration")
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New("invalid configuration: " + strings.Join(msgs, "; "))
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}
