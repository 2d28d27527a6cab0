package main

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
	cpg "github.com/sieve-broker/sieve/commerce/postgres"
)

// registryFlags are the legal registry and service area flags that
// `partner create` and `partner update` share (SPEC §2).
type registryFlags struct {
	fs                                                         *flag.FlagSet
	role, agreement, expires, jurisdiction, basis, serves, loc *string
	radius                                                     *float64
	selfDelivery, autoAccept                                   *bool
}

func addRegistryFlags(fs *flag.FlagSet) *registryFlags {
	return &registryFlags{
		fs:           fs,
		role:         fs.String("role", "", "processor|controller|joint_controller"),
		agreement:    fs.String("agreement", "", "the data processing / sharing agreement's reference"),
		expires:      fs.String("agreement-expires", "", "the agreement's last day, YYYY-MM-DD"),
		jurisdiction: fs.String("jurisdiction", "", "the recipient's country, ISO 3166-1 alpha-2"),
		basis:        fs.String("transfer-basis", "", "adequacy|scc|bcr|consent|none"),
		serves:       fs.String("serves", "", `stores: postal codes served, space-separated ("560001 560002")`),
		loc:          fs.String("location", "", "stores: LAT,LON"),
		radius:       fs.Float64("radius-km", 0, "stores: delivery radius around --location, in km"),
		selfDelivery: fs.Bool("self-delivery", false, "stores: delivers itself (gets the exact address on acceptance)"),
		autoAccept:   fs.Bool("auto-accept", false, "stores: accept offers at once when the store's stock covers the cart"),
	}
}

var (
	countryRe   = regexp.MustCompile(`^[A-Z]{2}$`)
	postalRe    = regexp.MustCompile(`^[0-9]{6}$`)
	agreementRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]{0,99}$`)
)

// change turns the flags given on the command line into a registry
// change, checking each; flags not given are left unchanged. A flag given
// empty (--agreement "") clears it.
func (r *registryFlags) change(kind broker.PartyKind) (postgres.PartnerRegistry, []string, error) {
	set := map[string]bool{}
	r.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var c postgres.PartnerRegistry
	var changed []string
	str := func(name string, v *string, ok func(string) bool, want string) (*string, error) {
		if !set[name] {
			return nil, nil
		}
		changed = append(changed, name)
		if *v != "" && !ok(*v) {
			return nil, usageError{"--" + name + " must be " + want}
		}
		return v, nil
	}
	var err error
	if c.Role, err = str("role", r.role, func(s string) bool { return slices.Contains(broker.Roles, s) },
		strings.Join(broker.Roles, "|")); err != nil {
		return c, nil, err
	}
	if c.Agreement, err = str("agreement", r.agreement, agreementRe.MatchString,
		"a reference of 1 to 100 letters, digits and . _ / : -"); err != nil {
		return c, nil, err
	}
	if c.AgreementExpires, err = str("agreement-expires", r.expires, func(s string) bool {
		_, err := time.Parse(time.DateOnly, s)
		return err == nil
	}, "a date YYYY-MM-DD"); err != nil {
		return c, nil, err
	}
	if c.Jurisdiction, err = str("jurisdiction", r.jurisdiction, countryRe.MatchString,
		"an ISO 3166-1 alpha-2 country code in capitals (IN, DE)"); err != nil {
		return c, nil, err
	}
	if c.TransferBasis, err = str("transfer-basis", r.basis, func(s string) bool { return slices.Contains(broker.TransferBases, s) },
		strings.Join(broker.TransferBases, "|")); err != nil {
		return c, nil, err
	}
	area := set["serves"] || set["location"] || set["radius-km"] || set["self-delivery"] || set["auto-accept"]
	if area && kind != broker.KindRetailer {
		return c, nil, usageError{"--serves, --location, --radius-km, --self-delivery and --auto-accept are for retailers (stores)"}
	}
	if set["serves"] {
		changed = append(changed, "serves")
		codes := strings.Fields(*r.serves)
		for _, pc := range codes {
			if !postalRe.MatchString(pc) {
				return c, nil, usageError{"--serves takes 6-digit postal codes separated by spaces"}
			}
		}
		slices.Sort(codes)
		codes = slices.Compact(codes)
		c.Serves = &codes
	}
	if set["location"] {
		changed = append(changed, "location")
		if *r.loc == "" {
			c.ClearLocation = true
		} else {
			lat, lon, ok := parseLatLon(*r.loc)
			if !ok {
				return c, nil, usageError{"--location must be LAT,LON in degrees (12.9716,77.5946)"}
			}
			c.Location = &[2]float64{lat, lon}
		}
	}
	if set["radius-km"] {
		changed = append(changed, "radius-km")
		if *r.radius < 0 || *r.radius > 100 {
			return c, nil, usageError{"--radius-km must be between 0 (none) and 100"}
		}
		c.RadiusKm = r.radius
	}
	if set["self-delivery"] {
		changed = append(changed, "self-delivery")
		c.SelfDelivery = r.selfDelivery
	}
	if set["auto-accept"] {
		changed = append(changed, "auto-accept")
		c.AutoAccept = r.autoAccept
	}
	return c, changed, nil
}

func parseLatLon(s string) (float64, float64, bool) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return 0, 0, false
	}
	return lat, lon, true
}

// applyRegistry stores the change and appends its audit entry in one
// transaction: the entry names the operator, the partner and the flags
// changed (names only: a registry entry holds no personal data, but the
// log records what changed, not values typed). The result is checked as a
// whole: a radius needs a location.
func applyRegistry(ctx context.Context, db *postgres.DB, log broker.AuditAppender, actor broker.Party, id string,
	c postgres.PartnerRegistry, changed []string) error {
	if len(changed) == 0 {
		return nil
	}
	return db.InTx(ctx, func(ctx context.Context) error {
		if err := db.Partners().UpdatePartnerRegistry(ctx, id, c); err != nil {
			return err
		}
		p, err := db.Partners().GetPartner(ctx, id)
		if err != nil {
			return err
		}
		if p.Area.RadiusKm > 0 && !p.Area.HasLocation {
			return broker.Errorf(broker.EInvalid, "--radius-km needs --location LAT,LON")
		}
		if p.Legal.AgreementExpires != "" && p.Legal.Agreement == "" {
			return broker.Errorf(broker.EInvalid, "--agreement-expires needs --agreement REF")
		}
		// The reason lists flag names, from the fixed set above.
		_, err = broker.NewRecorder(log, nil, nil).Record(ctx, broker.Event{Actor: actor.Actor(),
			Action: "partner update", Resource: "partner:" + id, Outcome: audit.OutcomeDone,
			Reason: "changed " + strings.Join(changed, " "), Legal: p.Legal})
		return err
	})
}

// legalSummary renders a partner's registry entry for `partner list`.
func legalSummary(p broker.Partner) (role, agreement string) {
	role = p.Legal.Role
	if role == "" {
		role = "legacy"
	}
	agreement = p.Legal.Agreement
	if agreement != "" && p.Legal.AgreementExpires != "" {
		agreement += " (to " + p.Legal.AgreementExpires + ")"
	}
	return role, agreement
}

// areaSummary renders a store's service area for `partner list`.
func areaSummary(a broker.ServiceArea) string {
	var parts []string
	if len(a.Serves) > 0 {
		parts = append(parts, strings.Join(a.Serves, " "))
	}
	if a.HasLocation && a.RadiusKm > 0 {
		parts = append(parts, fmt.Sprintf("%.4f,%.4f+%gkm", a.Lat, a.Lon, a.RadiusKm))
	}
	if a.SelfDelivery {
		parts = append(parts, "self-delivery")
	}
	if a.AutoAccept {
		parts = append(parts, "auto-accept")
	}
	return strings.Join(parts, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// demoStore is one of the demo's marketplace stores (SPEC §9): three
// Bengaluru kiranas in different postal codes, with their own stock.
type demoStore struct {
	name       string
	serves     []string
	lat, lon   float64
	radiusKm   float64
	autoAccept bool
	// stockEvery keeps every product whose position (1, 2, …) is not a
	// multiple of it (0: all), and stock is the count of each: different
	// shelves, each holding the catalogue's first products (the cart
	// `wasim shop` sends by default).
	stockEvery, stock int
}

var demoStores = []demoStore{
	{name: "MG Road Kirana", serves: []string{"560001", "560025"}, lat: 12.9756, lon: 77.6050, radiusKm: 2,
		autoAccept: true, stock: 40},
	{name: "Indiranagar Stores", serves: []string{"560038", "560008"}, lat: 12.9784, lon: 77.6408, radiusKm: 3,
		autoAccept: true, stockEvery: 3, stock: 15},
	// Not auto-accepting: it takes offers by hand (GET /v1/offers,
	// POST /v1/offers/{id}/accept), so a newcomer sees an offer wait.
	{name: "Koramangala Mart", serves: []string{"560034", "560095"}, lat: 12.9352, lon: 77.6245, radiusKm: 2.5,
		stockEvery: 2, stock: 8},
}

// seedDemoStores registers the demo's marketplace stores with service
// areas and per-store stock, and returns their credentials by name.
func seedDemoStores(ctx context.Context, db *postgres.DB, vault broker.Vault, products []commerce.Product) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	err := db.InTx(ctx, func(ctx context.Context) error {
		for _, ds := range demoStores {
			id, secret, err := token.CreatePartner(ctx, db.Partners(), vault, token.PartnerSpec{Name: ds.name, Kind: broker.KindRetailer,
				Scopes: []string{broker.ScopeOrdersRead, broker.ScopeOrdersWrite, broker.ScopeDeliveryMessage}})
			if err != nil {
				return err
			}
			role, juris, basis, ar := broker.RoleController, "IN", "none", ds.autoAccept
			serves := slices.Clone(ds.serves)
			if err := db.Partners().UpdatePartnerRegistry(ctx, id, postgres.PartnerRegistry{Role: &role, Jurisdiction: &juris,
				TransferBasis: &basis, Serves: &serves, Location: &[2]float64{ds.lat, ds.lon}, RadiusKm: &ds.radiusKm,
				AutoAccept: &ar}); err != nil {
				return err
			}
			stock := map[string]int{}
			for i, p := range products {
				if ds.stockEvery == 0 || (i+1)%ds.stockEvery != 0 {
					stock[p.SKU] = ds.stock
				}
			}
			if err := cpg.New(db).Market.SetStoreStock(ctx, id, stock); err != nil {
				return err
			}
			out[ds.name] = map[string]string{"client_id": id, "client_secret": secret, "serves": strings.Join(ds.serves, " ")}
		}
		return nil
	})
	return out, err
}
