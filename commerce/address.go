package commerce

import (
	"context"
	"slices"
	"strings"

	"github.com/sieve-broker/sieve/broker"
)

// AddressFields are the structured fields of a delivery address (SPEC §9),
// each with its own policy rule: a candidate store never gets the house,
// the accepting store the locality and landmark (the exact address only
// when it delivers itself), the dispatched courier everything while the
// order is out for delivery.
var AddressFields = []string{"delivery.house", "delivery.building", "delivery.landmark", "delivery.locality",
	"delivery.city", "delivery.state"}

// StructuredAddress is an address split into the India address_message
// form's fields.
type StructuredAddress struct {
	House, Building, Landmark, Locality, City, State, PostalCode string
}

// ParseAddress splits a typed or pinned address as far as it can: the
// first comma-separated part is the house (number and street), a part
// naming a landmark ("near …", "opp …") is the landmark, the part with the
// PIN code is the city, and what lies between is the locality. Anything it
// cannot place stays in the house, the most protected field, so that a
// mis-parse never releases more than intended.
func ParseAddress(addr string) StructuredAddress {
	var a StructuredAddress
	a.PostalCode = PostalCodeOf(addr)
	var parts []string
	for _, p := range strings.Split(addr, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return a
	}
	a.House = parts[0]
	var middle []string
	for _, p := range parts[1:] {
		low := strings.ToLower(p)
		switch {
		case strings.HasPrefix(low, "near ") || strings.HasPrefix(low, "opp ") || strings.HasPrefix(low, "opposite ") ||
			strings.HasPrefix(low, "behind "):
			a.Landmark = p
		case a.PostalCode != "" && strings.Contains(p, a.PostalCode):
			a.City = strings.TrimSpace(strings.Replace(p, a.PostalCode, "", 1))
		default:
			middle = append(middle, p)
		}
	}
	a.Locality = strings.Join(middle, ", ")
	return a
}

// addressRecord adds the structured address fields to an order record.
func addressRecord(rec broker.Record, a StructuredAddress) {
	for f, v := range map[string]string{"delivery.house": a.House, "delivery.building": a.Building,
		"delivery.landmark": a.Landmark, "delivery.locality": a.Locality, "delivery.city": a.City, "delivery.state": a.State} {
		if v != "" {
			rec[f] = v
		}
	}
}

// structured returns the order's structured address: the one the shopper
// gave in the address form, else the typed or pinned address parsed.
func (o *Order) structured() StructuredAddress {
	if o.Address.Structured != nil {
		return *o.Address.Structured
	}
	a := ParseAddress(o.Address.Address)
	if a.PostalCode == "" {
		a.PostalCode = o.PostalCode
	}
	return a
}

// storeFields are the order fields asked for a store with a service area
// that does not deliver itself: the structured address without the exact
// one (policy never grants a retailer the house or building).
var storeFields = func() []string {
	out := slices.DeleteFunc(slices.Clone(OrderFields), func(f string) bool { return f == "delivery.address" })
	return append(out, AddressFields...)
}()

// OrderFieldsFor are the order fields asked for a partner's view: a
// marketplace store (SPEC §9) gets the locality and landmark instead of
// the exact address unless it delivers itself; everyone else the order
// record as before (policy decides what of it they get).
func OrderFieldsFor(p broker.Partner) []string {
	if p.Kind == broker.KindRetailer && p.Area.Declared() && !p.Area.SelfDelivery {
		return storeFields
	}
	if p.Kind == broker.KindLogistics {
		return logisticsFields
	}
	return OrderFields
}

var logisticsFields = append(slices.Clone(OrderFields), AddressFields...)

// AddressFormer is implemented by Actions that know whether to ask for
// the address with the India address_message form (SPEC §9): in the
// marketplace, for a shopper in India, where the structured fields let
// each recipient get only its part of the address.
type AddressFormer interface {
	UseAddressForm(ctx context.Context) bool
}

// addressAsk is step 4's question: the address form where it applies,
// else the location request (a pin or typed text answers either).
func addressAsk(ctx context.Context, act Actions) Reply {
	if f, ok := act.(AddressFormer); ok && f.UseAddressForm(ctx) {
		return Reply{Kind: ReplyAddressRequest, Body: "Where should we deliver? Fill in your address (or share your " +
			"location, or type it with its 6-digit PIN code)."}
	}
	return addressReply()
}

// UseAddressForm implements AddressFormer: the form is used when some
// store declares a service area and the shopper is in India.
func (a *actions) UseAddressForm(ctx context.Context) bool {
	if _, ok := a.s.market(); !ok {
		return false
	}
	stores, err := (&Market{Service: a.s}).routingStores(ctx)
	if err != nil || len(stores) == 0 {
		return false
	}
	row, err := a.s.Subjects.GetSubject(ctx, a.subject)
	return err == nil && ShopperJurisdiction(row) == "IN"
}
