package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestNewPassword(t *testing.T) {
	shape := regexp.MustCompile(`^[` + passwordAlphabet + `]{5}(-[` + passwordAlphabet + `]{5}){3}$`)
	seen := map[string]bool{}
	counts := map[rune]int{}
	const n = 2000
	for range n {
		pw := newPassword()
		if !shape.MatchString(pw) {
			t.Fatalf("password %q is not four groups of five characters of the alphabet", pw)
		}
		if seen[pw] {
			t.Fatalf("password %q came twice", pw)
		}
		seen[pw] = true
		for _, r := range strings.ReplaceAll(pw, "-", "") {
			counts[r]++
		}
	}
	// Every character is used, none grossly more than the others (a
	// modulo bias would show as a skew toward the first characters).
	want := float64(n*20) / float64(len(passwordAlphabet))
	for _, r := range passwordAlphabet {
		if c := float64(counts[r]); c < want*0.8 || c > want*1.2 {
			t.Errorf("character %q appeared %v times, want about %v", r, c, want)
		}
	}
}

func TestValidOfficerName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"asha", true},
		{"demo-officer", true},
		{"a.verma@store.example", true},
		{"Åsa_1", true},
		{"", false},
		{"two words", false},
		{"semi;colon", false},
		{"new\nline", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validOfficerName(tc.name); got != tc.ok {
				t.Errorf("validOfficerName(%q) = %v, want %v", tc.name, got, tc.ok)
			}
		})
	}
}
