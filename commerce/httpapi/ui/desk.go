package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// The grievance desk and the breach workbench. Ticket texts are personal
// data: the list never shows them; opening one ticket shows its text to
// the officer and audits the reading. Breach pages show counts and
// pseudonymous recipients only.

func (u deskPages) registerDesk(app *fiber.App) {
	if u.d.Desk != nil {
		u.route(app, fiber.MethodGet, "/ui/grievances", u.officer(u.grievances))
		u.route(app, fiber.MethodGet, "/ui/grievances/:id", u.officer(u.grievance))
		u.route(app, fiber.MethodPost, "/ui/grievances/:id/resolve", u.officer(u.resolveGrievance))
	}
	if u.d.Breaches != nil {
		u.route(app, fiber.MethodGet, "/ui/breaches", u.officer(u.breaches))
		u.route(app, fiber.MethodPost, "/ui/breaches", u.officer(u.openBreach))
		u.route(app, fiber.MethodGet, "/ui/breaches/:id", u.officer(u.breach))
		u.route(app, fiber.MethodPost, "/ui/breaches/:id/notify", u.officer(u.notifyBreach))
		u.route(app, fiber.MethodGet, "/ui/breaches/:id/report", u.officer(u.breachReport))
	}
}

func (u *UI) officerParty(c *fiber.Ctx) broker.Party {
	cur, _ := u.current(c)
	return broker.Party{ID: cur.officer.ID, Kind: broker.KindOfficer}
}

// countdown renders the time left to a deadline: "3d 4h left" or
// "overdue by 2h".
func countdown(now, due time.Time) string {
	d := due.Sub(now)
	word := "left"
	if d < 0 {
		d, word = -d, "overdue by"
	}
	days, hours := int(d.Hours())/24, int(d.Hours())%24
	s := fmt.Sprintf("%dh", hours)
	if days > 0 {
		s = fmt.Sprintf("%dd %dh", days, hours)
	} else if hours == 0 {
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	}
	if word == "left" {
		return s + " left"
	}
	return word + " " + s
}

type grievanceRow struct {
	commerce.Grievance
	Countdown string
}

type grievancesBody struct {
	Filter  string
	Filters []option
	Rows    []grievanceRow
	SLA     commerce.SLAReport
}

func (u deskPages) grievances(c *fiber.Ctx) error {
	ctx := c.UserContext()
	status := c.Query("status")
	gs, err := u.d.Desk.List(ctx, status, 500)
	if err != nil {
		return err
	}
	sla, err := u.d.Desk.SLA(ctx)
	if err != nil {
		return err
	}
	now := u.d.Now()
	if u.d.Desk.Now != nil {
		now = u.d.Desk.Now()
	}
	body := grievancesBody{Filter: status, SLA: sla}
	for _, f := range []string{"", commerce.GrievanceOpen, commerce.GrievanceOverdue, commerce.GrievanceResolved} {
		label := f
		if f == "" {
			label = "all"
		}
		body.Filters = append(body.Filters, option{Value: f, Label: label})
	}
	for _, g := range gs {
		r := grievanceRow{Grievance: g}
		if g.ResolvedAt == nil {
			r.Countdown = countdown(now, g.ResolveDue)
		}
		body.Rows = append(body.Rows, r)
	}
	d := u.data(c, "grievances", "Grievances")
	d.Body = body
	return u.render(c, "grievances", d)
}

type grievanceBody struct {
	G         commerce.Grievance
	Countdown string
	Outcomes  []option
}

func (u deskPages) grievance(c *fiber.Ctx) error {
	id := c.Params("id")
	if !strings.HasPrefix(id, "grv_") || len(id) > 64 {
		return broker.Errorf(broker.ENotFound, "There is no such ticket.")
	}
	g, err := u.d.Desk.Read(c.UserContext(), id, u.officerParty(c))
	if broker.IsNotFound(err) {
		return broker.Errorf(broker.ENotFound, "There is no such ticket.")
	}
	if err != nil {
		return err
	}
	body := grievanceBody{G: g}
	if g.ResolvedAt == nil {
		now := u.d.Now()
		if u.d.Desk.Now != nil {
			now = u.d.Desk.Now()
		}
		body.Countdown = countdown(now, g.ResolveDue)
	}
	for _, o := range commerce.GrievanceOutcomes {
		body.Outcomes = append(body.Outcomes, option{Value: o, Label: strings.ReplaceAll(o, "_", " ")})
	}
	d := u.data(c, "grievances", "Grievance "+g.ID)
	d.Body = body
	return u.render(c, "grievance", d)
}

func (u deskPages) resolveGrievance(c *fiber.Ctx) error {
	id := c.Params("id")
	if !strings.HasPrefix(id, "grv_") || len(id) > 64 {
		return broker.Errorf(broker.ENotFound, "There is no such ticket.")
	}
	if _, err := u.d.Desk.Resolve(c.UserContext(), id, c.FormValue("outcome"), u.officerParty(c)); err != nil {
		if broker.IsNotFound(err) {
			return broker.Errorf(broker.ENotFound, "There is no such ticket.")
		}
		return err
	}
	return c.Redirect("/ui/grievances/"+id, fiber.StatusSeeOther)
}

type breachRow struct {
	commerce.Breach
	Countdown string
	Notified  int
}

type breachesBody struct {
	Rows       []breachRow
	Summaries  []option
	Categories []option
	Partners   []option
	Error      string
}

func (u deskPages) breachesBody(c *fiber.Ctx) (breachesBody, error) {
	ctx := c.UserContext()
	bs, err := u.d.Breaches.List(ctx)
	if err != nil {
		return breachesBody{}, err
	}
	now := u.d.Now()
	var body breachesBody
	for _, b := range bs {
		r := breachRow{Breach: b, Countdown: countdown(now, b.BoardDue)}
		for st, n := range b.Notices {
			if st != "pending" && st != "unreachable" {
				r.Notified += n
			}
		}
		body.Rows = append(body.Rows, r)
	}
	for _, s := range commerce.BreachSummaryCodes {
		body.Summaries = append(body.Summaries, option{Value: s, Label: strings.ReplaceAll(s, "_", " ")})
	}
	body.Categories = []option{{Value: "", Label: "every category"}}
	for _, s := range u.d.Breaches.Categories() {
		body.Categories = append(body.Categories, option{Value: s, Label: s})
	}
	body.Partners = []option{{Value: "", Label: "every recipient"}}
	if u.d.Partners != nil {
		ps, err := u.d.Partners.ListPartners(ctx)
		if err != nil {
			return body, err
		}
		for _, p := range ps {
			body.Partners = append(body.Partners, option{Value: p.ID, Label: p.Name + " (" + string(p.Kind) + ")"})
		}
	}
	return body, nil
}

func (u deskPages) breaches(c *fiber.Ctx) error {
	body, err := u.breachesBody(c)
	if err != nil {
		return err
	}
	d := u.data(c, "breaches", "Breaches")
	d.Body = body
	return u.render(c, "breaches", d)
}

// parseLocal reads a datetime-local field (UTC) or an RFC 3339 time.
func parseLocal(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time")
}

func (u deskPages) openBreach(c *fiber.Ctx) error {
	from, err1 := parseLocal(c.FormValue("from"))
	to, err2 := parseLocal(c.FormValue("to"))
	f := commerce.BreachFilter{From: from, To: to, Partner: c.FormValue("partner"), Category: c.FormValue("category")}
	var b commerce.Breach
	var err error
	if err1 != nil || err2 != nil {
		err = broker.Errorf(broker.EInvalid, "Give the window's start and end (UTC).")
	} else {
		b, err = u.d.Breaches.Open(c.UserContext(), f, c.FormValue("summary_code"), u.officerParty(c))
	}
	if err != nil {
		code := broker.ErrorCode(err)
		if code != broker.EInvalid && code != broker.EConflict {
			return err
		}
		body, berr := u.breachesBody(c)
		if berr != nil {
			return berr
		}
		body.Error = broker.ErrorMessage(err)
		d := u.data(c, "breaches", "Breaches")
		d.Body = body
		status := fiber.StatusBadRequest
		if code == broker.EConflict {
			status = fiber.StatusConflict
		}
		return u.renderStatus(c, status, "breaches", d)
	}
	return c.Redirect("/ui/breaches/"+b.ID, fiber.StatusSeeOther)
}

type breachBody struct {
	B        commerce.Breach
	Report   commerce.BreachReport
	Notified int
}

func (u deskPages) loadBreach(c *fiber.Ctx) (commerce.Breach, error) {
	id := c.Params("id")
	if !strings.HasPrefix(id, "brc_") || len(id) > 64 {
		return commerce.Breach{}, broker.Errorf(broker.ENotFound, "There is no such breach.")
	}
	b, err := u.d.Breaches.Get(c.UserContext(), id)
	if broker.IsNotFound(err) {
		return b, broker.Errorf(broker.ENotFound, "There is no such breach.")
	}
	return b, err
}

func (u deskPages) breach(c *fiber.Ctx) error {
	b, err := u.loadBreach(c)
	if err != nil {
		return err
	}
	body := breachBody{B: b, Report: u.d.Breaches.Report(b, u.d.Now())}
	for st, n := range b.Notices {
		if st != "pending" && st != "unreachable" {
			body.Notified += n
		}
	}
	d := u.data(c, "breaches", "Breach "+b.ID)
	d.Body = body
	return u.render(c, "breach", d)
}

func (u deskPages) notifyBreach(c *fiber.Ctx) error {
	b, err := u.loadBreach(c)
	if err != nil {
		return err
	}
	if _, err := u.d.Breaches.Notify(c.UserContext(), b.ID, u.officerParty(c)); err != nil {
		return err
	}
	return c.Redirect("/ui/breaches/"+b.ID, fiber.StatusSeeOther)
}

// breachReport serves the standalone HTML report (the Board intimation,
// the 72-hour report and the Art. 33 variant) to print or file.
func (u deskPages) breachReport(c *fiber.Ctx) error {
	b, err := u.loadBreach(c)
	if err != nil {
		return err
	}
	page, err := u.d.Breaches.Report(b, u.d.Now()).HTML()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(page)
}
