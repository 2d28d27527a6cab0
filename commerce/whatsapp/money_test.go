package whatsapp

import (
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	ok := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"0.0", 0},
		{"64", 6400},
		{"289.5", 28950},
		{"289.50", 28950},
		{"289.500", 28950}, // trailing zeros are exact
		{"0.05", 5},
		{"0.5", 50},
		{"7.99", 799},
		{"1", 100},
		{"00012.30", 1230},
		{"2.895e2", 28950},
		{"2.895E+2", 28950},
		{"28950e-2", 28950},
		{"5e-2", 5},
		{"1e0", 100},
		{"0e10", 0},
		{"0.000", 0},
		{"92233720368547758.07", 9223372036854775807},
	}
	for _, tt := range ok {
		a, err := ParseAmount(tt.in)
		if err != nil {
			t.Errorf("ParseAmount(%q): %v", tt.in, err)
			continue
		}
		if a != Paise(tt.want) {
			t.Errorf("ParseAmount(%q) = %+v, want %d paise", tt.in, a, tt.want)
		}
	}
	bad := []string{
		"", "-1", "-0", "-0.01", "1.005", "0.001", "289.555", "5e-3", "1e-40",
		"92233720368547758.08", "1e30", "1e41", "abc", "1.", ".5", "+1", "1,5", "1.2.3",
		"0x10", "NaN", "Inf", " 1", "1 ", "1e", "1e+", "1ee2", "١٢", strings.Repeat("1", 65),
	}
	for _, in := range bad {
		if a, err := ParseAmount(in); err == nil {
			t.Errorf("ParseAmount(%q) = %+v, want error", in, a)
		} else if !errors.Is(err, ErrInvalidAmount) {
			t.Errorf("ParseAmount(%q) error %v does not wrap ErrInvalidAmount", in, err)
		}
	}
}

func TestAmountFormat(t *testing.T) {
	tests := []struct {
		a      Amount
		str    string
		number string
	}{
		{Paise(28950), "289.50", "289.5"},
		{Paise(6400), "64.00", "64"},
		{Paise(5), "0.05", "0.05"},
		{Paise(0), "0.00", "0"},
		{Paise(-150), "-1.50", "-1.5"},
		{Amount{Value: 7, Offset: 1}, "7", "7"},
		{Amount{Value: 1234, Offset: 1000}, "1.234", "1.234"},
		{Amount{Value: -9223372036854775808, Offset: 100}, "-92233720368547758.08", "-92233720368547758.08"},
		{Amount{Value: 5, Offset: 3}, "5/3", "5/3"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.str)
		}
		if got := string(tt.a.JSONNumber()); got != tt.number {
			t.Errorf("%+v.JSONNumber() = %q, want %q", tt.a, got, tt.number)
		}
	}
}

func TestAmountArithmetic(t *testing.T) {
	if s, ok := Paise(100).Add(Paise(250)); !ok || s != Paise(350) {
		t.Errorf("Add = %+v %v", s, ok)
	}
	if _, ok := Paise(1).Add(Amount{Value: 1, Offset: 1000}); ok {
		t.Error("Add accepted mixed offsets")
	}
	if _, ok := Paise(1 << 62).Add(Paise(1 << 62)); ok {
		t.Error("Add overflowed silently")
	}
	if p, ok := Paise(28950).Mul(2); !ok || p != Paise(57900) {
		t.Errorf("Mul = %+v %v", p, ok)
	}
	if _, ok := Paise(1 << 40).Mul(1 << 40); ok {
		t.Error("Mul overflowed silently")
	}
}

// jsonNumber is the JSON number grammar without a sign.
var jsonNumber = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"289.5", "64", "0.05", "1.005", "-1", "2.895e2", "1e-2", "92233720368547758.07", "0", "12.30"} {
		f.Add(s)
	}
	hundred := big.NewRat(100, 1)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) {
				t.Fatalf("error %v does not wrap ErrInvalidAmount", err)
			}
		} else {
			if a.Value < 0 || a.Offset != 100 {
				t.Fatalf("ParseAmount(%q) = %+v", s, a)
			}
			// Formatting and parsing again is the identity.
			back, err := ParseAmount(string(a.JSONNumber()))
			if err != nil || back != a {
				t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, a, a.JSONNumber(), back, err)
			}
		}
		// Against exact rational arithmetic, for valid JSON numbers of sane size.
		if !jsonNumber.MatchString(s) || len(s) > maxAmountText {
			return
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			if e := strings.TrimLeft(s[i+1:], "+-0"); len(e) > 2 {
				return // exponents beyond ±99 are rejected by design
			}
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("big.Rat rejects %q", s)
		}
		r.Mul(r, hundred)
		exact := r.IsInt() && r.Num().IsInt64()
		if exact && err != nil && !strings.Contains(err.Error(), "exponent") {
			t.Fatalf("ParseAmount(%q) rejected an exact amount %s: %v", s, r.Num(), err)
		}
		if err == nil && (!exact || r.Num().Int64() != a.Value) {
			t.Fatalf("ParseAmount(%q) = %d, exact value %s", s, a.Value, r.RatString())
		}
	})
}
