package commerce

import (
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// RetailerView is an order as a partner sees it: only what the release
// decided, plus the privacy block saying what was withheld and why.
type RetailerView struct {
	OrderID     string        `json:"order_id"`
	Status      string        `json:"status,omitempty"`
	CreatedAt   *time.Time    `json:"created_at,omitempty"`
	CustomerRef string        `json:"customer_ref,omitempty"`
	Items       []ViewItem    `json:"items,omitempty"`
	Total       *broker.Money `json:"total,omitempty"`
	Delivery    *ViewDelivery `json:"delivery,omitempty"`
	Payment     *ViewPayment  `json:"payment,omitempty"`
	Privacy     ViewPrivacy   `json:"privacy"`
}

// ViewDelivery is the delivery block of a view.
type ViewDelivery struct {
	Address    string             `json:"address,omitempty"`
	House      string             `json:"house,omitempty"`
	Building   string             `json:"building,omitempty"`
	Landmark   string             `json:"landmark,omitempty"`
	Locality   string             `json:"locality,omitempty"`
	City       string             `json:"city,omitempty"`
	State      string             `json:"state,omitempty"`
	PostalCode string             `json:"postal_code,omitempty"`
	Slot       string             `json:"slot,omitempty"`
	Location   map[string]float64 `json:"location,omitempty"`
}

// ViewPayment is the payment block of a view.
type ViewPayment struct {
	Status      string `json:"status,omitempty"`
	ReferenceID string `json:"reference_id,omitempty"`
}

// ViewPrivacy explains the minimisation of a view.
type ViewPrivacy struct {
	DecisionID string `json:"decision_id"`
	Purpose    string `json:"purpose"`
	// RetainUntil is the purpose's data life: the date by which the
	// recipient must delete what it received (SPEC §5.12).
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	Withheld    []string   `json:"withheld"`
}

// NewRetailerView builds a partner's view from a release decision. Only
// released fields appear; the order id always does, as the partner named it.
func NewRetailerView(orderID string, d broker.Decision) RetailerView {
	r := d.Released
	v := RetailerView{OrderID: orderID, Privacy: ViewPrivacy{DecisionID: d.ID, Purpose: string(d.Purpose),
		Withheld: d.WithheldFields()}}
	if !d.RetainUntil.IsZero() {
		t := d.RetainUntil
		v.Privacy.RetainUntil = &t
	}
	if v.Privacy.Withheld == nil {
		v.Privacy.Withheld = []string{}
	}
	if s, ok := r["order.status"].(string); ok {
		v.Status = s
	}
	if t, ok := r["order.created_at"].(time.Time); ok {
		v.CreatedAt = &t
	}
	if s, ok := r["customer.ref"].(string); ok {
		v.CustomerRef = s
	}
	if items, ok := r["items"].([]ViewItem); ok {
		v.Items = items
	}
	if m, ok := r["total"].(broker.Money); ok {
		v.Total = &m
	}
	var d2 ViewDelivery
	if s, ok := r["delivery.address"].(string); ok {
		d2.Address = s
	}
	if s, ok := r["delivery.postal_code"].(string); ok {
		d2.PostalCode = s
	}
	for f, dst := range map[string]*string{"delivery.house": &d2.House, "delivery.building": &d2.Building,
		"delivery.landmark": &d2.Landmark, "delivery.locality": &d2.Locality, "delivery.city": &d2.City,
		"delivery.state": &d2.State} {
		if s, ok := r[f].(string); ok {
			*dst = s
		}
	}
	if s, ok := r["delivery.slot"].(string); ok {
		d2.Slot = s
	}
	if l, ok := r["delivery.location"].(map[string]float64); ok {
		d2.Location = l
	}
	if d2.Address != "" || d2.PostalCode != "" || d2.Slot != "" || d2.Location != nil || d2.House != "" ||
		d2.Building != "" || d2.Landmark != "" || d2.Locality != "" || d2.City != "" || d2.State != "" {
		v.Delivery = &d2
	}
	var p ViewPayment
	if s, ok := r["payment.status"].(string); ok {
		p.Status = s
	}
	if s, ok := r["payment.reference_id"].(string); ok {
		p.ReferenceID = s
	}
	if p != (ViewPayment{}) {
		v.Payment = &p
	}
	return v
}
