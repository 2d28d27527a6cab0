package ui

import (
	"bufio"
	"context"
	"encoding/hex"
	"html/template"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// option is an <option> of a filter's <select>.
type option struct {
	Value, Label string
}

// actorNames maps "kind:id" of every partner to its name, for labels.
func (u *UI) actorNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	if u.d.Partners == nil {
		return names
	}
	ps, err := u.d.Partners.ListPartners(ctx)
	if err != nil {
		u.d.Log.Warn("dashboard: listing partners", "err", err)
		return names
	}
	for _, p := range ps {
		names[string(p.Kind)+":"+p.ID] = p.Name
	}
	return names
}

// actorLabel names an audit actor for people.
func actorLabel(actor string, names map[string]string) string {
	if n, ok := names[actor]; ok {
		kind, _, _ := strings.Cut(actor, ":")
		return n + " (" + kind + ")"
	}
	switch {
	case actor == "shopper:chat":
		return "Shopper's chat"
	case actor == unknownOfficer:
		return "Unknown officer"
	case strings.HasPrefix(actor, "officer:"):
		return "Officer " + strings.TrimPrefix(actor, "officer:")
	case strings.HasPrefix(actor, "system:"):
		return "System (" + strings.TrimPrefix(actor, "system:") + ")"
	}
	return actor
}

func kindOf(actor string) string {
	k, _, _ := strings.Cut(actor, ":")
	return k
}

// ---------------------------------------------------------------------------
// Overview

type overviewBody struct {
	Range   chartRange
	Ranges  []chartRange
	Step    string
	Chart   template.HTML
	Totals  stack
	Series  []seriesRow
	Status  CheckStatus
	Slots   []slotRow
	HasData bool
}

type seriesRow struct {
	Actor, Label, Purpose string
	Totals                stack
	Spark                 template.HTML
}

type slotRow struct {
	Start time.Time
	stack
}

func (u auditPages) overview(c *fiber.Ctx) error {
	ctx := c.UserContext()
	r := findRange(c.Query("range"))
	now := u.d.Now()
	from, slots := slotsOf(r, now)
	counts, err := u.d.Audit.Counts(ctx, from, now, r.Step)
	if err != nil {
		return err
	}
	bars := make([]stack, len(slots))
	type key struct{ actor, purpose string }
	type acc struct {
		totals   stack
		up, down []int64
	}
	series := map[key]*acc{}
	var totals stack
	for _, ct := range counts {
		i := slotIndex(from, r.Step, len(slots), ct.Bucket)
		if i < 0 {
			continue
		}
		k := key{ct.Actor, ct.Purpose}
		a := series[k]
		switch ct.Outcome {
		case audit.OutcomeReleased, audit.OutcomePartial, audit.OutcomeDenied:
			if a == nil {
				a = &acc{up: make([]int64, len(slots)), down: make([]int64, len(slots))}
				series[k] = a
			}
		default:
			continue // officers' and the system's own actions are not releases
		}
		switch ct.Outcome {
		case audit.OutcomeReleased:
			bars[i].Released += ct.Count
			a.totals.Released += ct.Count
			a.up[i] += ct.Count
		case audit.OutcomePartial:
			bars[i].Partial += ct.Count
			a.totals.Partial += ct.Count
			a.up[i] += ct.Count
		case audit.OutcomeDenied:
			bars[i].Denied += ct.Count
			a.totals.Denied += ct.Count
			a.down[i] += ct.Count
		}
	}
	names := u.actorNames(ctx)
	body := overviewBody{Range: r, Ranges: chartRanges, Step: stepName(r.Step), Chart: barChart(slots, r.Step, bars)}
	for k, a := range series {
		totals.Released += a.totals.Released
		totals.Partial += a.totals.Partial
		totals.Denied += a.totals.Denied
		body.Series = append(body.Series, seriesRow{Actor: k.actor, Label: actorLabel(k.actor, names), Purpose: k.purpose,
			Totals: a.totals, Spark: sparkline(a.up, a.down)})
	}
	sort.Slice(body.Series, func(i, j int) bool {
		a, b := body.Series[i], body.Series[j]
		if a.Totals.total() != b.Totals.total() {
			return a.Totals.total() > b.Totals.total()
		}
		return a.Label+a.Purpose < b.Label+b.Purpose
	})
	for i, s := range slots {
		if bars[i].total() > 0 {
			body.Slots = append(body.Slots, slotRow{Start: s, stack: bars[i]})
		}
	}
	body.Totals, body.HasData = totals, totals.total() > 0
	body.Status = u.CheckAudit(ctx)
	d := u.data(c, "overview", "Overview")
	d.Body = body
	return u.render(c, "overview", d)
}

// ---------------------------------------------------------------------------
// Filters

// filterForm is the explorer's filter as typed, for refilling the form and
// building links.
type filterForm struct {
	Partner, Purpose, Outcome, Subject, From, To string
}

func (f filterForm) query(extra ...string) string {
	return query(append([]string{"partner", f.Partner, "purpose", f.Purpose, "outcome", f.Outcome,
		"subject", f.Subject, "from", f.From, "to", f.To}, extra...)...)
}

// Empty reports whether no filter is set.
func (f filterForm) Empty() bool { return f == filterForm{} }

var (
	reActor   = regexp.MustCompile(`^[a-z]{1,20}:[A-Za-z0-9_.\-]{1,80}$`)
	rePurpose = regexp.MustCompile(`^[a-z][a-z0-9_,]{0,63}$`) // consent entries join purposes: "notice,marketing"
	reSubject = regexp.MustCompile(`^sub_[A-Za-z0-9_\-]{1,64}$`)
	outcomes  = []string{audit.OutcomeReleased, audit.OutcomePartial, audit.OutcomeDenied, audit.OutcomeDone, audit.OutcomeFailed}
)

// parseTime reads a time from a datetime-local input (UTC) or RFC 3339.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseFilter reads the audit filter from the query string. Values that
// are not what the field holds are refused and not echoed back: a phone
// number typed into the subject box must go no further.
func parseFilter(c *fiber.Ctx) (broker.AuditFilter, filterForm, error) {
	ff := filterForm{Partner: strings.TrimSpace(c.Query("partner")), Purpose: strings.TrimSpace(c.Query("purpose")),
		Outcome: strings.TrimSpace(c.Query("outcome")), Subject: strings.TrimSpace(c.Query("subject")),
		From: strings.TrimSpace(c.Query("from")), To: strings.TrimSpace(c.Query("to"))}
	f := broker.AuditFilter{Actor: ff.Partner, Purpose: ff.Purpose, Outcome: ff.Outcome, Subject: ff.Subject}
	switch {
	case ff.Partner != "" && !reActor.MatchString(ff.Partner):
		ff.Partner = ""
		return f, ff, broker.Errorf(broker.EInvalid, "Choose the partner from the list.")
	case ff.Purpose != "" && !rePurpose.MatchString(ff.Purpose):
		ff.Purpose = ""
		return f, ff, broker.Errorf(broker.EInvalid, "Choose the purpose from the list.")
	case ff.Outcome != "" && !slices.Contains(outcomes, ff.Outcome):
		ff.Outcome = ""
		return f, ff, broker.Errorf(broker.EInvalid, "Choose the outcome from the list.")
	case ff.Subject != "" && !reSubject.MatchString(ff.Subject):
		ff.Subject = ""
		return f, ff, broker.Errorf(broker.EInvalid,
			"The subject filter takes a pseudonym (sub_…). To find a shopper by phone number, use the Subject desk.")
	}
	for _, t := range []struct {
		raw *string
		dst *time.Time
	}{{&ff.From, &f.From}, {&ff.To, &f.To}} {
		if *t.raw == "" {
			continue
		}
		v, ok := parseTime(*t.raw)
		if !ok || len(*t.raw) > 40 {
			*t.raw = ""
			return f, ff, broker.Errorf(broker.EInvalid, "Times are dates and times in UTC, like 2026-11-21T18:30.")
		}
		*t.dst = v
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, ff, broker.Errorf(broker.EInvalid, "The start of the time range must be before its end.")
	}
	return f, ff, nil
}

// filterOptions are the choices of the filter selects.
type filterOptions struct {
	Actors   []option
	Purposes []option
	Outcomes []option
}

func (u auditPages) filterOptions(names map[string]string) filterOptions {
	var fo filterOptions
	for actor, name := range names {
		fo.Actors = append(fo.Actors, option{actor, name + " (" + kindOf(actor) + ")"})
	}
	sort.Slice(fo.Actors, func(i, j int) bool { return fo.Actors[i].Label < fo.Actors[j].Label })
	fo.Actors = append(fo.Actors, option{"shopper:chat", "Shopper's chat"})
	purposes := []string{}
	for _, p := range broker.Purposes {
		purposes = append(purposes, string(p))
	}
	// And the purposes of entries that are not releases: consent changes,
	// erasures, officers' own actions.
	purposes = append(purposes, "notice", "erasure", string(purposeDSR), string(purposeAccess), string(purposeReview))
	for _, p := range purposes {
		fo.Purposes = append(fo.Purposes, option{p, strings.ReplaceAll(p, "_", " ")})
	}
	for _, o := range outcomes {
		fo.Outcomes = append(fo.Outcomes, option{o, o})
	}
	return fo
}

// ---------------------------------------------------------------------------
// Explorer

type entryRow struct {
	audit.Entry
	ActorLabel string
}

type explorerBody struct {
	F       filterForm
	Options filterOptions
	Rows    []entryRow
	Next    string
	First   string
	CSV     string
	Error   string
	Paged   bool
}

const pageSize = 50

func (u auditPages) explorer(c *fiber.Ctx) error {
	ctx := c.UserContext()
	names := u.actorNames(ctx)
	f, ff, ferr := parseFilter(c)
	body := explorerBody{F: ff, Options: u.filterOptions(names)}
	d := u.data(c, "audit", "Audit log")
	d.Body = &body
	if ferr != nil {
		body.Error = broker.ErrorMessage(ferr)
		return u.renderStatus(c, fiber.StatusBadRequest, "audit", d)
	}
	cursor := c.Query("cursor")
	if len(cursor) > 200 {
		return broker.Errorf(broker.EInvalid, "That page link is not valid.")
	}
	entries, next, err := u.d.Audit.Entries(ctx, f, cursor, pageSize)
	if err != nil {
		if broker.ErrorCode(err) == broker.EInvalid {
			body.Error = broker.ErrorMessage(err)
			return u.renderStatus(c, fiber.StatusBadRequest, "audit", d)
		}
		return err
	}
	for _, e := range entries {
		body.Rows = append(body.Rows, entryRow{Entry: e, ActorLabel: actorLabel(e.Actor, names)})
	}
	if next != "" {
		body.Next = "/ui/audit" + ff.query("cursor", next)
	}
	body.Paged = cursor != ""
	body.First = "/ui/audit" + ff.query()
	body.CSV = "/ui/reports/audit.csv" + ff.query()
	return u.render(c, "audit", d)
}

// ---------------------------------------------------------------------------
// Entry detail

type entryBody struct {
	Entry    entryRow
	Leaf     string
	Proof    proofView
	Status   CheckStatus
	Checked  bool // a proof was attempted against a verified checkpoint
	Back     string
	Subject  string // link to the subject's entries
	Decision string
}

func (u auditPages) entry(c *fiber.Ctx) error {
	ctx := c.UserContext()
	idx, err := strconv.ParseUint(c.Params("index"), 10, 63)
	if err != nil {
		return broker.Errorf(broker.ENotFound, "There is no such entry.")
	}
	e, err := u.d.Audit.Entry(ctx, idx)
	if broker.IsNotFound(err) {
		return broker.Errorf(broker.ENotFound, "There is no entry %d in the log (yet).", idx)
	}
	if err != nil {
		return err
	}
	leaf, _ := e.Canonical()
	body := entryBody{Entry: entryRow{Entry: e, ActorLabel: actorLabel(e.Actor, u.actorNames(ctx))}, Leaf: string(leaf),
		Back: "/ui/audit"}
	if e.Subject != "" {
		body.Subject = "/ui/audit" + query("subject", e.Subject)
	}
	body.Status = u.CheckAudit(ctx)
	switch {
	case body.Status.OK && body.Status.Empty:
		lh := audit.LeafHash(leaf)
		body.Proof = proofView{Pending: true, LeafHash: hex.EncodeToString(lh)}
	case body.Status.OK:
		body.Proof = proveEntry(ctx, u.d.Audit, e, body.Status.Checkpoint)
		body.Checked = true
	}
	d := u.data(c, "audit", "Entry "+strconv.FormatUint(idx, 10))
	d.Body = body
	if body.Proof.Pending {
		// No script: the page reloads itself until a checkpoint covers
		// the entry (checkpoints are signed within a second or so).
		c.Set("Refresh", "2")
	}
	return u.render(c, "entry", d)
}

// ---------------------------------------------------------------------------
// Data flows

type flowsBody struct {
	Fields  []string
	Rows    []flowRow
	Outside int
	Policy  string
}

type flowRow struct {
	Actor, Label, Purpose string
	Cells                 []flowCell
	Total                 int64
}

type flowCell struct {
	N       int64
	First   time.Time
	Last    time.Time
	Outside bool // released, but the policy in force would not release it
}

// allowedBy returns kind → purpose → field → transform of the policy.
func allowedBy(pv policies.View) map[string]map[string]map[string]string {
	m := map[string]map[string]map[string]string{}
	for _, p := range pv.Purposes {
		for _, g := range p.Grants {
			if m[g.Kind] == nil {
				m[g.Kind] = map[string]map[string]string{}
			}
			m[g.Kind][p.Name] = g.Fields
		}
	}
	return m
}

func (u auditPages) flows(c *fiber.Ctx) error {
	ctx := c.UserContext()
	cells, err := u.d.Audit.Flows(ctx)
	if err != nil {
		return err
	}
	names := u.actorNames(ctx)
	var allowed map[string]map[string]map[string]string
	body := flowsBody{}
	if u.d.Policy != nil {
		pv := u.d.Policy()
		allowed, body.Policy = allowedBy(pv), pv.Revision
	}
	fieldSet := map[string]bool{}
	type key struct{ actor, purpose string }
	rows := map[key]map[string]broker.ReleasedCell{}
	for _, f := range cells {
		fieldSet[f.Field] = true
		k := key{f.Actor, f.Purpose}
		if rows[k] == nil {
			rows[k] = map[string]broker.ReleasedCell{}
		}
		rows[k][f.Field] = f
	}
	for f := range fieldSet {
		body.Fields = append(body.Fields, f)
	}
	sort.Strings(body.Fields)
	for k, byField := range rows {
		r := flowRow{Actor: k.actor, Label: actorLabel(k.actor, names), Purpose: k.purpose}
		for _, field := range body.Fields {
			f, ok := byField[field]
			if !ok {
				r.Cells = append(r.Cells, flowCell{})
				continue
			}
			cell := flowCell{N: f.Count, First: f.First, Last: f.Last}
			if allowed != nil {
				if _, ok := allowed[kindOf(k.actor)][k.purpose][field]; !ok {
					cell.Outside = true
					body.Outside++
				}
			}
			r.Total += f.Count
			r.Cells = append(r.Cells, cell)
		}
		body.Rows = append(body.Rows, r)
	}
	sort.Slice(body.Rows, func(i, j int) bool {
		a, b := body.Rows[i], body.Rows[j]
		if a.Label != b.Label {
			return a.Label < b.Label
		}
		return a.Purpose < b.Purpose
	})
	d := u.data(c, "flows", "Data flows")
	d.Body = body
	return u.render(c, "flows", d)
}

// ---------------------------------------------------------------------------
// Policies

type policiesBody struct {
	View    policies.View
	Columns []policyColumn // one per purpose and party kind
	Groups  []policyGroup  // the purposes over their columns
	Rows    []policyRow
	Sides   map[string]string
}

type policyColumn struct {
	Purpose string
	Kind    string
	Scopes  []string
}

type policyGroup struct {
	Purpose string
	Span    int
}

type policyRow struct {
	Field    policies.FieldView
	Cells    []string // transform per column; "" withheld
	Released bool     // some column releases it
}

// policies shows the policy as one matrix — fields down, purpose and party
// kind across, the transform in each cell — and the purposes' lawful
// bases, consent, states and retention beside it.
func (u auditPages) policies(c *fiber.Ctx) error {
	if u.d.Policy == nil {
		return broker.Errorf(broker.ENotFound, "No policy is configured.")
	}
	pv := u.d.Policy()
	body := policiesBody{View: pv, Sides: map[string]string{}}
	for _, k := range pv.PartyKinds {
		body.Sides[k.Kind] = k.Side
	}
	for _, p := range pv.Purposes {
		grants := slices.Clone(p.Grants)
		sort.Slice(grants, func(i, j int) bool { return grants[i].Kind < grants[j].Kind })
		for _, g := range grants {
			body.Columns = append(body.Columns, policyColumn{Purpose: p.Name, Kind: g.Kind, Scopes: g.Scopes})
		}
		if len(grants) > 0 {
			body.Groups = append(body.Groups, policyGroup{Purpose: p.Name, Span: len(grants)})
		}
	}
	grants := map[[2]string]map[string]string{}
	for _, p := range pv.Purposes {
		for _, g := range p.Grants {
			grants[[2]string{p.Name, g.Kind}] = g.Fields
		}
	}
	for _, f := range pv.Fields {
		row := policyRow{Field: f}
		for _, col := range body.Columns {
			t := grants[[2]string{col.Purpose, col.Kind}][f.Name]
			row.Cells = append(row.Cells, t)
			row.Released = row.Released || t != ""
		}
		body.Rows = append(body.Rows, row)
	}
	// Released fields first, the never-released (phone, name, chat,
	// retailer-internal) after: both in catalogue order.
	sort.SliceStable(body.Rows, func(i, j int) bool { return body.Rows[i].Released && !body.Rows[j].Released })
	d := u.data(c, "policies", "Policies")
	d.Body = body
	return u.render(c, "policies", d)
}

// ---------------------------------------------------------------------------
// Reports

type reportsBody struct {
	Record *policies.ProcessingRecord
	// Grievances is the grievance desk's service level, when it runs.
	Grievances *commerce.SLAReport
	F          filterForm
	Options    filterOptions
	Error      string
}

func (u auditPages) reports(c *fiber.Ctx) error {
	ctx := c.UserContext()
	body := reportsBody{Options: u.filterOptions(u.actorNames(ctx))}
	if u.d.Processing != nil {
		rec := u.d.Processing(ctx)
		body.Record = &rec
	}
	if u.d.Desk != nil {
		sla, err := u.d.Desk.SLA(ctx)
		if err != nil {
			return err
		}
		body.Grievances = &sla
	}
	d := u.data(c, "reports", "Reports")
	d.Body = body
	return u.render(c, "reports", d)
}

// auditCSV exports the audit log as CSV, the explorer's filters applied.
// The export is itself audited before a byte of it is sent.
func (u auditPages) auditCSV(c *fiber.Ctx) error {
	f, ff, err := parseFilter(c)
	if err != nil {
		return err
	}
	cur, _ := u.current(c)
	reason := "audit log export (CSV)"
	if desc := describeFilter(ff); desc != "" {
		reason += ": " + desc
	}
	if _, err := u.record(c.UserContext(), "officer:"+cur.officer.ID, "export_audit", purposeReview, ff.Subject, "audit_log",
		audit.OutcomeDone, reason); err != nil {
		return err
	}
	name := "sieve-audit-" + u.d.Now().UTC().Format("20060102-150405") + ".csv"
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	log := u.d.Log
	exp := u.d.Audit
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		// The request's context ends with the handler; the stream runs
		// after it, bounded on its own.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := exp.ExportCSV(ctx, w, f); err != nil {
			log.Error("dashboard CSV export failed", "err", err)
			_, _ = w.WriteString("\n# export incomplete: an error occurred (see the broker's log)\n")
		}
		_ = w.Flush()
	})
	return nil
}

// describeFilter summarises a filter for an audit entry's reason (the
// subject goes in the entry's subject field instead).
func describeFilter(ff filterForm) string {
	var parts []string
	for _, p := range []struct{ k, v string }{{"partner", ff.Partner}, {"purpose", ff.Purpose},
		{"outcome", ff.Outcome}, {"from", ff.From}, {"to", ff.To}} {
		if p.v != "" {
			parts = append(parts, p.k+"="+p.v)
		}
	}
	if ff.Subject != "" {
		parts = append(parts, "subject filter")
	}
	return strings.Join(parts, ", ")
}
