package whatsapp

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/commerce"
)

// captureIngest keeps what the receiver would store.
type captureIngest struct{ events []commerce.Event }

func (c *captureIngest) Ingest(_ context.Context, evs []commerce.Event) error {
	c.events = append(c.events, evs...)
	return nil
}

// receive runs a body through a real Receiver (signature included).
func receive(t testing.TB, body []byte) ([]commerce.Event, error) {
	t.Helper()
	c := &captureIngest{}
	r := &Receiver{AppSecret: []byte(DevAppSecret), Ingest: c}
	err := r.Receive(context.Background(), body, Sign([]byte(DevAppSecret), body))
	return c.events, err
}

// A phone user's BSUID and parent BSUID are kept beside the number (they
// used to be dropped), and the two identity-change system messages become
// identity events that name the old and the new ids, never the body.
func TestReceiverIdentifiers(t *testing.T) {
	tests := []struct {
		file string
		want commerce.Event
	}{
		{"phone_bsuid_parent.json", commerce.Event{Class: commerce.EventMessage, WaID: "919811112222",
			BSUID: "IN.1410823456780001", ParentBSUID: "IN.ENT.9900000000000001"}},
		{"no_from_bsuid.json", commerce.Event{Class: commerce.EventMessage, BSUID: "IN.1410823456789012"}},
		{"system_user_changed_number.json", commerce.Event{Class: commerce.EventIdentity, WaID: "919811112222",
			Change: commerce.IdentityChangedNumber, NewWaID: "919877778888"}},
		{"system_user_changed_user_id.json", commerce.Event{Class: commerce.EventIdentity, BSUID: "IN.1410823456789012",
			Change: commerce.IdentityChangedUserID, NewBSUID: "IN.1410823456789099", NewParent: "IN.ENT.9900000000000099",
			PrevBSUID: "IN.1410823456789012", PrevParent: "IN.ENT.9900000000000012"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs, err := receive(t, readFixture(t, tt.file))
			if err != nil || len(evs) != 1 {
				t.Fatalf("%d events, %v", len(evs), err)
			}
			e, w := evs[0], tt.want
			if e.Class != w.Class || e.WaID != w.WaID || e.BSUID != w.BSUID || e.ParentBSUID != w.ParentBSUID ||
				e.Change != w.Change || e.NewWaID != w.NewWaID || e.NewBSUID != w.NewBSUID || e.NewParent != w.NewParent ||
				e.PrevBSUID != w.PrevBSUID || e.PrevParent != w.PrevParent {
				t.Errorf("got  %+v\nwant %+v", e, w)
			}
			if e.Class == commerce.EventIdentity && (e.Text != "" || e.Name != "") {
				t.Error("an identity event kept the system message's text")
			}
		})
	}
}

// Hostile identifiers: a malformed BSUID is not indexed, a number change to
// something that is no number moves nothing, an unknown system type stays
// an ordinary message.
func TestReceiverIdentifiersHostile(t *testing.T) {
	const head = `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},`
	for _, tt := range []struct {
		name, value string
		check       func(t *testing.T, e commerce.Event)
	}{
		{"bsuid with spaces", `"messages":[{"from":"919811112222","from_user_id":"IN.14 10","id":"wamid.1","timestamp":"1","type":"text","text":{"body":"x"}}]`,
			func(t *testing.T, e commerce.Event) {
				if e.BSUID != "" || e.WaID != "919811112222" {
					t.Errorf("%+v", e)
				}
			}},
		{"from a malformed bsuid", `"messages":[{"from":"IN.14 10","id":"wamid.1","timestamp":"1","type":"text","text":{"body":"x"}}]`,
			func(t *testing.T, e commerce.Event) {
				if e.BSUID != "" || e.Opaque != "IN.14 10" {
					t.Errorf("%+v", e)
				}
			}},
		{"bsuid too long", `"messages":[{"from_user_id":"IN.` + strings.Repeat("1", 200) + `","from":"919811112222","id":"wamid.1","timestamp":"1","type":"text","text":{"body":"x"}}]`,
			func(t *testing.T, e commerce.Event) {
				if e.BSUID != "" {
					t.Errorf("%+v", e)
				}
			}},
		{"new number not a number", `"messages":[{"from":"919811112222","id":"wamid.1","timestamp":"1","type":"system","system":{"type":"user_changed_number","wa_id":"+91 98 Ravi"}}]`,
			func(t *testing.T, e commerce.Event) {
				if e.Class != commerce.EventIdentity || e.NewWaID != "" {
					t.Errorf("%+v", e)
				}
			}},
		{"other system type", `"messages":[{"from":"919811112222","id":"wamid.1","timestamp":"1","type":"system","system":{"type":"customer_identity_changed","wa_id":"919811113333"}}]`,
			func(t *testing.T, e commerce.Event) {
				if e.Class != commerce.EventMessage || e.NewWaID != "" || e.Change != "" {
					t.Errorf("%+v", e)
				}
			}},
		{"change without system object", `"messages":[{"from":"919811112222","id":"wamid.1","timestamp":"1","type":"system"}]`,
			func(t *testing.T, e commerce.Event) {
				if e.Class != commerce.EventMessage {
					t.Errorf("%+v", e)
				}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := receive(t, []byte(head+tt.value+`}}]}]}`))
			if err != nil || len(evs) != 1 {
				t.Fatalf("%d events, %v", len(evs), err)
			}
			tt.check(t, evs[0])
		})
	}
}

// FuzzReceiverIdentifiers feeds the receiver arbitrary identifier fields
// and system messages: it never panics, and every identifier it passes on
// has the form of its kind (digits, a bounded BSUID).
func FuzzReceiverIdentifiers(f *testing.F) {
	for _, name := range []string{"phone_bsuid_parent.json", "no_from_bsuid.json",
		"system_user_changed_number.json", "system_user_changed_user_id.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"x","type":"system","system":{"type":"user_changed_user_id","user_id":".IN.","previous_user_id":"IN.\u0000"}}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := receive(t, body)
		if err != nil {
			return
		}
		for _, e := range evs {
			for _, d := range []string{e.WaID, e.NewWaID} {
				if d != "" && !isDigits(d) {
					t.Fatalf("phone %q is not digits", d)
				}
			}
			for _, b := range []string{e.BSUID, e.ParentBSUID, e.NewBSUID, e.NewParent, e.PrevBSUID, e.PrevParent} {
				if b != "" && (!utf8.ValidString(b) || !validBSUID(b) || !commerce.ValidUserID(b)) {
					t.Fatalf("BSUID %q passed on", b)
				}
			}
			if e.Class == commerce.EventIdentity && e.Change != commerce.IdentityChangedNumber && e.Change != commerce.IdentityChangedUserID {
				t.Fatalf("identity event of type %q", e.Change)
			}
		}
	})
}
