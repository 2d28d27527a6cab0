package commerce

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// BreachReport is the Board intimation and the 72-hour report of a breach
// (DPDP Rules 2025, Rule 7(2)(a) and (b)(i)–(vi)), with the GDPR Art. 33(3)
// variant. Every field is computed from the breach record and the verified
// log, or names what the officer must add; no personal data.
type BreachReport struct {
	BreachID    string    `json:"breach_id"`
	GeneratedAt time.Time `json:"generated_at"`
	AwareAt     time.Time `json:"aware_at"`
	BoardDue    time.Time `json:"board_report_due"`
	// HoursLeft until the 72-hour report is due (negative: overdue).
	HoursLeft float64 `json:"hours_left"`
	Contact   string  `json:"contact"`
	// Intimation is Rule 7(2)(a): description and likely impact, without delay.
	Intimation BreachIntimation `json:"intimation_rule_7_2_a"`
	// Report is Rule 7(2)(b), within 72 hours.
	Report BreachFullReport `json:"report_rule_7_2_b"`
	// GDPR is the Art. 33(3) notification to a supervisory authority.
	GDPR BreachGDPR `json:"gdpr_art_33"`
}

// BreachIntimation is Rule 7(2)(a).
type BreachIntimation struct {
	Description  string   `json:"description"`
	Nature       string   `json:"nature"`
	Extent       string   `json:"extent"`
	Timing       string   `json:"timing"`
	Location     string   `json:"location"`
	LikelyImpact string   `json:"likely_impact"`
	Affected     int      `json:"affected_data_principals"`
	Categories   []string `json:"data_categories"`
}

// BreachFullReport is Rule 7(2)(b)(i)–(vi).
type BreachFullReport struct {
	UpdatedDetails    string            `json:"i_updated_details"`
	Facts             string            `json:"ii_facts_circumstances_reasons"`
	Mitigation        string            `json:"iii_mitigation"`
	Findings          string            `json:"iv_findings_on_person_responsible"`
	Remedial          string            `json:"v_remedial_measures"`
	NoticesReport     string            `json:"vi_report_on_intimations"`
	NoticeStatuses    map[string]int    `json:"notice_statuses"`
	Recipients        []BreachRecipient `json:"recipients"`
	Releases          int               `json:"releases"`
	VerifiedLogSize   uint64            `json:"verified_log_size"`
	WindowFrom        time.Time         `json:"window_from"`
	WindowTo          time.Time         `json:"window_to"`
	NotificationsSent *time.Time        `json:"notices_sent_at"`
}

// BreachGDPR is GDPR Art. 33(3)(a)–(d).
type BreachGDPR struct {
	Nature              string   `json:"a_nature"`
	CategoriesOfData    []string `json:"a_categories_of_personal_data"`
	ApproxSubjects      int      `json:"a_approximate_data_subjects"`
	ApproxRecords       int      `json:"a_approximate_records"`
	DPOContact          string   `json:"b_dpo_contact"`
	LikelyConsequences  string   `json:"c_likely_consequences"`
	MeasuresTaken       string   `json:"d_measures_taken_or_proposed"`
	WithinSeventyTwoHrs bool     `json:"notified_within_72h"`
}

// Report builds the breach's reports at now.
func (w *Workbench) Report(b Breach, now time.Time) BreachReport {
	contact := w.Contact
	if contact == "" {
		contact = DefaultDPOContact
	}
	nature := breachNature[b.SummaryCode]
	var recips []string
	for _, r := range b.Recipients {
		name := r.Name
		if name == "" {
			name = r.Party
		}
		recips = append(recips, fmt.Sprintf("%s (%s): %d releases about %d data principals", name, r.Kind, r.Releases, r.Subjects))
	}
	scope := "every recipient"
	if b.Partner != "" {
		scope = "recipient " + b.Partner
	}
	if b.Category != "" {
		scope += ", category " + b.Category
	}
	extent := fmt.Sprintf("%d data principals; %d releases of %s to %s between %s and %s (from the audit log verified at size %d)",
		b.Affected, b.Releases, strings.Join(b.Categories, ", "), scope, b.From.Format(time.RFC3339), b.To.Format(time.RFC3339), b.LogSize)
	impact := "contact, phishing or impersonation of the store using the released " + strings.Join(b.Categories, ", ") +
		"; no payment credentials or chat contents are released by the broker"
	mitigation := "the affected recipient's access is to be suspended (brokerctl partner disable), its credentials rotated, " +
		"and deletion of the released data requested with a signed recipient notice"
	sent := 0
	for st, n := range b.Notices {
		if st != "pending" && st != "unreachable" {
			sent += n
		}
	}
	noticeReport := fmt.Sprintf("%d of %d affected data principals sent the Rule 7(1) notice; delivery: %s",
		sent, b.Affected, statusLine(b.Notices))
	if b.NotifiedAt == nil {
		noticeReport = fmt.Sprintf("notices not yet sent to the %d affected data principals", b.Affected)
	}
	due := b.AwareAt.Add(BreachBoardWindow)
	return BreachReport{BreachID: b.ID, GeneratedAt: now.UTC(), AwareAt: b.AwareAt, BoardDue: due,
		HoursLeft: due.Sub(now).Hours(), Contact: contact,
		Intimation: BreachIntimation{Description: nature + " (" + b.SummaryCode + ")", Nature: nature, Extent: extent,
			Timing: fmt.Sprintf("occurred between %s and %s; became aware at %s", b.From.Format(time.RFC3339),
				b.To.Format(time.RFC3339), b.AwareAt.Format(time.RFC3339)),
			Location: "at the recipient(s): " + strings.Join(recips, "; "), LikelyImpact: impact, Affected: b.Affected,
			Categories: b.Categories},
		Report: BreachFullReport{UpdatedDetails: extent, Facts: nature + "; the affected set is every release the verified " +
			"audit log records in the window, " + scope,
			Mitigation: mitigation, Findings: "to be completed by the officer: the person or party responsible, as established",
			Remedial: "to be completed by the officer: measures to prevent a recurrence", NoticesReport: noticeReport,
			NoticeStatuses: b.Notices, Recipients: b.Recipients, Releases: b.Releases, VerifiedLogSize: b.LogSize,
			WindowFrom: b.From, WindowTo: b.To, NotificationsSent: b.NotifiedAt},
		GDPR: BreachGDPR{Nature: nature, CategoriesOfData: b.Categories, ApproxSubjects: b.Affected, ApproxRecords: b.Releases,
			DPOContact: contact, LikelyConsequences: impact, MeasuresTaken: mitigation, WithinSeventyTwoHrs: !now.After(due)},
	}
}

func statusLine(m map[string]int) string {
	var parts []string
	for _, st := range []string{"queued", "sent", "delivered", "read", "failed", "unreachable", "pending"} {
		if m[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, m[st]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

var breachHTML = template.Must(template.New("breach").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Breach {{.BreachID}}</title></head><body>
<h1>Personal data breach {{.BreachID}}</h1>
<p>Aware at {{.AwareAt.Format "2006-01-02 15:04 MST"}}; 72-hour report due {{.BoardDue.Format "2006-01-02 15:04 MST"}}
({{printf "%.1f" .HoursLeft}} hours left). Contact: {{.Contact}}.</p>
<h2>Intimation to the Data Protection Board (DPDP Rules 2025, Rule 7(2)(a))</h2>
<dl><dt>Description</dt><dd>{{.Intimation.Description}}</dd><dt>Nature</dt><dd>{{.Intimation.Nature}}</dd>
<dt>Extent</dt><dd>{{.Intimation.Extent}}</dd><dt>Timing</dt><dd>{{.Intimation.Timing}}</dd>
<dt>Location</dt><dd>{{.Intimation.Location}}</dd><dt>Likely impact</dt><dd>{{.Intimation.LikelyImpact}}</dd></dl>
<h2>Report within 72 hours (Rule 7(2)(b))</h2>
<dl><dt>(i) Updated details</dt><dd>{{.Report.UpdatedDetails}}</dd>
<dt>(ii) Facts, circumstances and reasons</dt><dd>{{.Report.Facts}}</dd>
<dt>(iii) Mitigation</dt><dd>{{.Report.Mitigation}}</dd>
<dt>(iv) Findings on the person responsible</dt><dd>{{.Report.Findings}}</dd>
<dt>(v) Remedial measures</dt><dd>{{.Report.Remedial}}</dd>
<dt>(vi) Report on intimations to data principals</dt><dd>{{.Report.NoticesReport}}</dd></dl>
<table><tr><th>Recipient</th><th>Kind</th><th>Releases</th><th>Data principals</th></tr>
{{range .Report.Recipients}}<tr><td>{{if .Name}}{{.Name}}{{else}}{{.Party}}{{end}}</td><td>{{.Kind}}</td><td>{{.Releases}}</td><td>{{.Subjects}}</td></tr>
{{end}}</table>
<h2>GDPR Art. 33(3) notification</h2>
<dl><dt>(a) Nature</dt><dd>{{.GDPR.Nature}}; about {{.GDPR.ApproxSubjects}} data subjects and {{.GDPR.ApproxRecords}} records</dd>
<dt>(b) DPO</dt><dd>{{.GDPR.DPOContact}}</dd><dt>(c) Likely consequences</dt><dd>{{.GDPR.LikelyConsequences}}</dd>
<dt>(d) Measures</dt><dd>{{.GDPR.MeasuresTaken}}</dd></dl>
</body></html>
`))

// HTML renders the report as a standalone page.
func (r BreachReport) HTML() ([]byte, error) {
	var b bytes.Buffer
	err := breachHTML.Execute(&b, r)
	return b.Bytes(), err
}
