package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/cmd/internal/wire"
	"github.com/sieve-broker/sieve/commerce"
)

// grievance list shows a chat complaint's ticket with its countdown; resolve
// takes only an outcome code, once, and queues the outcome to the shopper.
func TestGrievanceCommands(t *testing.T) {
	w := newWorld(t)
	const waID = "919811113333"
	w.seedShopper(waID)
	sys := w.open()
	ctx := context.Background()
	row, err := sys.Rights.ResolveWaID(ctx, waID)
	if err != nil {
		t.Fatal(err)
	}
	var g commerce.Grievance
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		g, _, err = sys.Desk.Open(ctx, row.ID, "", "my refund never came")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := w.must("grievance", "list", "--open")
	if !strings.Contains(out, g.ID) || !strings.Contains(out, "open") || strings.Contains(out, "refund") {
		t.Errorf("grievance list --open:\n%s", out)
	}
	for _, bad := range [][]string{
		{"grievance", "resolve", g.ID, "--outcome", "sorted it out"},
		{"grievance", "resolve", "--outcome", commerce.OutcomeInFavour},
		{"grievance", "list", "--open", "--status", "resolved"},
	} {
		if _, errOut, code := w.ctl(nil, bad...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d %s", bad, code, errOut)
		}
	}
	if _, _, code := w.ctl(nil, "grievance", "resolve", "grv_nope", "--outcome", commerce.OutcomeInFavour, "--operator", "asha"); code == 0 {
		t.Error("resolved an unknown ticket")
	}
	out = w.must("grievance", "resolve", g.ID, "--outcome", commerce.OutcomeExplained, "--operator", "asha")
	if !strings.Contains(out, "in time") {
		t.Errorf("resolve: %s", out)
	}
	if _, _, code := w.ctl(nil, "grievance", "resolve", g.ID, "--outcome", commerce.OutcomeInFavour, "--operator", "asha"); code == 0 {
		t.Error("resolved twice")
	}
	var list struct {
		Grievances []commerce.Grievance `json:"grievances"`
		SLA        commerce.SLAReport   `json:"sla"`
	}
	if err := json.Unmarshal([]byte(w.must("grievance", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Grievances) != 1 || list.Grievances[0].Outcome != commerce.OutcomeExplained || list.SLA.ShareInTime != 1 {
		t.Errorf("after resolve: %+v", list)
	}
	if n := countRows(t, sys, `SELECT count(*) FROM outbox WHERE subject_id = $1 AND kind = 'whatsapp'`, row.ID); n != 1 {
		t.Errorf("%d outcome messages queued", n)
	}
}

// breach open/report/notify over a verified log; bad input is a usage error.
func TestBreachCommands(t *testing.T) {
	w := newWorld(t)
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	w.must("partner", "create", "--name", "Fresh Mart", "--kind", "retailer", "--scopes", "orders:read")
	for _, bad := range [][]string{
		{"breach", "open", "--from", "yesterday", "--to", to, "--summary-code", "other"},
		{"breach", "open", "--from", from, "--to", to},
		{"breach", "open", "--from", from, "--to", to, "--summary-code", "other", "--partner", "Nobody"},
		{"breach", "report", "brc_x", "--format", "pdf"},
	} {
		if _, errOut, code := w.ctl(nil, append(bad, "--operator", "asha")...); code != 2 {
			t.Errorf("%v: exit %d %s", bad, code, errOut)
		}
	}
	if _, _, code := w.ctl(nil, "breach", "open", "--from", from, "--to", to, "--summary-code", "breach of trust", "--operator", "asha"); code == 0 {
		t.Error("free-text summary accepted")
	}
	out := w.must("breach", "open", "--from", from, "--to", to, "--partner", "Fresh Mart", "--summary-code", "partner_compromise", "--operator", "asha")
	id := strings.Fields(out)[0]
	if !strings.HasPrefix(id, "brc_") || !strings.Contains(out, "affected shoppers: 0") {
		t.Fatalf("breach open:\n%s", out)
	}
	if page := w.must("breach", "report", id, "--format", "html"); !strings.Contains(page, "Rule 7(2)(b)") {
		t.Errorf("html report:\n%s", page)
	}
	var rep commerce.BreachReport
	if err := json.Unmarshal([]byte(w.must("breach", "report", id, "--format", "json")), &rep); err != nil || rep.BreachID != id {
		t.Errorf("json report: %v %+v", err, rep)
	}
	if out := w.must("breach", "notify", id, "--operator", "asha"); !strings.Contains(out, "0 notices queued") {
		t.Errorf("notify: %s", out)
	}
}

func countRows(t *testing.T, sys *wire.System, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := sys.DB.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// nominee event/access/erase: codes only, and only for the named number
// after the event.
func TestNomineeCommands(t *testing.T) {
	w := newWorld(t)
	const waID, nominee = "919811114444", "919811118888"
	w.seedShopper(waID)
	w.seedShopper(nominee)
	sys := w.open()
	ctx := context.Background()
	row, err := sys.Rights.ResolveWaID(ctx, waID)
	if err != nil {
		t.Fatal(err)
	}
	nrow, err := sys.Rights.ResolveWaID(ctx, nominee)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		r, err := sys.Nominees.Nominate(ctx, row.ID, "", "+"+nominee)
		id = strings.TrimSuffix(strings.Fields(strings.SplitAfter(r.Body, "(ref ")[1])[0], ").")
		return err
	})
	if err != nil || !strings.HasPrefix(id, "nom_") {
		t.Fatalf("nominate: %q %v", id, err)
	}
	if _, _, code := w.ctl(nil, "nominee", "event", id, "--event", "death", "--operator", "asha"); code == 0 {
		t.Error("event recorded before the nominee confirmed")
	}
	err = sys.DB.InTx(ctx, func(ctx context.Context) error {
		_, err := sys.Nominees.Answer(ctx, nrow.ID, commerce.NomineeConfirmPrefix+id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, code := w.ctl(nil, "nominee", "event", id, "--event", "gone", "--operator", "asha"); code == 0 {
		t.Error("free-text event accepted")
	}
	if _, _, code := w.ctl(nil, "nominee", "access", id, "--nominee-wa", nominee, "--operator", "asha"); code == 0 {
		t.Error("access before the event")
	}
	w.must("nominee", "event", id, "--event", "death", "--operator", "asha")
	if _, _, code := w.ctl(nil, "nominee", "access", id, "--nominee-wa", "919800000000", "--operator", "asha"); code == 0 {
		t.Error("access for another number")
	}
	var ex commerce.Export
	if err := json.Unmarshal([]byte(w.must("nominee", "access", id, "--nominee-wa", "+"+nominee, "--operator", "asha")), &ex); err != nil || ex.Subject == "" {
		t.Fatalf("access: %+v %v", ex, err)
	}
	w.must("nominee", "erase", id, "--nominee-wa", nominee, "--operator", "asha")
	if _, err := sys.Rights.ResolveWaID(ctx, waID); err == nil {
		t.Error("the shopper is not erased")
	}
	if n := countRows(t, sys, `SELECT count(*) FROM nominations WHERE subject_id = $1`, row.ID); n != 0 {
		t.Errorf("%d nominations survive the erasure", n)
	}
}
