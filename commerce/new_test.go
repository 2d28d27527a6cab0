package commerce

import (
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// Each port of Stores, present and never called: New only wires them.
type (
	portTx        struct{ TxRunner }
	portCatalog   struct{ Catalog }
	portStock     struct{ Inventory }
	portSubjects  struct{ SubjectStore }
	portInbox     struct{ InboxStore }
	portTurns     struct{ TurnStore }
	portOrders    struct{ OrderStore }
	portOutbox    struct{ OutboxStore }
	portOffers    struct{ MarketStore }
	portConsents  struct{ ConsentStore }
	portNotices   struct{ NoticeStore }
	portHolds     struct{ HoldStore }
	portRights    struct{ RightsStore }
	portDesk      struct{ GrievanceStore }
	portNominees  struct{ NominationStore }
	portBreaches  struct{ BreachStore }
	portWarnings  struct{ WarningStore }
	portRetention struct{ RetentionStore }
)

func allStores() Stores {
	return Stores{Ports: Ports{Tx: portTx{}, Catalog: portCatalog{}, Stock: portStock{}, Subjects: portSubjects{}, Inbox: portInbox{}, Turns: portTurns{}, Orders: portOrders{}, Outbox: portOutbox{}, Offers: portOffers{}, Consents: portConsents{}}, Notices: portNotices{}, Holds: portHolds{}, Rights: portRights{}, Desk: portDesk{}, Nominees: portNominees{}, Breaches: portBreaches{}, Warnings: portWarnings{}, Retention: portRetention{}}
}

// periods gives every category the sweeper knows the same period.
func periods(p time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, c := range RetentionCategories() {
		m[c] = p
	}
	return m
}

type nopSealer struct {
	broker.Sealer
	broker.Vault
}

// TestNewWiresTheDesks checks that New builds every desk its store is
// given and connects them: the chat's erasure and export go to Rights,
// the service reaches Notices, Holds, the grievance desk and the nominees,
// the retention sweeper warns through Warnings with the shopper period.
func TestNewWiresTheDesks(t *testing.T) {
	seal := nopSealer{}
	d := Deps{Stores: allStores(), Clients: Clients{Sealer: seal, Vault: seal, Releaser: broker.NewReleaser(nil, nil, nil)},
		Held: map[string]time.Duration{KeyInvoice: 24 * time.Hour}, Contact: "grievance@example.in",
		RetentionPeriods: periods(90 * 24 * time.Hour), ErasureWarning: 48 * time.Hour,
		PhoneNumberID: "106540352242922"}
	shop, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	s := shop.Service
	if s.rights != shop.Rights || shop.Rights.Service != s {
		t.Error("the chat's rights do not go to the shop's Rights")
	}
	if s.notices != shop.Notices || s.holds != shop.Holds || s.desk != shop.Desk || s.nominees != shop.Nominees {
		t.Error("the service does not reach the shop's desks")
	}
	if shop.Nominees.Rights != shop.Rights || shop.Market.Service != s || shop.Orders.Service != s || shop.Breaches.Service != s {
		t.Error("a desk is wired to another service")
	}
	if shop.Desk.Contact != d.Contact || shop.Breaches.Contact != d.Contact || shop.Warnings.DefaultStore != d.PhoneNumberID {
		t.Error("the desks' settings are not the deps'")
	}
	if shop.Warnings.Period != 90*24*time.Hour || shop.Warnings.Lead != 48*time.Hour || shop.Retention.ShopperPeriod() != 90*24*time.Hour {
		t.Errorf("warnings %v before %v; sweeper period %v", shop.Warnings.Lead, shop.Warnings.Period, shop.Retention.ShopperPeriod())
	}
	// The holds are the deps' at the time of New, not shared with them.
	d.Held[KeyContact] = time.Hour
	if len(shop.Holds.Held) != 1 || shop.Holds.Held[KeyInvoice] != 24*time.Hour {
		t.Errorf("holds %v", shop.Holds.Held)
	}
}

// TestNewRefuses checks that a shop missing a required part is not built,
// and that a period the sweeper cannot apply stops it (brokerd then does
// not start rather than keep data past a period it publishes).
func TestNewRefuses(t *testing.T) {
	seal := nopSealer{}
	base := Deps{Stores: allStores(), Clients: Clients{Sealer: seal, Vault: seal, Releaser: broker.NewReleaser(nil, nil, nil)},
		RetentionPeriods: periods(30 * 24 * time.Hour)}
	for name, edit := range map[string]func(*Deps){
		"no rights store":  func(d *Deps) { d.Stores.Rights = nil },
		"no outbox":        func(d *Deps) { d.Stores.Outbox = nil },
		"no releaser":      func(d *Deps) { d.Releaser = nil },
		"no vault":         func(d *Deps) { d.Vault = nil },
		"unknown category": func(d *Deps) { d.RetentionPeriods = map[string]time.Duration{"horoscope": time.Hour} },
		"negative period":  func(d *Deps) { d.RetentionPeriods = map[string]time.Duration{"identity": -time.Hour} },
	} {
		d := base
		d.Stores = allStores()
		edit(&d)
		if shop, err := New(d); err == nil || shop != nil {
			t.Errorf("%s: built (%v)", name, err)
		} else if !strings.Contains(err.Error(), "commerce") && !strings.Contains(err.Error(), "retention") {
			t.Errorf("%s: %v does not say what is missing", name, err)
		}
	}
	// Optional desks absent: the shop is built without them.
	d := base
	d.Stores = allStores()
	d.Stores.Notices, d.Stores.Desk, d.Stores.Breaches, d.Stores.Retention = nil, nil, nil, nil
	shop, err := New(d)
	if err != nil || shop.Notices != nil || shop.Desk != nil || shop.Breaches != nil || shop.Retention != nil || shop.Warnings != nil {
		t.Fatalf("without the optional stores: %+v, %v", shop, err)
	}
}
