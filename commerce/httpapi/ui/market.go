package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

type marketBody struct {
	Stores []storeRow
	Offers []offerView
	Since  time.Time
}

type storeRow struct {
	Name, ClientID, Serves, Radius, Flags string
	Disabled                              bool
}

type offerView struct {
	commerce.OfferRecord
	Store string
}

// market is the map-free view of the marketplace (SPEC §9): the stores
// with their service areas, and the offers of the last day.
func (u auditPages) market(c *fiber.Ctx) error {
	if u.d.Partners == nil {
		return broker.Errorf(broker.ENotFound, "The partner registry is not configured.")
	}
	ctx := c.UserContext()
	ps, err := u.d.Partners.ListPartners(ctx)
	if err != nil {
		return err
	}
	body := marketBody{Since: u.d.Now().UTC().Add(-24 * time.Hour)}
	names := map[string]string{}
	for _, p := range ps {
		names[p.ID] = p.Name
		if p.Kind != broker.KindRetailer || !p.Area.Declared() {
			continue
		}
		r := storeRow{Name: p.Name, ClientID: p.ID, Serves: strings.Join(p.Area.Serves, " "), Disabled: p.Disabled}
		if p.Area.HasLocation && p.Area.RadiusKm > 0 {
			r.Radius = fmt.Sprintf("%g km around %.4f, %.4f", p.Area.RadiusKm, p.Area.Lat, p.Area.Lon)
		}
		var flags []string
		if p.Area.SelfDelivery {
			flags = append(flags, "self-delivery")
		}
		if p.Area.AutoAccept {
			flags = append(flags, "auto-accept")
		}
		r.Flags = strings.Join(flags, ", ")
		body.Stores = append(body.Stores, r)
	}
	if u.d.Offers != nil {
		offers, err := u.d.Offers(ctx, body.Since)
		if err != nil {
			return err
		}
		for _, o := range offers {
			body.Offers = append(body.Offers, offerView{OfferRecord: o, Store: names[o.StoreID]})
		}
	}
	d := u.data(c, "market", "Marketplace")
	d.Body = body
	return u.render(c, "market", d)
}

// OffersSince lists the offers made since a time, newest first; the
// dashboard's Deps.Offers.
type OffersSince func(ctx context.Context, since time.Time) ([]commerce.OfferRecord, error)
