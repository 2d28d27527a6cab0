package commerce

import (
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	cases := []struct {
		name  string
		now   time.Time
		first string
		label string
	}{
		{"morning", time.Date(2026, 11, 21, 6, 30, 0, 0, ist), "slot:20261121T08", "Sat 21 Nov, 8–10 am"},
		{"noon crossing", time.Date(2026, 11, 21, 8, 10, 0, 0, ist), "slot:20261121T10", "Sat 21 Nov, 10 am–12 pm"},
		{"evening rolls over", time.Date(2026, 11, 21, 21, 0, 0, 0, ist), "slot:20261122T08", "Sun 22 Nov, 8–10 am"},
		{"utc input", time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), "slot:20261121T20", "Sat 21 Nov, 8–10 pm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Slots(c.now)
			if len(s) != 6 || s[0].ID != c.first || s[0].Label != c.label {
				t.Fatalf("first slot %+v (of %d), want %s %q", s[0], len(s), c.first, c.label)
			}
			for i := 1; i < len(s); i++ {
				if s[i].ID <= s[i-1].ID {
					t.Fatalf("slots not increasing: %v", s)
				}
			}
		})
	}
}

func TestTextOrder(t *testing.T) {
	got := TextOrder("please SKU-ATTA-5KG x2, sku-milk-1l 3 and SKU-SALT-1KG")
	want := []CartLine{{SKU: "SKU-ATTA-5KG", Quantity: 2}, {SKU: "SKU-MILK-1L", Quantity: 3}, {SKU: "SKU-SALT-1KG", Quantity: 1}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

func TestValidTransition(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{StatusPlaced, StatusAccepted, true},
		{StatusPlaced, StatusOutForDelivery, true},
		{StatusPacked, StatusAccepted, false},
		{StatusDelivered, StatusCancelled, false},
		{StatusOutForDelivery, StatusCancelled, true},
		{StatusPendingPayment, StatusAccepted, false},
		{StatusCancelled, StatusPlaced, false},
	} {
		if got := ValidTransition(c.from, c.to); got != c.ok {
			t.Errorf("%s → %s: %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestPostalCodeAndTotals(t *testing.T) {
	if pc := PostalCodeOf("12 MG Road, Bengaluru 560001, India"); pc != "560001" {
		t.Errorf("postal code %q", pc)
	}
	if pc := PostalCodeOf("flat 0123456"); pc != "" {
		t.Errorf("7 digits taken as a PIN: %q", pc)
	}
	sub, _, ship, total := Totals([]CartLine{{UnitPrice: 28950, Quantity: 1}})
	if sub != 28950 || ship != 3000 || total != 31950 {
		t.Errorf("small cart: %d %d %d", sub, ship, total)
	}
	_, _, ship, total = Totals([]CartLine{{UnitPrice: 28950, Quantity: 2}})
	if ship != 0 || total != 57900 {
		t.Errorf("free delivery above ₹499: %d %d", ship, total)
	}
}

func TestAddQuantity(t *testing.T) {
	for _, tc := range []struct {
		a, b, want int
		ok         bool
	}{
		{0, 1, 1, true},
		{50000, 50000, MaxOrderQuantity, true},
		{50000, 50001, 0, false},
		{MaxOrderQuantity, 1, 0, false},
		{1, -1, 0, false},
		{int(^uint(0) >> 1), 1, 0, false}, // would wrap
		{1, int(^uint(0) >> 1), 0, false},
	} {
		if got, ok := addQuantity(tc.a, tc.b); got != tc.want || ok != tc.ok {
			t.Errorf("addQuantity(%d, %d) = %d, %v; want %d, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
