package whatsapp

import "testing"

func TestAdvance(t *testing.T) {
	tests := []struct {
		current, next, want string
	}{
		{"", "sent", "sent"},
		{"sent", "delivered", "delivered"},
		{"delivered", "sent", "delivered"},
		{"read", "delivered", "read"},
		{"read", "sent", "read"},
		{"sent", "read", "read"}, // read without delivered
		{"read", "played", "played"},
		{"played", "read", "played"},
		{"sent", "failed", "failed"},
		{"read", "failed", "failed"},
		{"failed", "read", "failed"},
		{"failed", "sent", "failed"},
		{"delivered", "deleted", "delivered"}, // unknown update
		{"", "", ""},
		{"", "bogus", ""},
	}
	for _, tt := range tests {
		if got := Advance(tt.current, tt.next); got != tt.want {
			t.Errorf("Advance(%q, %q) = %q, want %q", tt.current, tt.next, got, tt.want)
		}
	}
}

func TestAdvanceIsOrderIndependent(t *testing.T) {
	// Every permutation of sent, delivered, read ends in read.
	perms := [][]string{
		{"sent", "delivered", "read"}, {"sent", "read", "delivered"},
		{"delivered", "sent", "read"}, {"delivered", "read", "sent"},
		{"read", "sent", "delivered"}, {"read", "delivered", "sent"},
	}
	for _, p := range perms {
		s := ""
		for _, st := range p {
			s = Advance(s, st)
		}
		if s != StatusRead {
			t.Errorf("%v ends in %q", p, s)
		}
	}
}

func TestIsDeliveredAndRank(t *testing.T) {
	for s, want := range map[string]bool{"sent": false, "delivered": true, "read": true, "played": true, "failed": false, "": false} {
		if got := IsDelivered(s); got != want {
			t.Errorf("IsDelivered(%q) = %v", s, got)
		}
	}
	if !(StatusRank("sent") < StatusRank("delivered") && StatusRank("delivered") < StatusRank("read") && StatusRank("read") < StatusRank("failed")) {
		t.Error("ranks out of order")
	}
}

func TestAdvancePayment(t *testing.T) {
	tests := []struct{ current, next, want string }{
		{"", "pending", "pending"},
		{"pending", "captured", "captured"},
		{"captured", "pending", "captured"},
		{"", "captured", "captured"},
		{"pending", "weird", "pending"},
	}
	for _, tt := range tests {
		if got := AdvancePayment(tt.current, tt.next); got != tt.want {
			t.Errorf("AdvancePayment(%q, %q) = %q, want %q", tt.current, tt.next, got, tt.want)
		}
	}
}
