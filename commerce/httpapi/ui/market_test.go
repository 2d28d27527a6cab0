package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// storePartners lists two stores with service areas beside a plain
// retailer.
type storePartners struct{ broker.PartnerStore }

func (storePartners) ListPartners(context.Context) ([]broker.Partner, error) {
	return []broker.Partner{
		{ID: "cli_fresh", Name: "Fresh Mart", Kind: broker.KindRetailer},
		{ID: "cli_mg", Name: "MG Road Kirana", Kind: broker.KindRetailer, Area: broker.ServiceArea{
			Serves: []string{"560001", "560025"}, AutoAccept: true}},
		{ID: "cli_ind", Name: "Indiranagar Stores", Kind: broker.KindRetailer, Area: broker.ServiceArea{
			Lat: 12.9784, Lon: 77.6408, HasLocation: true, RadiusKm: 3, SelfDelivery: true}},
	}, nil
}

// TestMarketPage: /ui/market lists the stores with areas (not the plain
// retailer) and the offers of the last day, by store name, without any
// order content.
func TestMarketPage(t *testing.T) {
	var asked time.Time
	h := newHarness(t, func(d *Deps) {
		d.Partners = storePartners{}
		d.Offers = func(_ context.Context, since time.Time) ([]commerce.OfferRecord, error) {
			asked = since
			decided := since.Add(23 * time.Hour)
			return []commerce.OfferRecord{{OfferID: "off_1", OrderID: "ord_1", StoreID: "cli_mg", Status: "declined", Rank: 0,
				CreatedAt: since.Add(22 * time.Hour), DecidedAt: &decided},
				{OfferID: "off_2", OrderID: "ord_1", StoreID: "cli_ind", Status: "accepted", Rank: 1, CreatedAt: since.Add(23 * time.Hour)}}, nil
		}
	})
	sess, csrf := h.login(testOfficer, testPassword)
	s := signedIn{h, sess, csrf}
	r := s.get("/ui/market")
	if r.status != 200 {
		t.Fatalf("status %d\n%s", r.status, r.body)
	}
	for _, want := range []string{"MG Road Kirana", "560001 560025", "auto-accept", "Indiranagar Stores",
		"3 km around 12.9784, 77.6408", "self-delivery", "off_1", "declined", "off_2", "accepted", `href="/ui/market"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "Fresh Mart</td>") {
		t.Error("a retailer without an area is listed as a store")
	}
	if !asked.Equal(h.clock.Now().UTC().Add(-24 * time.Hour)) {
		t.Errorf("offers asked since %v; want the last day", asked)
	}
}
