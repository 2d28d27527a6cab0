package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

func TestParseUser(t *testing.T) {
	tests := []struct {
		wa, user, parent, username string
		want                       User
		kind                       string
	}{
		{"919811112222", "", "", "", User{Phone: "919811112222"}, "phone"},
		{"+919811112222", "IN.1410000000000001", "IN.ENT.77", "", User{Phone: "919811112222", BSUID: "IN.1410000000000001", Parent: "IN.ENT.77"}, "phone+bsuid"},
		{"IN.1410000000000001", "", "", "", User{BSUID: "IN.1410000000000001"}, "username"},
		{"919811112222", "IN.1410000000000001", "", "kiran", User{BSUID: "IN.1410000000000001", Username: "@kiran"}, "username"},
	}
	for _, tt := range tests {
		u, err := ParseUser(tt.wa, tt.user, tt.parent, tt.username)
		if err != nil || u != tt.want || u.Kind() != tt.kind {
			t.Errorf("ParseUser(%q, %q, %q, %q) = %+v %s, %v", tt.wa, tt.user, tt.parent, tt.username, u, u.Kind(), err)
		}
	}
	u, err := ParseUser("", "", "", "@asha")
	if err != nil || u.Phone != "" || !whatsapp.IsBSUID(u.BSUID) || u.Address() != u.BSUID {
		t.Errorf("username user without a BSUID: %+v %v", u, err)
	}
	for _, bad := range [][4]string{{"", "", "", ""}, {"919811112222", "not-a-bsuid", "", ""}, {"IN.1", "IN.2", "", ""}} {
		if _, err := ParseUser(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("ParseUser(%q) accepted", bad)
		}
	}
}

// events runs the sink's bodies through the broker's real receiver.
func events(t *testing.T, sink *webhookSink) []commerce.Event {
	t.Helper()
	c := &collect{}
	r := &whatsapp.Receiver{AppSecret: sink.secret, Ingest: c}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, b := range sink.bodies {
		if err := r.Receive(context.Background(), b, whatsapp.Sign(sink.secret, b)); err != nil {
			t.Fatalf("the broker's receiver refused wasim's webhook: %v\n%s", err, b)
		}
	}
	return c.evs
}

type collect struct{ evs []commerce.Event }

func (c *collect) Ingest(_ context.Context, evs []commerce.Event) error {
	c.evs = append(c.evs, evs...)
	return nil
}

// `wasim chat` as a phone+BSUID user who changes number, and as a
// username user (BSUID only) whose BSUID changes: the broker's own decoder
// sees the identifiers and both change events as WhatsApp sends them.
func TestChatIdentities(t *testing.T) {
	sim := NewStore()
	t.Run("phone+bsuid, number change", func(t *testing.T) {
		sink, ws := newSink(t, 0)
		u, _ := ParseUser("919811112222", "IN.1410000000000001", "IN.ENT.1410000000000009", "")
		var out syncBuffer
		c := &Chat{User: &u, Name: "Asha", Webhooks: ws, Sim: sim, Out: &out, Linger: 50 * time.Millisecond,
			In: strings.NewReader("Hi\n/change-number +919811113333 IN.1410000000000002\nHi again\n/change-number 12\n")}
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs := events(t, sink)
		if len(evs) != 3 {
			t.Fatalf("%d events\n%s", len(evs), out.String())
		}
		if e := evs[0]; e.Class != commerce.EventMessage || e.WaID != "919811112222" || e.BSUID != "IN.1410000000000001" || e.ParentBSUID != "IN.ENT.1410000000000009" {
			t.Errorf("first message %+v", e)
		}
		if e := evs[1]; e.Class != commerce.EventIdentity || e.Change != commerce.IdentityChangedNumber || e.WaID != "919811112222" ||
			e.NewWaID != "919811113333" || e.NewBSUID != "IN.1410000000000002" || e.PrevBSUID != "IN.1410000000000001" {
			t.Errorf("change %+v", e)
		}
		if e := evs[2]; e.WaID != "919811113333" || e.BSUID != "IN.1410000000000002" || e.Text != "Hi again" {
			t.Errorf("message after the change %+v", e)
		}
		if !strings.Contains(out.String(), "8 to 15 digits") || c.WaID != "919811113333" {
			t.Errorf("a bad change was not refused, or the chat did not follow: %s\n%s", c.WaID, out.String())
		}
	})
	t.Run("username, BSUID change", func(t *testing.T) {
		sink, ws := newSink(t, 0)
		u, _ := ParseUser("919811112222", "IN.1410000000000005", "", "kiran")
		c := &Chat{User: &u, Name: "Kiran", Webhooks: ws, Sim: sim, Out: &syncBuffer{}, Linger: 50 * time.Millisecond,
			In: strings.NewReader("Hi\n/change-user-id IN.1410000000000006\nHi\n")}
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs := events(t, sink)
		if len(evs) != 3 {
			t.Fatalf("%d events", len(evs))
		}
		if e := evs[0]; e.WaID != "" || e.BSUID != "IN.1410000000000005" {
			t.Errorf("a username user's message carries %+v", e)
		}
		if e := evs[1]; e.Class != commerce.EventIdentity || e.Change != commerce.IdentityChangedUserID || e.BSUID != "IN.1410000000000005" ||
			e.NewBSUID != "IN.1410000000000006" || e.NewWaID != "" {
			t.Errorf("change %+v", e)
		}
		if e := evs[2]; e.BSUID != "IN.1410000000000006" || e.WaID != "" {
			t.Errorf("message after the change %+v", e)
		}
	})
}

// `wasim load` names its shoppers as asked: every shape decodes, and a
// username shopper carries no phone.
func TestLoadIdentityShapes(t *testing.T) {
	for i, shape := range []string{"phone", "phone+bsuid", "username"} {
		u := loadUser("mixed", shopperID(i), i)
		if u.Kind() != shape {
			t.Errorf("mixed shopper %d is %s, want %s", i, u.Kind(), shape)
		}
		if got := loadUser(shape, shopperID(7), 7).Kind(); got != shape {
			t.Errorf("--ids %s gives %s", shape, got)
		}
	}
	cfg := LoadConfig{Rate: 1, Duration: time.Second, IDs: "sometimes"}
	if err := cfg.normalize(); err == nil {
		t.Error("an unknown --ids was accepted")
	}
}

// A flow load reports what each order cost in broker messages, with
// phone, phone+BSUID and username shoppers mixed.
func TestFlowLoadCountsMessagesPerOrder(t *testing.T) {
	h := newHarness(t)
	rep, err := RunFlowLoad(context.Background(), LoadConfig{Shoppers: 3, Rate: 30, Duration: 100 * time.Millisecond, IDs: "mixed"},
		h.ws, h.store, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 3 || rep.BrokerMessages == 0 || rep.MessagesPerOrder != float64(rep.BrokerMessages)/float64(rep.Orders) {
		t.Fatalf("report %+v", rep)
	}
	var out strings.Builder
	rep.WriteText(&out)
	if !strings.Contains(out.String(), "messages per order") {
		t.Errorf("text report:\n%s", out.String())
	}
}

// `wasim shop --change-number N,BSUID --change-user-id BSUID` sends both
// system messages, in order, and shops as the changed user.
func TestShopSendsChanges(t *testing.T) {
	sink, ws := newSink(t, 0)
	var log strings.Builder
	u, err := sendChanges(context.Background(), ws, User{Phone: "919811112222", BSUID: "IN.1410000000000001"},
		"+919811113333,IN.1410000000000002", "IN.1410000000000003", &log)
	if err != nil {
		t.Fatal(err)
	}
	if u.Phone != "919811113333" || u.BSUID != "IN.1410000000000003" {
		t.Errorf("user after the changes %+v", u)
	}
	evs := events(t, sink)
	if len(evs) != 2 || evs[0].Change != commerce.IdentityChangedNumber || evs[0].NewWaID != "919811113333" ||
		evs[1].Change != commerce.IdentityChangedUserID || evs[1].BSUID != "IN.1410000000000002" || evs[1].NewBSUID != "IN.1410000000000003" {
		t.Errorf("events %+v", evs)
	}
	for _, bad := range [][2]string{{"12", ""}, {"919811113333,nope", ""}, {"", "nope"}} {
		if _, err := sendChanges(context.Background(), ws, User{Phone: "919811112222"}, bad[0], bad[1], &log); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
