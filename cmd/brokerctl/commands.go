package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/seal"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
	"github.com/sieve-broker/sieve/commerce"
	cpg "github.com/sieve-broker/sieve/commerce/postgres"
)

func init() {
	register("migrate", "migrate", cmdMigrate)
	register("keys init", "keys init [--pq]", cmdKeysInit)
	register("keys rotate", "keys rotate [--pq] [--signing-only|--age-only|--log]", cmdKeysRotate)
	register("keys retire", "keys retire KEY_ID [--log|--jwt]   (an age identity no data key uses any more, a previous JWT signing key, or a previous log key)", cmdKeysRetire)
	register("partner create", `partner create --name N --kind retailer|logistics|payments|analytics|compliance --scopes "a b c" [--store PHONE_NUMBER_ID] [--courier CLIENT_ID] [--webhook URL] [--role R --agreement REF --agreement-expires YYYY-MM-DD --jurisdiction CC --transfer-basis B] [--serves "560001 …"] [--location LAT,LON --radius-km R] [--self-delivery] [--auto-accept] [--ack-key BASE64] [--json]`, cmdPartnerCreate)
	register("partner list", "partner list [--json]", cmdPartnerList)
	register("partner disable", "partner disable CLIENT_ID", cmdPartnerDisable)
	register("partner enable", "partner enable CLIENT_ID", cmdPartnerEnable)
	register("partner courier", "partner courier RETAILER_ID --courier CLIENT_ID|--none", cmdPartnerCourier)
	register("partner rotate-secret", "partner rotate-secret CLIENT_ID [--revoke-tokens] [--json]", cmdPartnerRotate)
	register("catalog import", "catalog import FILE | --demo", cmdCatalogImport)
	register("catalog list", "catalog list [--json]", cmdCatalogList)
	register("subject export", "subject export --wa-id N | --user-id BSUID", cmdSubjectExport)
	register("subject erase", "subject erase --wa-id N | --user-id BSUID [--reason request|withdrawal|objection|retention|legal_order|unlawful]", cmdSubjectErase)
	register("report processing", "report processing [--json]", cmdReportProcessing)
	register("demo seed", "demo seed [--credentials FILE] [--market]", cmdDemoSeed)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdMigrate(ctx context.Context, c *cli, args []string) error {
	if err := parse(flags("migrate"), args); err != nil {
		return err
	}
	// The database alone: migrating needs no key, so it works in
	// production before `keys init`.
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	// The schema only: the one-time conversion of stored provider ids to
	// keyed hashes needs the pseudonym key and runs when brokerd starts.
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "migrations: up to date")
	}
	for _, a := range applied {
		fmt.Fprintln(c.stdout, "applied", a)
	}
	return nil
}

func cmdKeysInit(ctx context.Context, c *cli, args []string) error {
	fs := flags("keys init")
	pq := fs.Bool("pq", false, "use age's hybrid post-quantum identity")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := c.cfg.Keys.Dir
	if dir == "" {
		return fmt.Errorf("BROKER_KEY_DIR is required")
	}
	if err := c.guardKeyCreation(ctx, true); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kr, created, err := seal.InitKeyring(dir, *pq)
	if err != nil {
		return err
	}
	// The log key first: on an existing deployment it adopts the JWT
	// signing key (see wire.LoadLogKeys).
	lk, err := wire.LoadLogKeys(dir, true)
	if err != nil {
		return err
	}
	sk, err := token.LoadKeyring(dir, true)
	if err != nil {
		return err
	}
	if _, err := keydir.PseudonymKey(dir, true); err != nil {
		return err
	}
	kid, _ := sk.Current()
	state := "existing"
	if created {
		state = "created"
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	fmt.Fprintf(c.stdout, "keys in %s: age identity %s (%s), signing key %s, log key %s, pseudonym key\n", dir, kr.Current(), state, kid, lk.Current().ID)
	return nil
}

// progress prints a progress bar on stderr.
func progress(w io.Writer, label string) func(done, total int64) {
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		const width = 30
		n := int(done * width / total)
		fmt.Fprintf(w, "\r%s [%s%s] %3d%% %d/%d", label, strings.Repeat("#", n), strings.Repeat(" ", width-n),
			done*100/total, done, total)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

func cmdKeysRotate(ctx context.Context, c *cli, args []string) error {
	fs := flags("keys rotate")
	pq := fs.Bool("pq", false, "new age identity is post-quantum hybrid")
	signingOnly := fs.Bool("signing-only", false, "rotate only the JWT signing key")
	ageOnly := fs.Bool("age-only", false, "rotate only the age identity (and re-wrap data keys)")
	logKey := fs.Bool("log", false, "rotate only the audit log's checkpoint key (a handover: both keys sign for BROKER_LOG_KEY_HANDOVER)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if n := btoi(*signingOnly) + btoi(*ageOnly) + btoi(*logKey); n > 1 {
		return usageError{"--signing-only, --age-only and --log exclude each other"}
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	if *logKey {
		return rotateLogKey(ctx, c, sys)
	}
	if !*ageOnly {
		// Published ahead (BROKER_JWT_PREPUBLISH, longer than the JWKS
		// max-age): no client's cached JWKS misses a fresh token's key.
		kid, at, err := sys.SignKeys.RotateAfter(c.cfg.Keys.JWTPrepublish)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "signing key rotated: %s is in the JWKS now and signs from %s; the previous key stays in the JWKS until retired\n",
			kid, at.Format(time.RFC3339))
	}
	if !*signingOnly {
		// The same schedule brokerd runs, forced: rotate now, re-wrap, and
		// retire what BROKER_BACKUP_RETENTION has released, under the lock
		// that keeps a brokerd from doing it at the same time.
		rot := sys.KeyRotation()
		rot.PostQuantum = *pq
		rot.Progress = progress(c.stderr, "re-wrap")
		res, err := rot.Run(ctx, true)
		if err != nil {
			return err
		}
		if res.Skipped {
			return fmt.Errorf("another process (a brokerd) is rotating the age keys right now; try again in a minute")
		}
		fmt.Fprintf(c.stdout, "age identity rotated: %s is current; %d data keys re-wrapped\n", res.Rotated, res.Rewrapped)
		for _, id := range res.Retired {
			fmt.Fprintf(c.stdout, "age identity %s retired (superseded more than BROKER_BACKUP_RETENTION ago)\n", id)
		}
		counts, err := sys.DB.SubjectKeys().CountSubjectKeys(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "data keys by identity: %v (sealed records untouched)\n", counts)
	}
	return nil
}

func cmdPartnerCreate(ctx context.Context, c *cli, args []string) error {
	fs := flags("partner create")
	name := fs.String("name", "", "partner name")
	kind := fs.String("kind", "", "retailer|logistics|payments|analytics|compliance")
	scopes := fs.String("scopes", "", "space-separated scopes")
	store := fs.String("store", "", "WhatsApp phone-number id whose orders a retailer receives")
	webhook := fs.String("webhook", "", "order webhook URL")
	courier := fs.String("courier", "", "retailers: the logistics partner (client id) its orders go to when not dispatched")
	ackKeyB64 := fs.String("ack-key", "", "Ed25519 public key (base64, 32 bytes) that must sign the partner's acknowledgements")
	asJSON := fs.Bool("json", false, "print JSON")
	reg := addRegistryFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	ackKey, err := parseAckKey(*ackKeyB64)
	if err != nil {
		return err
	}
	if *name == "" || *kind == "" {
		return usageError{"--name and --kind are required"}
	}
	change, changed, err := reg.change(broker.PartyKind(*kind))
	if err != nil {
		return err
	}
	var actor broker.Party
	if len(changed) > 0 {
		if actor, err = c.actor(); err != nil {
			return err
		}
	}
	if *courier != "" && broker.PartyKind(*kind) != broker.KindRetailer {
		return usageError{"--courier is for retailers"}
	}
	sc, err := broker.ParseScopes(*scopes)
	if err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	if err := checkWebhook(ctx, c, *webhook); err != nil {
		return err
	}
	var id, secret string
	// The partner and its default courier are one change: a bad courier
	// leaves no half-made retailer behind.
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		var err error
		id, secret, err = token.CreatePartner(ctx, sys.DB.Partners(), sys.Sealer, token.PartnerSpec{Name: *name,
			Kind: broker.PartyKind(*kind), Scopes: sc, Store: *store, WebhookURL: *webhook})
		if err != nil {
			return err
		}
		if ackKey != nil {
			if err := sys.Stores.Notices.SetPartnerAckKey(ctx, id, ackKey); err != nil {
				return err
			}
		}
		if err := applyRegistry(ctx, sys.DB, sys.Releaser.Audit(), actor, id, change, changed); err != nil {
			return err
		}
		if *courier == "" {
			return nil
		}
		return sys.DB.Partners().SetDefaultCourier(ctx, id, *courier)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]string{"client_id": id, "client_secret": secret})
	}
	fmt.Fprintf(c.stdout, "client_id: %s\nclient_secret: %s\n(the secret is shown once)\n", id, secret)
	return nil
}

// checkWebhook refuses a webhook URL that would reach a loopback, private
// or link-local address not named in BROKER_WEBHOOK_ALLOW, or an http URL
// in production (SPEC §3). The broker checks again at every delivery.
func checkWebhook(ctx context.Context, c *cli, url string) error {
	if url == "" {
		return nil
	}
	if err := c.cfg.WebhookGuard().CheckURL(ctx, url); err != nil {
		return broker.Errorf(broker.EInvalid, "invalid partner: %v", err)
	}
	return nil
}

func cmdPartnerList(ctx context.Context, c *cli, args []string) error {
	fs := flags("partner list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	ps, err := db.Partners().ListPartners(ctx)
	if err != nil {
		return err
	}
	type row struct {
		ClientID  string    `json:"client_id"`
		Name      string    `json:"name"`
		Kind      string    `json:"kind"`
		Scopes    []string  `json:"scopes"`
		Store     string    `json:"store,omitempty"`
		Webhook   string    `json:"webhook,omitempty"`
		Disabled  bool      `json:"disabled"`
		CreatedAt time.Time `json:"created_at"`
		// The legal registry ("legacy" role: registered before it) and
		// the service area.
		Role             string   `json:"role"`
		Agreement        string   `json:"agreement,omitempty"`
		AgreementExpires string   `json:"agreement_expires,omitempty"`
		Jurisdiction     string   `json:"jurisdiction,omitempty"`
		TransferBasis    string   `json:"transfer_basis,omitempty"`
		Serves           []string `json:"serves,omitempty"`
		Location         string   `json:"location,omitempty"`
		RadiusKm         float64  `json:"radius_km,omitempty"`
		SelfDelivery     bool     `json:"self_delivery,omitempty"`
		AutoAccept       bool     `json:"auto_accept,omitempty"`
	}
	rows := make([]row, 0, len(ps))
	for _, p := range ps {
		r := row{ClientID: p.ID, Name: p.Name, Kind: string(p.Kind), Scopes: p.Scopes, Store: p.Store, Webhook: p.WebhookURL,
			Disabled: p.Disabled, CreatedAt: p.CreatedAt, Agreement: p.Legal.Agreement, AgreementExpires: p.Legal.AgreementExpires,
			Jurisdiction: p.Legal.Jurisdiction, TransferBasis: p.Legal.TransferBasis, Serves: p.Area.Serves,
			RadiusKm: p.Area.RadiusKm, SelfDelivery: p.Area.SelfDelivery, AutoAccept: p.Area.AutoAccept}
		r.Role, _ = legalSummary(p)
		if p.Area.HasLocation {
			r.Location = fmt.Sprintf("%g,%g", p.Area.Lat, p.Area.Lon)
		}
		rows = append(rows, r)
	}
	if *asJSON {
		return printJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tKIND\tSCOPES\tSTORE\tDISABLED\tROLE\tAGREEMENT\tJURISDICTION\tBASIS\tAREA")
	for i, r := range rows {
		_, agreement := legalSummary(ps[i])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", r.ClientID, r.Name, r.Kind, strings.Join(r.Scopes, " "),
			r.Store, r.Disabled, r.Role, dash(agreement), dash(r.Jurisdiction), dash(r.TransferBasis), dash(areaSummary(ps[i].Area)))
	}
	return tw.Flush()
}

func oneArg(args []string, what string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usageError{what + " is required"}
	}
	return args[0], args[1:], nil
}

func setDisabled(ctx context.Context, c *cli, args []string, disabled bool) error {
	id, _, err := oneArg(args, "CLIENT_ID")
	if err != nil {
		return err
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	if err := db.Partners().SetPartnerDisabled(ctx, id, disabled); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "partner %s %s\n", id, map[bool]string{true: "disabled (its tokens issued so far stay refused after an enable)", false: "enabled"}[disabled])
	return nil
}

func cmdPartnerDisable(ctx context.Context, c *cli, args []string) error {
	return setDisabled(ctx, c, args, true)
}
func cmdPartnerEnable(ctx context.Context, c *cli, args []string) error {
	return setDisabled(ctx, c, args, false)
}

// cmdPartnerCourier sets or clears a retailer's default courier: the
// logistics partner its orders are bound to when they go out for delivery
// without an explicit dispatch (SPEC §4).
func cmdPartnerCourier(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "RETAILER_ID")
	if err != nil {
		return err
	}
	fs := flags("partner courier")
	courier := fs.String("courier", "", "the logistics partner's client id")
	none := fs.Bool("none", false, "no default courier: orders must be dispatched")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if (*courier == "") == !*none {
		return usageError{"give --courier CLIENT_ID or --none"}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	if err := db.Partners().SetDefaultCourier(ctx, id, *courier); err != nil {
		if broker.IsNotFound(err) {
			return fmt.Errorf("no retailer %s", id)
		}
		return err
	}
	if *none {
		fmt.Fprintf(c.stdout, "retailer %s has no default courier\n", id)
		return nil
	}
	fmt.Fprintf(c.stdout, "retailer %s: default courier %s\n", id, *courier)
	return nil
}

func cmdPartnerRotate(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "CLIENT_ID")
	if err != nil {
		return err
	}
	fs := flags("partner rotate-secret")
	asJSON := fs.Bool("json", false, "print JSON")
	revoke := fs.Bool("revoke-tokens", false, "also refuse at once every access token issued so far (else they live until they expire)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	var secret string
	// One transaction: the new secret and the revocation land together.
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		var err error
		if secret, err = token.RotateSecret(ctx, sys.DB.Partners(), sys.Sealer, id); err != nil || !*revoke {
			return err
		}
		_, err = sys.DB.Partners().RevokePartnerTokens(ctx, id)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]any{"client_id": id, "client_secret": secret, "tokens_revoked": *revoke})
	}
	note := "(the old secret no longer works; tokens already issued stay valid until they expire)"
	if *revoke {
		note = "(the old secret and every token issued with it no longer work)"
	}
	fmt.Fprintf(c.stdout, "client_id: %s\nclient_secret: %s\n%s\n", id, secret, note)
	return nil
}

func cmdCatalogImport(ctx context.Context, c *cli, args []string) error {
	fs := flags("catalog import")
	demo := fs.Bool("demo", false, "import the demo catalog")
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	var products []commerce.Product
	switch {
	case *demo && file != "":
		return usageError{"give FILE or --demo, not both"}
	case *demo:
		products = commerce.DemoCatalog()
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if products, err = commerce.ParseCatalog(filepath.Base(file), f); err != nil {
			return err
		}
	default:
		return usageError{"FILE or --demo is required"}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	n, err := cpg.New(db).Catalog.UpsertProducts(ctx, products)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "catalog: %d products read, %d new or changed\n", len(products), n)
	return nil
}

func cmdCatalogList(ctx context.Context, c *cli, args []string) error {
	fs := flags("catalog list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	ps, err := cpg.New(db).Catalog.Products(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if ps == nil {
			ps = []commerce.Product{}
		}
		return printJSON(c.stdout, ps)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SKU\tNAME\tPRICE\tCATEGORY\tSTOCK")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", p.SKU, p.Name, p.Price.String(), p.Category, p.Stock)
	}
	return tw.Flush()
}

func subjectFlags(name string, args []string) (subjectID, string, error) {
	fs := flags(name)
	wa := fs.String("wa-id", "", "the shopper's WhatsApp number")
	userID := fs.String("user-id", "", "the shopper's business-scoped user id (BSUID), instead of --wa-id")
	reason := fs.String("reason", "", "erasure ground, a code: "+strings.Join(commerce.EraseReasons, ", "))
	if err := parse(fs, args); err != nil {
		return subjectID{}, "", err
	}
	if (*wa == "") == (*userID == "") {
		return subjectID{}, "", usageError{"one of --wa-id and --user-id is required"}
	}
	return subjectID{WaID: *wa, UserID: *userID}, *reason, nil
}

// subjectID names a shopper on the command line: by number or by BSUID.
type subjectID struct{ WaID, UserID string }

func cmdSubjectExport(ctx context.Context, c *cli, args []string) error {
	wa, _, err := subjectFlags("subject export", args)
	if err != nil {
		return err
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	row, err := sys.Rights.Resolve(ctx, wa.WaID, wa.UserID)
	if err != nil {
		return err
	}
	// A release to the operator through the pipeline: audited, and listed
	// in the shopper's disclosures.
	ex, _, err := sys.Rights.ReleaseExport(ctx, row.ID, operator)
	if err != nil {
		return err
	}
	return printJSON(c.stdout, ex)
}

func cmdSubjectErase(ctx context.Context, c *cli, args []string) error {
	wa, reason, err := subjectFlags("subject erase", args)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = commerce.EraseRequest
	}
	if !commerce.ValidEraseReason(reason) {
		return usageError{"--reason must be one of " + strings.Join(commerce.EraseReasons, ", ")}
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	row, err := sys.Rights.Resolve(ctx, wa.WaID, wa.UserID)
	if err != nil {
		return err
	}
	if err := sys.Rights.Erase(ctx, row.ID, operator, reason); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "erased %s: data key destroyed, records unreadable, erasure entry appended to the audit log\n",
		sys.Pseudo.Audit(row.ID))
	return nil
}

func cmdReportProcessing(ctx context.Context, c *cli, args []string) error {
	fs := flags("report processing")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	// The record is built from the policy data and the configuration
	// alone: no database, no key.
	pol, err := c.policy(ctx)
	if err != nil {
		return err
	}
	// The partner registry, when the database answers: the record then
	// lists the recipients' roles, agreements and transfers.
	sys := &wire.System{Config: c.cfg, Policy: pol}
	if c.cfg.Database.URL != "" {
		if db, err := c.database(ctx); err == nil {
			sys.DB = db
		}
	}
	rec, err := (&wire.Reports{}).With(sys).Record(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, rec)
	}
	return printRecord(c.stdout, rec)
}

// cmdDemoSeed creates the demo catalog and the demo retailer when missing.
// The retailer's credentials are kept in a git-ignored development file so
// that `make run` can print them every time.
func cmdDemoSeed(ctx context.Context, c *cli, args []string) error {
	fs := flags("demo seed")
	credFile := fs.String("credentials", filepath.Join(".data", "demo-credentials.json"), "where to keep the demo credentials")
	market := fs.Bool("market", false, "also seed the marketplace: three stores with service areas and their own stock (make run)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if c.cfg.Production() {
		return fmt.Errorf("demo seed is for development only")
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	if _, err := sys.Stores.Catalog.UpsertProducts(ctx, commerce.DemoCatalog()); err != nil {
		return err
	}
	type creds struct {
		Retailer  map[string]string `json:"retailer"`
		Logistics map[string]string `json:"logistics"`
		// Stores are the marketplace's stores with service areas (SPEC §9).
		Stores map[string]map[string]string `json:"stores,omitempty"`
	}
	var have creds
	if b, err := os.ReadFile(*credFile); err == nil && json.Unmarshal(b, &have) == nil && have.Retailer != nil {
		if _, err := sys.DB.Partners().GetPartner(ctx, have.Retailer["client_id"]); err == nil {
			if have.Stores == nil && *market { // seeded without the marketplace: add its stores
				if have.Stores, err = seedDemoStores(ctx, sys.DB, sys.Sealer, commerce.DemoCatalog()); err != nil {
					return err
				}
				b, _ := json.MarshalIndent(have, "", "  ")
				if err := os.WriteFile(*credFile, append(b, '\n'), 0o600); err != nil {
					return err
				}
			}
			return printJSON(c.stdout, have)
		}
	}
	mk := func(name string, kind broker.PartyKind, scopes []string, store string) (map[string]string, error) {
		id, secret, err := token.CreatePartner(ctx, sys.DB.Partners(), sys.Sealer, token.PartnerSpec{Name: name, Kind: kind,
			Scopes: scopes, Store: store})
		return map[string]string{"client_id": id, "client_secret": secret}, err
	}
	var out creds
	if out.Retailer, err = mk("Demo Fresh Mart", broker.KindRetailer, []string{broker.ScopeOrdersRead,
		broker.ScopeOrdersWrite, broker.ScopeDeliveryMessage, broker.ScopeDataRequest}, c.cfg.WhatsApp.PhoneNumberID); err != nil {
		return err
	}
	if out.Logistics, err = mk("Demo Couriers", broker.KindLogistics, []string{broker.ScopeDeliveryRead,
		broker.ScopeDeliveryMessage}, ""); err != nil {
		return err
	}
	if *market {
		if out.Stores, err = seedDemoStores(ctx, sys.DB, sys.Sealer, commerce.DemoCatalog()); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.MkdirAll(filepath.Dir(*credFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(*credFile, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return printJSON(c.stdout, out)
}

// cmdKeysRetire retires an old key: an age identity once no data key is
// wrapped to it (so backups sealed under it become unreadable: the end of
// crypto-shredding for them), or a previous signing key once no token or
// checkpoint signed by it needs verifying.
func cmdKeysRetire(ctx context.Context, c *cli, args []string) error {
	id, asLog, asJWT, err := retireArgs(args)
	if err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	if *asLog && *asJWT {
		return usageError{"--log and --jwt exclude each other"}
	}
	for _, k := range sys.AgeKeys.IDs() {
		if k == id && !*asLog && !*asJWT {
			if err := sys.AgeKeys.Retire(ctx, id, sys.DB.SubjectKeys()); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "age identity %s retired\n", id)
			return nil
		}
	}
	_, isJWT := sys.SignKeys.PublicKey(id)
	isLog := sys.LogKeys.Has(id)
	if isLog && isJWT && !*asLog && !*asJWT {
		// The log adopted the JWT signing key: say which copy to retire.
		return usageError{"key " + id + " is both a JWT signing key and a log key; add --jwt or --log"}
	}
	if *asLog || (isLog && !*asJWT) {
		if err := sys.LogKeys.Retire(id); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "log key %s retired: its private key is deleted, its public key still verifies the checkpoints it signed\n", id)
		return nil
	}
	if err := sys.SignKeys.Retire(id); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "signing key %s retired\n", id)
	return nil
}

// retireArgs parses `keys retire KEY_ID [--log|--jwt]` by hand: a key id is
// base64url and may begin with '-', which the flag package would take for
// a flag.
func retireArgs(args []string) (id string, asLog, asJWT *bool, err error) {
	asLog, asJWT = new(bool), new(bool)
	for _, a := range args {
		switch a {
		case "--log", "-log":
			*asLog = true
		case "--jwt", "-jwt":
			*asJWT = true
		case "--":
		default:
			if id != "" {
				return "", nil, nil, usageError{"one KEY_ID, and only --log or --jwt beside it"}
			}
			id = a
		}
	}
	if id == "" {
		return "", nil, nil, usageError{"KEY_ID is required"}
	}
	return id, asLog, asJWT, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rotateLogKey rotates the audit log's key (a handover, announced in the
// log) and publishes a checkpoint at once, signed by both keys, that
// covers the announcement.
func rotateLogKey(ctx context.Context, c *cli, sys *wire.System) error {
	old := sys.LogKeys.Current()
	k, err := sys.RotateLogKey(ctx)
	if err != nil {
		return err
	}
	if _, err := sys.IntegrateAudit(ctx); err != nil {
		return fmt.Errorf("log key %s is current, but publishing the checkpoint that announces it failed (brokerd will): %w", k.ID, err)
	}
	_, until, _ := sys.LogKeys.Handover()
	vkey, _ := audit.VerifierKey(sys.Origin, k.Public)
	fmt.Fprintf(c.stdout, "log key rotated: %s is current, announced in the log; %s co-signs until %s\nnew verifier key: %s\n",
		k.ID, old.ID, until.Format(time.RFC3339), vkey)
	return nil
}
