package commerce

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLocalize: whatever text a reply carries (a product name, a
// retailer's note), translating it never panics, keeps reply ids, and
// keeps valid UTF-8 valid.
func FuzzLocalize(f *testing.F) {
	for _, s := range []string{"Order ord_abc is packed.", "Your cart:\n2 × Atta — ₹1.00", "Sat 21 Nov, 8–10 am",
		"{order}", "Order {order} is {status}.", "\xff\xfe", "• {name}, for {purpose}: {fields} (1 time(s), last 2 Jan 2026)"} {
		f.Add(s)
	}
	ls, err := ShippedLanguages()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Reply{Kind: ReplyButtons, Header: s, Body: s, Buttons: []Button{{ID: "cart:confirm", Title: s}},
			Sections: []Section{{Title: s, Rows: []Row{{ID: "slot:1", Title: s, Description: s}}}}}
		out := ls.Localize("hi", r)
		if out.Buttons[0].ID != "cart:confirm" || out.Sections[0].Rows[0].ID != "slot:1" {
			t.Fatal("an id changed")
		}
		if utf8.ValidString(s) && !utf8.ValidString(out.Body) {
			t.Fatalf("valid %q became invalid %q", s, out.Body)
		}
		if strings.Count(out.Body, "\n") != strings.Count(s, "\n") {
			t.Fatalf("lines changed: %q → %q", s, out.Body)
		}
	})
}

// FuzzParentDigits: a typed parent's number is digits with a country code
// or nothing.
func FuzzParentDigits(f *testing.F) {
	for _, s := range []string{"+91 98765 43210", "9876543210", "0", "+", "98765-43210 ext 2", "٩٨٧٦٥٤٣٢١٠"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parentDigits(Inbound{Kind: InText, Text: s})
		if !ok {
			return
		}
		if len(d) < 11 || len(d) > 15 || d[0] == '0' || strings.Trim(d, "0123456789") != "" {
			t.Fatalf("%q gave %q", s, d)
		}
	})
}
