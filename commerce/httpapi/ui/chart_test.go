package ui

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNiceCeil(t *testing.T) {
	tests := []struct{ in, want int64 }{
		{0, 1}, {1, 1}, {2, 2}, {3, 5}, {5, 5}, {6, 10}, {10, 10}, {11, 20}, {99, 100}, {101, 200}, {4999, 5000}, {5001, 10000},
	}
	for _, tc := range tests {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestBarChart(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	slots := []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(3 * time.Hour)}
	tests := []struct {
		name      string
		bars      []stack
		wantRects map[string]int
		wantTop   string // the highest y-axis label
	}{
		{"empty", make([]stack, 4), map[string]int{}, "1"},
		{"mixed", []stack{{Released: 3}, {Released: 1, Partial: 1, Denied: 2}, {}, {Denied: 7}},
			map[string]int{"released": 2, "partial": 1, "denied": 2}, "10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svg := string(barChart(slots, time.Hour, tc.bars))
			if !strings.HasPrefix(svg, `<svg class="chart"`) || !strings.HasSuffix(svg, "</svg>") {
				t.Fatalf("not an SVG: %s", svg)
			}
			for _, class := range []string{"released", "partial", "denied"} {
				if n := strings.Count(svg, `class="bar `+class+`"`); n != tc.wantRects[class] {
					t.Errorf("%d %s bars, want %d", n, class, tc.wantRects[class])
				}
			}
			labels := regexp.MustCompile(`text-anchor="end">(\d+)<`).FindAllStringSubmatch(svg, -1)
			if len(labels) == 0 || labels[len(labels)-1][1] != tc.wantTop {
				t.Errorf("y labels %v, want the top one %s", labels, tc.wantTop)
			}
			if strings.Contains(svg, "style=") {
				t.Error("inline style: the CSP would block it")
			}
		})
	}
	// A full bar reaches the top of the plot: heights are proportional.
	svg := string(barChart(slots[:1], time.Hour, []stack{{Released: 5}}))
	if !strings.Contains(svg, `height="212.0"`) {
		t.Errorf("a bar of the axis maximum is not the plot's height: %s", svg)
	}
}

func TestSparkline(t *testing.T) {
	svg := string(sparkline([]int64{0, 4, 2}, []int64{1, 0, 0}))
	if n := strings.Count(svg, `class="bar released"`); n != 2 {
		t.Errorf("%d release bars, want 2", n)
	}
	if n := strings.Count(svg, `class="bar denied"`); n != 1 {
		t.Errorf("%d denial bars, want 1", n)
	}
	if empty := string(sparkline([]int64{0, 0}, []int64{0, 0})); strings.Contains(empty, "<rect") {
		t.Errorf("an empty series drew bars: %s", empty)
	}
}

func TestSlots(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 17, 0, 0, time.UTC)
	tests := []struct {
		key       string
		wantFrom  time.Time
		wantSlots int
	}{
		{"1h", now.Add(-time.Hour), 30},
		{"24h", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), 25},
		{"7d", time.Date(2026, 11, 14, 10, 0, 0, 0, time.UTC), 29},
		{"30d", time.Date(2026, 10, 22, 10, 0, 0, 0, time.UTC), 31},
		{"bogus", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), 25},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			r := findRange(tc.key)
			from, slots := slotsOf(r, now)
			if !from.Equal(tc.wantFrom) || len(slots) != tc.wantSlots {
				t.Errorf("from %v, %d slots; want %v, %d", from, len(slots), tc.wantFrom, tc.wantSlots)
			}
			if last := slots[len(slots)-1]; !last.Before(now) || now.Sub(last) > r.Step {
				t.Errorf("last slot %v does not hold now %v", last, now)
			}
			if i := slotIndex(from, r.Step, len(slots), slots[len(slots)-1].Add(r.Step/2)); i != len(slots)-1 {
				t.Errorf("slotIndex of the last slot = %d", i)
			}
			if i := slotIndex(from, r.Step, len(slots), from.Add(-time.Second)); i != -1 {
				t.Errorf("slotIndex before the range = %d, want -1", i)
			}
		})
	}
}

func TestMaskNumber(t *testing.T) {
	tests := []struct{ in, want string }{
		{"919811112222", "+91 •••••••222"},
		{"+91 98111 12222", "+91 •••••••222"},
		{"14155550100", "+1 •••••••100"},
		{"12", "•••"},
	}
	for _, tc := range tests {
		if got := maskNumber(tc.in); got != tc.want {
			t.Errorf("maskNumber(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
