package whatsapp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestWAMIDFormat(t *testing.T) {
	for _, tc := range []struct {
		name, who, wantPrefix, wantUser string
		id                              func(string) string
		dir                             byte
		n                               int
	}{
		// The real id: 1c 18 0b "60173526233" 15 02 00 12 18 14 "3…".
		{"inbound", "60173526233", "wamid.HBgLNjAxNzM1MjYyMzMVAgASGB", "60173526233", NewInboundWAMID, 0x12, 20},
		{"outbound", "+919811112222", "wamid.HBgMOTE5ODExMTEyMjIyFQIAERgS", "919811112222", NewOutboundWAMID, 0x11, 18},
		{"bsuid", "IN.1410823456789012", "wamid.HBgTSU4uMTQxMDgyMzQ1Njc4OTAxMhUCABIYF", "IN.1410823456789012", NewInboundWAMID, 0x12, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id(tc.who)
			if !strings.HasPrefix(id, tc.wantPrefix) {
				t.Fatalf("%s does not start with %s", id, tc.wantPrefix)
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(id, "wamid."))
			if err != nil {
				t.Fatalf("not standard base64 with padding: %v", err)
			}
			l := len(tc.wantUser)
			tail := b[3+l:]
			if !bytes.Equal(tail[:6], []byte{0x15, 0x02, 0x00, tc.dir, 0x18, byte(tc.n)}) || tail[len(tail)-1] != 0 ||
				len(tail) != 6+tc.n+1 || strings.ToUpper(string(tail[6:6+tc.n])) != string(tail[6:6+tc.n]) {
				t.Errorf("structure: % x", b)
			}
			if u, ok := WAMIDUser(id); !ok || u != tc.wantUser {
				t.Errorf("WAMIDUser = %q, %v", u, ok)
			}
			if tc.id(tc.who) == id {
				t.Error("two ids are equal")
			}
		})
	}
	if _, ok := WAMIDUser("wamid.TEST1"); ok {
		t.Error("WAMIDUser accepted a made-up id")
	}
}

func TestMetaEscape(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		// What PHP's json_encode writes for these values.
		{"hindi and en dash", `{"body":"नमस्ते – atta"}`, `{"body":"\u0928\u092e\u0938\u094d\u0924\u0947 \u2013 atta"}`},
		{"slash", `{"url":"https://x.example/a/b"}`, `{"url":"https:\/\/x.example\/a\/b"}`},
		{"html kept literal", `{"s":"\u003cb\u003e \u0026 <i>"}`, `{"s":"<b> & <i>"}`},
		{"existing escapes kept", `{"s":"a\"b\\u003c\/\n"}`, `{"s":"a\"b\\u003c\/\n"}`},
		{"astral", `{"s":"😀é"}`, `{"s":"\ud83d\ude00\u00e9"}`},
		{"ascii untouched", `{"a":[1,2.5,true,null]}`, `{"a":[1,2.5,true,null]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MetaEscape([]byte(tc.in))
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			var a, b any
			if err := json.Unmarshal([]byte(tc.in), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(got, &b); err != nil {
				t.Fatal(err)
			}
			if ja, jb := mustMarshal(a), mustMarshal(b); ja != jb {
				t.Errorf("value changed: %s != %s", ja, jb)
			}
			for _, c := range got {
				if c >= 0x80 {
					t.Fatalf("non-ASCII byte left: %s", got)
				}
			}
		})
	}
}

func mustMarshal(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestEscapedNotificationSigned: a notification as Meta sends it (escaped)
// verifies over the bytes sent and decodes to the original text.
func TestEscapedNotificationSigned(t *testing.T) {
	const text = "आटा 5 kg – ₹289/pack"
	n := NewNotification("1", Metadata{PhoneNumberID: DevPhoneNumberID}, []Contact{{WaID: "919811112222", Profile: Profile{Name: "आशा"}}},
		[]Message{{From: "919811112222", ID: NewInboundWAMID("919811112222"), Type: "text", Text: &Text{Body: text}}}, nil)
	body, err := n.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(`\u0906\u091f\u093e 5 kg \u2013 \u20b9289\/pack`)) {
		t.Fatalf("not escaped as Meta escapes: %s", body)
	}
	if !VerifySignature([]byte(DevAppSecret), body, Sign([]byte(DevAppSecret), body)) {
		t.Fatal("signature over the escaped bytes does not verify")
	}
	n2, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	evs := n2.Events()
	if len(evs) != 1 || evs[0].Message.Text.Body != text || evs[0].ProfileName != "आशा" {
		t.Fatalf("decoded %+v", evs)
	}
}
