package whatsapp

import (
	"encoding/json"
	"testing"

	"github.com/sieve-broker/sieve/commerce"
)

// TestAddressAnswer: the India address_message answer maps to a location
// with structured fields (the form's name and phone dropped); a malformed
// or foreign nfm_reply is not an address.
func TestAddressAnswer(t *testing.T) {
	resp, _ := json.Marshal(AddressResponse{Values: AddressValues{Name: "Asha", PhoneNumber: "919811112222",
		PinCode: "560001", HouseNumber: "12", FloorNumber: "3", BuildingName: "Lake View", Address: "MG Road",
		LandmarkArea: "near Trinity Metro", City: "Bengaluru", State: "Karnataka"}})
	m := &Message{Type: TypeInteractive, Interactive: &InteractiveReply{Type: "nfm_reply",
		NFMReply: &NFMReply{Name: InteractiveAddress, ResponseJSON: string(resp)}}}
	var in commerce.Inbound
	convertMessage(m, &in)
	if in.Kind != commerce.InLocation || in.Loc == nil || in.Loc.Structured == nil {
		t.Fatalf("converted to %+v", in)
	}
	want := commerce.StructuredAddress{House: "12, 3", Building: "Lake View", Landmark: "near Trinity Metro",
		Locality: "MG Road", City: "Bengaluru", State: "Karnataka", PostalCode: "560001"}
	if *in.Loc.Structured != want {
		t.Errorf("structured %+v; want %+v", *in.Loc.Structured, want)
	}
	if commerce.PostalCodeOf(in.Loc.Address) != "560001" {
		t.Errorf("address text %q lacks the PIN code", in.Loc.Address)
	}
	for _, leak := range []string{"Asha", "9198111"} {
		if json.Valid([]byte(in.Loc.Address)) || contains(in.Loc.Address, leak) {
			t.Errorf("address text %q holds %q", in.Loc.Address, leak)
		}
	}
	for _, r := range []*NFMReply{{Name: InteractiveAddress, ResponseJSON: "{"}, {Name: "flow", ResponseJSON: string(resp)},
		{Name: InteractiveAddress, ResponseJSON: `{"values":{}}`}} {
		var in commerce.Inbound
		convertMessage(&Message{Type: TypeInteractive, Interactive: &InteractiveReply{Type: "nfm_reply", NFMReply: r}}, &in)
		if in.Kind == commerce.InLocation {
			t.Errorf("%+v became a location", r)
		}
	}
	out, err := NewAddressRequest("+919811112222", "Where should we deliver?")
	if err != nil || out.Interactive.Type != "address_message" || out.Interactive.Action.Parameters.Country != "IN" {
		t.Fatalf("NewAddressRequest: %+v %v", out, err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
