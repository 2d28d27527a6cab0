package whatsapp

import (
	"encoding/json"
	"strings"

	"github.com/sieve-broker/sieve/commerce"
)

// InteractiveAddress is the India-only interactive address_message: a
// form the shopper fills in (or picks a saved address from); the answer
// comes back as an nfm_reply named address_message.
const InteractiveAddress = "address_message"

// AddressValues are the fields of an address_message answer
// (nfm_reply.response_json "values"), India's form.
type AddressValues struct {
	Name         string `json:"name,omitempty"`
	PhoneNumber  string `json:"phone_number,omitempty"`
	PinCode      string `json:"in_pin_code,omitempty"`
	HouseNumber  string `json:"house_number,omitempty"`
	FloorNumber  string `json:"floor_number,omitempty"`
	TowerNumber  string `json:"tower_number,omitempty"`
	BuildingName string `json:"building_name,omitempty"`
	Address      string `json:"address,omitempty"`
	LandmarkArea string `json:"landmark_area,omitempty"`
	City         string `json:"city,omitempty"`
	State        string `json:"state,omitempty"`
}

// AddressResponse is an address_message answer's response_json.
type AddressResponse struct {
	SavedAddressID string        `json:"saved_address_id,omitempty"`
	Values         AddressValues `json:"values"`
}

// NewAddressRequest builds an interactive address_message asking for an
// Indian delivery address.
func NewAddressRequest(to, body string) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeInteractive)
	if err != nil {
		return nil, err
	}
	m.Interactive = &Interactive{
		Type:   InteractiveAddress,
		Body:   &InteractiveText{Text: Truncate(body, MaxInteractiveBody)},
		Action: &Action{Name: InteractiveAddress, Parameters: &ActionParameters{Country: "IN"}},
	}
	return finish(m)
}

// maxAddressField bounds each answered field; the form's own limits are
// smaller, so anything longer is not the form's.
const maxAddressField = 512

// addressAnswer maps an address_message answer to a delivery location
// with its structured fields; ok is false for any other nfm_reply or a
// malformed one. The name and phone number the form also carries are
// dropped here: the broker never needs them (it has the chat).
func addressAnswer(r *NFMReply) (*commerce.Location, bool) {
	if r == nil || r.Name != InteractiveAddress {
		return nil, false
	}
	var resp AddressResponse
	if err := json.Unmarshal([]byte(r.ResponseJSON), &resp); err != nil {
		return nil, false
	}
	v := resp.Values
	clip := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > maxAddressField {
			s = s[:maxAddressField]
		}
		return s
	}
	house := clip(strings.Join(nonEmpty(v.HouseNumber, v.FloorNumber, v.TowerNumber), ", "))
	a := commerce.StructuredAddress{House: house, Building: clip(v.BuildingName), Landmark: clip(v.LandmarkArea),
		Locality: clip(v.Address), City: clip(v.City), State: clip(v.State), PostalCode: clip(v.PinCode)}
	text := strings.Join(nonEmpty(a.House, a.Building, a.Locality, a.Landmark, a.City, a.State+" "+a.PostalCode), ", ")
	if text == "" {
		return nil, false
	}
	return &commerce.Location{Address: strings.TrimSpace(text), Structured: &a}, true
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
