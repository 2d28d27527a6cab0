package commerce

import (
	"strconv"
	"strings"
	"time"
)

// Slot is a delivery window.
type Slot struct {
	ID    string // "slot:20261122T18"
	Label string // "Sun 22 Nov, 6–8 pm"
}

// Slots offers the next delivery windows: two hours each, from two hours
// from now, between 8 am and 10 pm IST.
func Slots(now time.Time) []Slot {
	t := now.In(ist).Truncate(time.Hour).Add(2 * time.Hour)
	var out []Slot
	for len(out) < 6 {
		if t.Hour() < 8 {
			t = time.Date(t.Year(), t.Month(), t.Day(), 8, 0, 0, 0, ist)
		}
		if t.Hour() > 20 {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 8, 0, 0, 0, ist)
			continue
		}
		if t.Hour()%2 == 1 {
			t = t.Add(time.Hour)
			continue
		}
		out = append(out, Slot{ID: SlotPrefix + t.Format("20060102T15"), Label: slotLabel(t)})
		t = t.Add(2 * time.Hour)
	}
	return out
}

func slotLabel(t time.Time) string {
	return t.Format("Mon 2 Jan") + ", " + slotHours(t)
}

// slotHours renders a two-hour window: "8–10 am", "10 am–12 pm", "6–8 pm".
func slotHours(t time.Time) string {
	end := t.Add(2 * time.Hour)
	h := func(x time.Time) string {
		hh := x.Hour() % 12
		if hh == 0 {
			hh = 12
		}
		return strconv.Itoa(hh)
	}
	half := func(x time.Time) string {
		if x.Hour() >= 12 {
			return "pm"
		}
		return "am"
	}
	if half(t) == half(end) {
		return h(t) + "–" + h(end) + " " + half(end)
	}
	return h(t) + " " + half(t) + "–" + h(end) + " " + half(end)
}

// slotReply offers the delivery slots open at now.
func slotReply(now time.Time) Reply {
	var rows []Row
	for _, s := range Slots(now) {
		day, hours, _ := strings.Cut(s.Label, ", ")
		rows = append(rows, Row{ID: s.ID, Title: truncate(hours, 24), Description: day})
	}
	return Reply{Kind: ReplyList, Header: "Delivery slot", Body: "When should we deliver?", Button: "Choose a slot",
		Sections: []Section{{Title: "Available slots", Rows: rows}}}
}

// offeredSlot validates a slot id against the slots on offer now (or just
// before: the shopper may answer a list sent a little earlier).
func offeredSlot(id string, now time.Time) (string, bool) {
	for _, back := range []time.Duration{0, -2 * time.Hour} {
		for _, s := range Slots(now.Add(back)) {
			if s.ID == id {
				return s.Label, true
			}
		}
	}
	return "", false
}
