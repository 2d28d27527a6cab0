package policies

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The shopper of the realistic order below, and the values that must never
// reach the retail side in the clear.
const (
	subject     = "shp_7kq2xw4m5n6p7r8s9t0v1w2x3y" // internal subject id: customer.ref
	phone       = "+919876543210"
	profileName = "Asha Rao"
	chatText    = "Please ring the bell twice, my flat is 4B"
	address     = "4B, Lakeview Apartments, 12th Main Road, Indiranagar, Bengaluru"
)

type item struct {
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	Quantity  int          `json:"quantity"`
	UnitPrice broker.Money `json:"unit_price"`
}

type location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

var orderFields = []string{
	"order.id", "order.status", "order.created_at",
	"customer.ref", "customer.phone", "customer.profile_name", "chat",
	"items", "total",
	"delivery.address", "delivery.postal_code", "delivery.slot", "delivery.location",
	"payment.status", "payment.reference_id",
}

var createdAt = time.Date(2026, 11, 21, 9, 41, 7, 0, time.UTC)

// order is a realistic order record with all 15 fields.
func order() broker.Record {
	items := []item{
		{SKU: "SKU-ATTA-5KG", Name: "Atta 5 kg", Quantity: 2, UnitPrice: broker.INR(28950)},
		{SKU: "SKU-TOOR-1KG", Name: "Toor dal 1 kg", Quantity: 1, UnitPrice: broker.INR(16900)},
	}
	return broker.Record{
		"order.id":              "ord_mfrggzdfmztwq2lknnwg23tbnr",
		"order.status":          "placed",
		"order.created_at":      createdAt,
		"customer.ref":          subject,
		"customer.phone":        phone,
		"customer.profile_name": profileName,
		"chat":                  []string{"Hi", "Atta 5 kg x2, toor dal", chatText},
		"items":                 items,
		"total":                 broker.INR(74800),
		"delivery.address":      address,
		"delivery.postal_code":  "560038",
		"delivery.slot":         "2026-11-21T18:00/20:00",
		"delivery.location":     location{Latitude: 12.9784, Longitude: 77.6408},
		"payment.status":        "captured",
		"payment.reference_id":  "ord_mfrggzdfmztwq2lknnwg23tbnr",
	}
}

// statusUpdate is a retailer's status update with its internal fields.
func statusUpdate() broker.Record {
	return broker.Record{
		"status":           "out_for_delivery",
		"eta":              "18:40",
		"note_to_customer": "Your rider is on the way",
		"internal_note":    "customer complained last time, pack carefully",
		"staff_name":       "Ravi Kumar",
		"cost_price":       broker.INR(61200),
		"picker_id":        "pk_0042",
		"supplier":         "Sri Lakshmi Traders",
	}
}

func releaser(t testing.TB) (*broker.Releaser, *broker.Pseudonymizer) {
	t.Helper()
	pseudo, err := broker.NewPseudonymizer([]byte("sieve test pseudonym key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	return broker.NewReleaser(engine(t), pseudo, nil), pseudo
}

var (
	notice    = broker.Consent{Notice: true}
	optedIn   = broker.Consent{Notice: true, Marketing: true, Analytics: true}
	retailer1 = broker.Party{ID: "ret_freshmart", Kind: broker.KindRetailer, Scopes: []string{"orders:read", "orders:write", "data:request"}}
	retailer2 = broker.Party{ID: "ret_daily", Kind: broker.KindRetailer, Scopes: []string{"orders:read"}}
	courier   = broker.Party{ID: "log_dash", Kind: broker.KindLogistics, Scopes: []string{"delivery:read", "delivery:message"}}
	payments  = broker.Party{ID: "pay_upi", Kind: broker.KindPayments, Scopes: []string{"data:request"}}
	analytics = broker.Party{ID: "ana_insight", Kind: broker.KindAnalytics, Scopes: []string{"data:request"}}
	chatSide  = broker.Party{ID: "chat", Kind: broker.KindShopper}
)

// TestReleaser runs realistic records through the broker's release pipeline
// on the real policy: what each party gets, value by value.
func TestReleaser(t *testing.T) {
	r, pseudo := releaser(t)
	rec := order()
	ref := func(p broker.Party) string { return pseudo.Partner(p.ID, subject) }
	notNeeded := func(purpose string, fields ...string) map[string]string {
		m := map[string]string{}
		for _, f := range fields {
			m[f] = "not needed for " + purpose
		}
		return m
	}
	for _, c := range []struct {
		name     string
		party    broker.Party
		purpose  broker.Purpose
		state    string
		consent  broker.Consent
		record   broker.Record
		outcome  string
		reason   string
		released broker.Record
		withheld map[string]string
	}{
		{
			name: "retailer gets the fulfilment view", party: retailer1, purpose: broker.PurposeOrderFulfilment,
			state: "placed", consent: notice, record: rec, outcome: audit.OutcomePartial,
			released: broker.Record{
				"order.id": rec["order.id"], "order.status": "placed", "order.created_at": createdAt,
				"customer.ref": ref(retailer1), "items": rec["items"], "total": broker.INR(74800),
				"delivery.address": address, "delivery.postal_code": "560038",
				"delivery.slot": rec["delivery.slot"], "payment.status": "captured",
			},
			withheld: notNeeded("order_fulfilment", "customer.phone", "customer.profile_name", "chat",
				"delivery.location", "payment.reference_id"),
		},
		{
			name: "logistics is refused before the order is out for delivery", party: courier, purpose: broker.PurposeDelivery,
			state: "packed", consent: notice, record: rec, outcome: audit.OutcomeDenied,
			reason: `purpose "delivery" is not open in order state "packed"`,
		},
		{
			name: "logistics is refused after delivery", party: courier, purpose: broker.PurposeDelivery,
			state: "delivered", consent: notice, record: rec, outcome: audit.OutcomeDenied,
			reason: `purpose "delivery" is not open in order state "delivered"`,
		},
		{
			name: "logistics gets the delivery view while out for delivery", party: courier, purpose: broker.PurposeDelivery,
			state: "out_for_delivery", consent: notice, record: rec, outcome: audit.OutcomePartial,
			released: broker.Record{
				"order.id": rec["order.id"], "customer.ref": ref(courier), "items": rec["items"],
				"delivery.address": address, "delivery.postal_code": "560038", "delivery.slot": rec["delivery.slot"],
				"delivery.location": rec["delivery.location"],
			},
			withheld: notNeeded("delivery", "order.status", "order.created_at", "customer.phone",
				"customer.profile_name", "chat", "total", "payment.status", "payment.reference_id"),
		},
		{
			name: "retailer may not ask for the delivery view", party: retailer1, purpose: broker.PurposeDelivery,
			state: "out_for_delivery", consent: notice, record: rec, outcome: audit.OutcomeDenied,
			reason: `party kind "retailer" may not use purpose "delivery"`,
		},
		{
			name: "payments gets the masked phone", party: payments, purpose: broker.PurposePayment,
			state: "placed", consent: notice, record: rec, outcome: audit.OutcomePartial,
			released: broker.Record{
				"order.id": rec["order.id"], "customer.ref": ref(payments), "customer.phone": "•••••••••3210",
				"total": broker.INR(74800), "payment.status": "captured", "payment.reference_id": rec["payment.reference_id"],
			},
			withheld: notNeeded("payment", "order.status", "order.created_at", "customer.profile_name", "chat",
				"items", "delivery.address", "delivery.postal_code", "delivery.slot", "delivery.location"),
		},
		{
			name: "analytics gets generalised values with the opt-in", party: analytics, purpose: broker.PurposeAnalytics,
			state: "delivered", consent: optedIn, record: rec, outcome: audit.OutcomePartial,
			released: broker.Record{
				"order.created_at": "2026-11-21", "customer.ref": ref(analytics), "items": rec["items"],
				"total": broker.INR(74000), "delivery.postal_code": "560XXX",
			},
			withheld: notNeeded("analytics", "order.id", "order.status", "customer.phone", "customer.profile_name",
				"chat", "delivery.address", "delivery.slot", "delivery.location", "payment.status", "payment.reference_id"),
		},
		{
			name: "analytics is refused without the opt-in", party: analytics, purpose: broker.PurposeAnalytics,
			state: "delivered", consent: broker.Consent{Notice: true, Marketing: true}, record: rec,
			outcome: audit.OutcomeDenied, reason: "missing consent: analytics",
		},
		{
			name: "marketing is refused without consent", party: retailer1, purpose: broker.PurposeMarketing,
			consent: notice, record: rec, outcome: audit.OutcomeDenied, reason: "missing consent: marketing",
		},
		{
			name: "marketing with consent gets a pseudonym and the district", party: retailer1, purpose: broker.PurposeMarketing,
			consent: broker.Consent{Notice: true, Marketing: true}, record: rec, outcome: audit.OutcomePartial,
			released: broker.Record{"customer.ref": ref(retailer1), "delivery.postal_code": "560XXX"},
			withheld: notNeeded("marketing", "order.id", "order.status", "order.created_at", "customer.phone",
				"customer.profile_name", "chat", "items", "total", "delivery.address", "delivery.slot",
				"delivery.location", "payment.status", "payment.reference_id"),
		},
		{
			name: "retailer without orders:read is refused", party: broker.Party{ID: "ret_freshmart", Kind: broker.KindRetailer, Scopes: []string{"orders:write"}},
			purpose: broker.PurposeOrderFulfilment, state: "placed", consent: notice, record: rec,
			outcome: audit.OutcomeDenied, reason: "missing scope: orders:read",
		},
		{
			name: "shopper gets status and eta, never internal fields", party: chatSide, purpose: broker.PurposeOrderFulfilment,
			state: "out_for_delivery", consent: notice, record: statusUpdate(), outcome: audit.OutcomePartial,
			released: broker.Record{"status": "out_for_delivery", "eta": "18:40", "note_to_customer": "Your rider is on the way"},
			withheld: map[string]string{
				"internal_note": "retailer-internal field", "staff_name": "retailer-internal field",
				"cost_price": "retailer-internal field", "picker_id": "retailer-internal field", "supplier": "retailer-internal field",
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fields := c.record.SortedFields()
			d := r.Decide(context.Background(), broker.Request{
				Party: c.party, Purpose: c.purpose, State: c.state, Consent: c.consent,
				Subject: subject, Resource: "order:ord_1", Fields: fields, Record: c.record,
			})
			if d.Outcome != c.outcome || d.Reason != c.reason {
				t.Fatalf("outcome %s %q; want %s %q", d.Outcome, d.Reason, c.outcome, c.reason)
			}
			if d.PolicyRevision != engine(t).Revision() {
				t.Errorf("policy revision %q; want the engine's", d.PolicyRevision)
			}
			if !reflect.DeepEqual(d.Released, c.released) && (len(d.Released) != 0 || len(c.released) != 0) {
				t.Errorf("released:\n got %v\nwant %v", d.Released, c.released)
			}
			want := c.withheld
			if c.outcome == audit.OutcomeDenied {
				want = map[string]string{}
				for _, f := range fields {
					want[f] = c.reason
				}
			}
			got := map[string]string{}
			for _, w := range d.Withheld {
				got[w.Field] = w.Reason
			}
			if !maps.Equal(got, want) {
				t.Errorf("withheld:\n got %v\nwant %v", got, want)
			}
			if c.party.Kind != broker.KindShopper {
				assertNoPII(t, d.Released)
			}
		})
	}
}

// assertNoPII fails if a released value carries a direct identifier, the
// chat, or the raw subject id, however it is nested.
func assertNoPII(t *testing.T, released broker.Record) {
	t.Helper()
	b, err := json.Marshal(released)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{phone, strings.TrimPrefix(phone, "+91"), profileName, chatText, subject} {
		if strings.Contains(string(b), secret) {
			t.Errorf("released data contains %q: %s", secret, b)
		}
	}
}

// TestPseudonymsArePairwise: customer.ref is stable for one retailer and
// different for every other.
func TestPseudonymsArePairwise(t *testing.T) {
	r, _ := releaser(t)
	rec := order()
	refOf := func(p broker.Party) string {
		d := r.Decide(context.Background(), broker.Request{
			Party: p, Purpose: broker.PurposeOrderFulfilment, State: "placed", Consent: notice,
			Fields: orderFields, Record: rec,
		})
		ref, ok := d.Released["customer.ref"].(string)
		if !ok || !strings.HasPrefix(ref, "cus_") || ref == subject {
			t.Fatalf("%s got customer.ref %v; want a cus_ pseudonym", p.ID, d.Released["customer.ref"])
		}
		return ref
	}
	first, again, other := refOf(retailer1), refOf(retailer1), refOf(retailer2)
	if first != again {
		t.Errorf("pseudonym for %s is not stable: %s then %s", retailer1.ID, first, again)
	}
	if first == other {
		t.Errorf("%s and %s got the same pseudonym %s", retailer1.ID, retailer2.ID, first)
	}
	// Another shopper gets another pseudonym from the same retailer.
	rec["customer.ref"] = "shp_someoneelse"
	if refOf(retailer1) == first {
		t.Error("two shoppers got the same pseudonym")
	}
}

// TestRetailSideNeverGetsDirectIdentifiers asks every purpose as every
// retail-side kind with every scope and consent, and checks the released
// values: the only identifier that ever crosses is the masked phone.
func TestRetailSideNeverGetsDirectIdentifiers(t *testing.T) {
	r, _ := releaser(t)
	rec := order()
	for _, kind := range broker.PartnerKinds {
		if kind == broker.KindCompliance {
			continue // the oversight side: TestOversightReceivesOnlyForSubjectRequests
		}
		for _, purpose := range broker.Purposes {
			for _, state := range []string{"", "placed", "out_for_delivery", "delivered"} {
				d := r.Decide(context.Background(), broker.Request{
					Party:   broker.Party{ID: "p_" + string(kind), Kind: kind, Scopes: broker.AllScopes},
					Purpose: purpose, State: state, Consent: optedIn, Fields: orderFields, Record: rec,
				})
				for _, f := range []string{"customer.profile_name", "chat"} {
					if _, ok := d.Released[f]; ok {
						t.Errorf("%s/%s/%s: %s released", kind, purpose, state, f)
					}
				}
				if v, ok := d.Released["customer.phone"]; ok && (kind != broker.KindPayments || v != broker.Mask(phone)) {
					t.Errorf("%s/%s/%s: customer.phone released as %v", kind, purpose, state, v)
				}
				assertNoPII(t, d.Released)
			}
		}
	}
}

// TestShopperNeverGetsInternalFields asks with every field of every record.
func TestShopperNeverGetsInternalFields(t *testing.T) {
	r, _ := releaser(t)
	rec := statusUpdate()
	maps.Copy(rec, order())
	d := r.Decide(context.Background(), broker.Request{
		Party: chatSide, Purpose: broker.PurposeOrderFulfilment, State: "packed", Consent: notice,
		Fields: rec.SortedFields(), Record: rec,
	})
	if got := slices.Sorted(maps.Keys(d.Released)); !slices.Equal(got, []string{"eta", "note_to_customer", "status"}) {
		t.Errorf("shopper got %v; want eta, note_to_customer, status", got)
	}
}

// TestOversightReceivesOnlyForSubjectRequests: a compliance client or an
// officer receives a shopper's data for the shopper's own request (an
// export, purpose data_subject_request) and for no other purpose; a
// compliance client needs subjects:write for it.
func TestOversightReceivesOnlyForSubjectRequests(t *testing.T) {
	r, _ := releaser(t)
	rec := order()
	for _, kind := range []broker.PartyKind{broker.KindCompliance, broker.KindOfficer} {
		for _, purpose := range broker.Purposes {
			d := r.Decide(context.Background(), broker.Request{
				Party:   broker.Party{ID: "p_" + string(kind), Kind: kind, Scopes: broker.AllScopes},
				Purpose: purpose, State: "placed", Consent: optedIn, Fields: orderFields, Record: rec,
			})
			if purpose != broker.PurposeDataSubjectRequest && len(d.Released) > 0 {
				t.Errorf("%s/%s: released %v", kind, purpose, d.Released.SortedFields())
			}
			if purpose == broker.PurposeDataSubjectRequest && d.Released["customer.phone"] != phone {
				t.Errorf("%s/%s: the export lacks the phone: %v (%s)", kind, purpose, d.Released, d.Reason)
			}
		}
	}
	d := r.Decide(context.Background(), broker.Request{
		Party:   broker.Party{ID: "p_c", Kind: broker.KindCompliance, Scopes: []string{broker.ScopeAuditRead}},
		Purpose: broker.PurposeDataSubjectRequest, Consent: optedIn, Fields: orderFields, Record: rec,
	})
	if len(d.Released) > 0 {
		t.Errorf("compliance without subjects:write got %v", d.Released.SortedFields())
	}
}
