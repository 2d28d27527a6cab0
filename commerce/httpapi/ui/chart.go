package ui

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// The charts are inline SVG built here, on the server: no script, no
// external resource. Colours come from classes in the stylesheet (the CSP
// forbids inline styles); every bar has a <title> tooltip, and the pages
// carry the same numbers in a table for screen readers and print.

// stack is one bar's segments, bottom to top.
type stack struct {
	Released, Partial, Denied int64
}

func (s stack) total() int64 { return s.Released + s.Partial + s.Denied }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis
// ticks are round numbers.
func niceCeil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	p := int64(math.Pow(10, math.Floor(math.Log10(float64(v)))))
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// slotLabel formats a bucket start for the x axis.
func slotLabel(t time.Time, step time.Duration, prev time.Time) string {
	t = t.UTC()
	if step >= 24*time.Hour {
		return t.Format("2 Jan")
	}
	if prev.IsZero() || t.YearDay() != prev.UTC().YearDay() {
		return t.Format("2 Jan 15:04")
	}
	return t.Format("15:04")
}

// barChart renders stacked bars of releases, partial releases and denials
// per time slot.
func barChart(slots []time.Time, step time.Duration, bars []stack) template.HTML {
	const (
		w, h                 = 960.0, 260.0
		left, right, top, bt = 52.0, 12.0, 14.0, 34.0
	)
	pw, ph := w-left-right, h-top-bt
	var peak int64
	for _, b := range bars {
		peak = max(peak, b.total())
	}
	ymax := niceCeil(peak)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="Releases and denials per %s">`, w, h, stepName(step))
	// Grid and y labels: 0, ¼, ½, ¾, 1 of ymax (rounded to integers).
	for i := 0; i <= 4; i++ {
		v := float64(ymax) * float64(i) / 4
		y := top + ph - ph*float64(i)/4
		fmt.Fprintf(&sb, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, y, w-right, y)
		if i == 0 || v == math.Trunc(v) {
			fmt.Fprintf(&sb, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%d</text>`, left-6, y+4, int64(v))
		}
	}
	n := len(slots)
	if n > 0 {
		slotW := pw / float64(n)
		barW := math.Max(1, slotW*0.78)
		every := max(1, int(math.Ceil(float64(n)/8)))
		var prev time.Time
		for i, t := range slots {
			x := left + slotW*float64(i) + (slotW-barW)/2
			b := bars[i]
			y := top + ph
			for _, seg := range []struct {
				class string
				v     int64
			}{{"released", b.Released}, {"partial", b.Partial}, {"denied", b.Denied}} {
				if seg.v == 0 {
					continue
				}
				hh := ph * float64(seg.v) / float64(ymax)
				y -= hh
				fmt.Fprintf(&sb, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`,
					seg.class, x, y, barW, hh, template.HTMLEscapeString(t.UTC().Format("2 Jan 15:04")+" UTC"), seg.v, seg.class)
			}
			if i%every == 0 {
				fmt.Fprintf(&sb, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
					left+slotW*float64(i)+slotW/2, h-bt+18, template.HTMLEscapeString(slotLabel(t, step, prev)))
				prev = t
			}
		}
	}
	fmt.Fprintf(&sb, `<line class="baseline" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, top+ph, w-right, top+ph)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // built from numbers and escaped labels only
}

// sparkline renders releases (up) and denials (down) per slot as a small
// mirrored bar chart.
func sparkline(up, down []int64) template.HTML {
	const w, h = 168.0, 34.0
	n := len(up)
	var peak int64
	for i := range n {
		peak = max(peak, up[i], down[i])
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="spark" viewBox="0 0 %.0f %.0f" role="img" aria-label="releases up, denials down">`, w, h)
	mid := h / 2
	fmt.Fprintf(&sb, `<line class="baseline" x1="0" y1="%.1f" x2="%.0f" y2="%.1f"/>`, mid, w, mid)
	if n > 0 && peak > 0 {
		slotW := w / float64(n)
		barW := math.Max(1, slotW*0.8)
		for i := range n {
			x := slotW*float64(i) + (slotW-barW)/2
			if up[i] > 0 {
				hh := math.Max(1, (mid-1)*float64(up[i])/float64(peak))
				fmt.Fprintf(&sb, `<rect class="bar released" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, mid-hh, barW, hh)
			}
			if down[i] > 0 {
				hh := math.Max(1, (mid-1)*float64(down[i])/float64(peak))
				fmt.Fprintf(&sb, `<rect class="bar denied" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, mid, barW, hh)
			}
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // numbers only
}

func stepName(step time.Duration) string {
	switch {
	case step >= 24*time.Hour && step%(24*time.Hour) == 0:
		if step == 24*time.Hour {
			return "day"
		}
		return fmt.Sprintf("%d days", step/(24*time.Hour))
	case step >= time.Hour && step%time.Hour == 0:
		if step == time.Hour {
			return "hour"
		}
		return fmt.Sprintf("%d hours", step/time.Hour)
	default:
		return fmt.Sprintf("%d minutes", step/time.Minute)
	}
}

// chartRange is a span of time the overview can show.
type chartRange struct {
	Key   string
	Label string
	Span  time.Duration
	Step  time.Duration
}

var chartRanges = []chartRange{
	{"1h", "Last hour", time.Hour, 2 * time.Minute},
	{"24h", "24 hours", 24 * time.Hour, time.Hour},
	{"7d", "7 days", 7 * 24 * time.Hour, 6 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour, 24 * time.Hour},
}

func findRange(key string) chartRange {
	for _, r := range chartRanges {
		if r.Key == key {
			return r
		}
	}
	return chartRanges[1]
}

// slotsOf returns the bucket starts of a range ending at now, aligned as
// AuditLog.Counts aligns them.
func slotsOf(r chartRange, now time.Time) (from time.Time, slots []time.Time) {
	from = now.Add(-r.Span).UTC()
	if r.Step%time.Hour == 0 {
		from = from.Truncate(time.Hour)
	}
	for t := from; t.Before(now); t = t.Add(r.Step) {
		slots = append(slots, t)
	}
	return from, slots
}

// slotIndex returns the slot of a bucket start, or -1.
func slotIndex(from time.Time, step time.Duration, n int, bucket time.Time) int {
	d := bucket.Sub(from)
	if d < 0 {
		return -1
	}
	i := int(d / step)
	if i >= n {
		return -1
	}
	return i
}
