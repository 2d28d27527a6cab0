package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// complain posts a signed webhook with a complaint from the shopper, as the
// Cloud API would, and waits for its ticket.
func (w *dashWorld) complain(s dashShopper, text string) {
	w.t.Helper()
	body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"100000000000000","changes":[{"field":"messages","value":`+
		`{"messaging_product":"whatsapp","metadata":{"display_phone_number":"919000000001","phone_number_id":%q},`+
		`"contacts":[{"profile":{"name":%q},"wa_id":%q}],"messages":[{"from":%q,"id":"wamid.DESK%d","timestamp":"%d","type":"text","text":{"body":%q}}]}}]}]}`,
		whatsapp.DevPhoneNumberID, s.Name, s.WaID, s.WaID, time.Now().UnixNano(), time.Now().Unix(), text)
	req, _ := http.NewRequest("POST", w.base+"/webhooks/whatsapp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", whatsapp.Sign([]byte(whatsapp.DevAppSecret), []byte(body)))
	w.doJSON(req, http.StatusOK, nil)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := w.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM grievances`).Scan(&n); err == nil && n > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatal("the complaint opened no ticket")
}

// TestDeskBrowser walks the grievance desk and the breach workbench in a
// real browser: a complaint from the chat is on the desk with its
// countdown, its text opens on the ticket page, it is resolved from there;
// a breach of the retailer over the last hours finds the shopper it
// received, shows the 72-hour countdown and, once notified, the progress.
func TestDeskBrowser(t *testing.T) {
	w := newDashWorld(t)
	exe := dashChromium(t, w.root)
	w.shop(asha)
	w.partnerTraffic()
	w.complain(asha, "complaint The rider was rude and the milk had split")
	w.waitIntegrated()
	b := newDashBrowser(t, exe)

	b.do("sign in", chromedp.Navigate(w.base+"/ui/login"), chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("name"), w.officer),
		chromedp.SendKeys(chromedp.ID("password"), w.password),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("new-password")))
	chosen := "my own passphrase for the desk"
	b.do("choose a password",
		chromedp.SendKeys(chromedp.ID("current-password"), w.password),
		chromedp.SendKeys(chromedp.ID("new-password"), chosen),
		chromedp.SendKeys(chromedp.ID("new-password-again"), chosen),
		chromedp.Click(chromedp.ID("change-password")),
		chromedp.WaitVisible(chromedp.ID("checkpoint-status")))
	w.password = chosen

	// The desk: the ticket with its countdown; the list never shows the text.
	b.do("grievances", chromedp.Navigate(w.base+"/ui/grievances"), chromedp.WaitVisible(chromedp.ID("grievance-table")))
	table := b.text("#grievance-table")
	if !strings.Contains(table, "grv_") || !strings.Contains(table, "left") || strings.Contains(table, "rude") {
		t.Errorf("grievance table %q", table)
	}
	if got := b.text("#sla-open"); got != "1" {
		t.Errorf("open tickets %q", got)
	}
	b.shot("grievances")
	b.do("overdue filter", chromedp.Click(chromedp.ID("filter-overdue")), chromedp.WaitVisible(chromedp.ID("no-grievances")))
	b.do("open filter", chromedp.Click(chromedp.ID("filter-open")), chromedp.WaitVisible(chromedp.CSS("a.grievance-link")))
	b.do("open the ticket", chromedp.Click(chromedp.CSS("a.grievance-link")), chromedp.WaitVisible(chromedp.ID("grievance-text")))
	if got := b.text("#grievance-text"); !strings.Contains(got, "rude") {
		t.Errorf("ticket text %q", got)
	}
	b.shot("grievance")
	b.do("resolve", chromedp.SetValue(chromedp.ID("outcome"), "resolved_in_favour"), chromedp.Click(chromedp.ID("resolve")),
		chromedp.WaitVisible(chromedp.ID("grievance-outcome")))
	if got := b.text("#grievance-outcome"); !strings.Contains(got, "resolved in favour") {
		t.Errorf("outcome %q", got)
	}
	b.shot("grievance-resolved")

	// The workbench: a breach of the retailer over the last hours.
	from := time.Now().UTC().Add(-2 * time.Hour).Format("2006-01-02T15:04:05")
	to := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04:05")
	b.do("breaches", chromedp.Navigate(w.base+"/ui/breaches"), chromedp.WaitVisible(chromedp.ID("breach-form")),
		chromedp.SetValue(chromedp.ID("breach-from"), from),
		chromedp.SetValue(chromedp.ID("breach-to"), to),
		chromedp.SetValue(chromedp.ID("breach-partner"), w.creds.Retailer["client_id"]),
		chromedp.SetValue(chromedp.ID("breach-summary"), "partner_compromise"))
	b.shot("breach-form")
	b.do("open the breach", chromedp.Click(chromedp.ID("breach-open")), chromedp.WaitVisible(chromedp.ID("breach-affected")))
	b.waitURL("/ui/breaches/brc_")
	if got := b.text("#breach-affected"); got != "1" {
		t.Errorf("affected %q, want the one shopper the retailer received", got)
	}
	if got := b.text("#breach-countdown"); !strings.Contains(got, "hours left") {
		t.Errorf("countdown %q", got)
	}
	b.shot("breach")
	// The page after the POST is the same URL: wait for what only it shows.
	b.do("notify", chromedp.Click(chromedp.ID("breach-notify")), chromedp.WaitVisible(chromedp.ID("breach-notified-at")))
	if got := b.text("#breach-progress"); !strings.Contains(got, "1/1") {
		t.Errorf("progress %q", got)
	}
	b.shot("breach-notified")
	b.do("report", chromedp.Click(chromedp.ID("breach-report")))
	b.waitURL("/report")
	b.do("report page", chromedp.WaitVisible(chromedp.CSS("h1")))
	if got := b.text("body"); !strings.Contains(got, "Rule 7(2)(b)") || !strings.Contains(got, "Art. 33") {
		t.Errorf("report page lacks its sections")
	}
	b.shot("breach-report")
	dashAssertNoPII(t, "broker log", w.logs.String(), asha, bala)
}
