// Package wire builds the broker from its configuration: the one place
// (with cmd/) that knows every concrete adapter. brokerd, brokerctl and
// the integration tests all assemble the system through it.
package wire

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/seal"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/httpapi/ui"
	"github.com/sieve-broker/sieve/commerce/partnerhook"
	cpg "github.com/sieve-broker/sieve/commerce/postgres"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
	"github.com/sieve-broker/sieve/policies"
)

// System is the assembled broker.
type System struct {
	Config config.Config
	Log    *slog.Logger
	DB     *postgres.DB
	// Stores are the shop's SQL on DB, joining its transactions: one
	// narrow store per commerce port.
	Stores *cpg.Stores
	// Replica, when configured, is a streaming replica that serves the
	// audit reads of the dashboard and the compliance API; see ReadDB.
	Replica  *postgres.DB
	AgeKeys  *seal.Keyring
	Sealer   *seal.Sealer
	SignKeys *token.Keyring
	// LogKeys sign the audit log's checkpoints, apart from the JWT keys.
	LogKeys  *keydir.Ring
	Issuer   *token.Issuer
	Tokens   *token.Server
	Policy   *policies.Engine
	Pseudo   *broker.Pseudonymizer
	Releaser *broker.Releaser
	// Shop is the shop with its desks, as commerce.New built it: its
	// Service, Market, Orders, Rights, Notices, Holds, Warnings, Desk,
	// Breaches (the workbench), Nominees and Retention are the system's.
	// A value, not a pointer: a system opened without the shop (brokerctl
	// commands that need only the database) has them all nil.
	commerce.Shop
	WAClient *whatsapp.Client
	Receiver *whatsapp.Receiver
	Origin   string // the audit checkpoint origin (the issuer without its scheme)
	auditUI  *ui.UI // the dashboard, whose witness RunAuditWitness drives
	// Witnesses is the witness policy (BROKER_WITNESS_POLICY); nil when
	// checkpoints are not cosigned.
	Witnesses *audit.Policy

	// notices is the privacy notice per language.
	notices *noticeBook
}

// Open assembles the system. It connects to the database but does not
// migrate and starts no background work.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*System, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &System{Config: cfg, Log: log, Origin: audit.OriginFromIssuer(cfg.Server.Issuer)}
	var err error
	if s.DB, err = postgres.Open(ctx, cfg.Database.URL, postgres.Options{MaxConns: cfg.Database.MaxConns, AppName: "sieve"}); err != nil {
		return nil, err
	}
	s.Stores = cpg.New(s.DB)
	fail := func(err error) (*System, error) {
		s.Close()
		return nil, err
	}
	if cfg.Database.ReadURL != "" {
		if s.Replica, err = postgres.Open(ctx, cfg.Database.ReadURL, postgres.Options{MaxConns: 8, AppName: "sieve-read"}); err != nil {
			return fail(fmt.Errorf("read replica: %w", err))
		}
	}
	if cfg.Keys.Create {
		if err := os.MkdirAll(cfg.Keys.Dir, 0o700); err != nil {
			return fail(fmt.Errorf("key directory: %w", err))
		}
	}
	if s.AgeKeys, err = seal.LoadKeyring(cfg.Keys.Dir, cfg.Keys.Create); err != nil {
		return fail(err)
	}
	if s.Sealer, err = seal.NewSealer(s.AgeKeys, s.DB.SubjectKeys(), seal.Options{}); err != nil {
		return fail(err)
	}
	// The log keys first: on an existing deployment they adopt the JWT
	// signing key, which must not be created fresh before that.
	if s.LogKeys, err = LoadLogKeys(cfg.Keys.Dir, cfg.Keys.Create); err != nil {
		return fail(err)
	}
	if s.SignKeys, err = token.LoadKeyring(cfg.Keys.Dir, cfg.Keys.Create); err != nil {
		return fail(err)
	}
	if cfg.Witness.PolicyFile != "" {
		if s.Witnesses, err = audit.LoadPolicy(cfg.Witness.PolicyFile); err != nil {
			return fail(err)
		}
	}
	s.Issuer = token.NewIssuer(s.SignKeys, cfg.Server.Issuer, 10*time.Minute)
	s.Tokens = token.NewServer(s.DB.Partners(), s.Issuer)
	key, err := keydir.PseudonymKey(cfg.Keys.Dir, cfg.Keys.Create)
	if err != nil {
		return fail(err)
	}
	if s.Pseudo, err = broker.NewPseudonymizer(key); err != nil {
		return fail(err)
	}
	if cfg.Policy.Dir != "" {
		s.Policy, err = policies.Load(ctx, cfg.Policy.Dir)
	} else {
		s.Policy, err = policies.Default(ctx)
	}
	if err != nil {
		return fail(fmt.Errorf("policy: %w", err))
	}
	if s.notices, err = newNoticeBook(s.Policy, cfg.Desk.Contact, cfg.Server.Issuer); err != nil {
		return fail(fmt.Errorf("privacy notice: %w", err))
	}
	s.Releaser = broker.NewReleaser(s.Policy, s.Pseudo, s.DB.Audit())
	s.WAClient = whatsapp.NewClient(cfg.WhatsApp.APIBase, cfg.WhatsApp.AccessToken)
	st := s.Stores
	var held map[string]time.Duration
	if r, ok := s.Policy.Data().Retention["invoice"]; ok && r.Hold {
		held = map[string]time.Duration{commerce.KeyInvoice: r.LegalMinimum()}
	}
	var payments commerce.PaymentLookup
	if cfg.WhatsApp.PaymentLookup == "on" {
		payments = &whatsapp.PaymentLookup{Client: s.WAClient, ConfigName: cfg.WhatsApp.PaymentConfig}
	}
	shop, err := commerce.New(commerce.Deps{
		Stores: st.Ports(),
		Clients: commerce.Clients{
			// A data key per shopper and category (contact, fulfilment,
			// invoice), so an erasure can hold some and shred others.
			Sealer:   seal.NewCategorySealer(s.Sealer),
			Vault:    s.Sealer,
			Releaser: s.Releaser,
			Partners: s.DB.Partners(),
			Sender: &whatsapp.Sender{Client: s.WAClient, CatalogID: cfg.WhatsApp.CatalogID,
				PaymentConfig: cfg.WhatsApp.PaymentConfig},
			Hooks:    partnerhook.New(s.DB.Partners(), s.Sealer, cfg.WebhookGuard(), 10*time.Second),
			Payments: payments,
			Conv: &commerce.Conversation{StoreName: cfg.WhatsApp.StoreName, Notices: s.notices,
				Contact: cfg.Desk.Contact},
			Log: log},
		OfferTTL:         cfg.Workers.OfferTTL,
		NoticeDeadline:   cfg.Workers.NoticeDeadline,
		Held:             held,
		Contact:          cfg.Desk.Contact,
		AckWithin:        cfg.Desk.AckWithin,
		ResolveWithin:    cfg.Desk.ResolveWithin,
		PhoneNumberID:    cfg.WhatsApp.PhoneNumberID,
		VerifyLog:        s.verifiedSize,
		Categorize:       s.Policy.Data().CategoryOf,
		CategoryNames:    s.Policy.Data().CategoryNames(),
		RetentionPeriods: s.Policy.Data().RetentionPeriods(),
		RetentionBases:   s.Policy.Data().RetentionBases(),
		ErasureWarning:   cfg.Workers.ErasureWarning,
	})
	if err != nil {
		return fail(err)
	}
	s.Shop = *shop
	s.Receiver = &whatsapp.Receiver{AppSecret: []byte(cfg.WhatsApp.AppSecret), VerifyTok: cfg.WhatsApp.VerifyToken,
		Ingest: s.Service, Log: log}
	return s, nil
}

// Migrate applies the schema migrations, then the one-time conversions
// that need the keys: provider ids stored in plaintext before migration
// 0010 become keyed hashes (SPEC §5.8). brokerd and brokerctl migrate both
// call it; each conversion runs once.
func (s *System) Migrate(ctx context.Context) ([]string, error) {
	applied, err := s.DB.Migrate(ctx)
	if err != nil {
		return applied, err
	}
	n, err := s.Stores.Inbox.UpgradeProviderIDs(ctx, s.Pseudo.ProviderKey, s.Service.ResealInbox)
	if err != nil {
		return applied, fmt.Errorf("converting stored provider ids to keyed hashes: %w", err)
	}
	if n > 0 {
		s.Log.Info("provider ids converted to keyed hashes", "count", n)
	}
	return applied, nil
}

// ReadDB is where audit reads that tolerate replication lag go: the
// replica when one is configured, else the primary. Reads that feed a
// release (orders, consent, keys) never come from here: an erasure or a
// withdrawn consent must not be answered from stale data.
func (s *System) ReadDB() *postgres.DB {
	if s.Replica != nil {
		return s.Replica
	}
	return s.DB
}

// Close releases what Open acquired.
func (s *System) Close() {
	if s.Replica != nil {
		s.Replica.Close()
	}
	if s.Sealer != nil {
		s.Sealer.Close()
	}
	if s.DB != nil {
		s.DB.Close()
	}
}
