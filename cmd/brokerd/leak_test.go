package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// The shopper of the leak test: every value is distinctive, so that a hit
// in a haystack of random-looking bytes is a leak, not a coincidence.
const (
	leakWa       = "919845061237"
	leakName     = "Tanvika Rajagopalan"
	leakStreet   = "Flat 4B, Tamarind Court, 17 Kodandarama Layout"
	leakAddress  = leakStreet + ", Bengaluru 560041"
	leakLat      = "12.93521"
	leakLong     = "77.62458"
	leakChat     = "Is the alphonso mango from Ratnagiri fresh today?"
	leakRelay    = "Leave it with the watchman Pattabhiraman"
	leakInternal = "picker Ravi, shelf Q7-ZETA"
	// A username user: WhatsApp withholds the number and sends a
	// business-scoped user id (country code, dot, opaque digits).
	leakBSUID = "IN.4820519736402815"
	// A minor and the parent they name (DPDP Act s. 9): the parent's
	// number is blind-indexed and sealed, never in plaintext.
	leakKid    = "919612470385"
	leakParent = "919731852046"
	// The phone user's own BSUID and parent BSUID (WhatsApp sends both
	// with the number), and the number and BSUID they change to.
	leakWaBSUID     = "IN.6391027458130624"
	leakParentBSUID = "IN.ENT.5173920846152937"
	leakNewWa       = "919731846250"
	leakNewBSUID    = "IN.7205813649270518"
)

// leakBSUIDMessage is a message from the username user (no from, no wa_id).
func leakBSUIDMessage(typ, payload string) string {
	return fmt.Sprintf(`"contacts":[{"profile":{"name":%q},"user_id":%q}],"messages":[{"from_user_id":%q,"id":%q,"timestamp":%s,"type":%q,%s}]`,
		leakName, leakBSUID, leakBSUID, wamidFor(leakBSUID), ts(), typ, payload)
}

// leakMessage is message() with the leak test's shopper name.
// The sender carries the number, the BSUID and the parent BSUID.
func leakMessage(typ, payload string) string {
	return fmt.Sprintf(`"contacts":[{"profile":{"name":%q},"wa_id":%q,"user_id":%q,"parent_user_id":%q}],"messages":[{"from":%q,"from_user_id":%q,"id":%q,"timestamp":%s,"type":%q,%s}]`,
		leakName, leakWa, leakWaBSUID, leakParentBSUID, leakWa, leakWaBSUID, wamidFor(leakWa), ts(), typ, payload)
}

func leakText(body string) string {
	return leakMessage("text", fmt.Sprintf(`"text":{"body":%q}`, body))
}

func leakReply(id string) string {
	kind := "button_reply"
	if strings.HasPrefix(id, "slot:") {
		kind = "list_reply"
	}
	return leakMessage("interactive", fmt.Sprintf(`"interactive":{"type":%q,%q:{"id":%q,"title":"x"}}`, kind, kind, id))
}

// needle is something that must not appear in plaintext.
type needle struct {
	what, s string
	// shopperPII is false for the retailer's internal note: it may be
	// kept in the database, but never in logs, metrics or the audit log.
	shopperPII bool
}

func leakNeedles() []needle {
	national := leakWa[2:] // 9845061237
	var ns []needle
	for _, v := range []string{leakWa, "+" + leakWa, national, "+91 " + national, "+91-" + national,
		national[:5] + " " + national[5:], "+91 " + national[:5] + " " + national[5:],
		national[:5] + "-" + national[5:], "+91-" + national[:5] + "-" + national[5:],
		national[:3] + " " + national[3:6] + " " + national[6:], "(+91) " + national[:5] + " " + national[5:]} {
		ns = append(ns, needle{"phone " + v, v, true})
	}
	return append(ns,
		needle{"profile name", leakName, true},
		needle{"surname", "Rajagopalan", true},
		needle{"first name", "Tanvika", true},
		needle{"street", "Tamarind Court", true},
		needle{"locality", "Kodandarama Layout", true},
		needle{"latitude", leakLat, true},
		needle{"longitude", leakLong, true},
		needle{"chat text", leakChat, true},
		needle{"chat words", "alphonso mango", true},
		needle{"chat place", "Ratnagiri", true},
		needle{"relayed chat", "Pattabhiraman", true},
		needle{"retailer's internal note", "Q7-ZETA", false},
		needle{"BSUID", leakBSUID, true},
		needle{"BSUID digits", leakBSUID[3:], true},
		needle{"minor's number", leakKid[2:], true},
		needle{"parent's number", leakParent[2:], true},
		needle{"parent's number as typed", "97318 52046", true},
		needle{"phone user's BSUID", leakWaBSUID, true},
		needle{"phone user's BSUID digits", leakWaBSUID[3:], true},
		needle{"parent BSUID", leakParentBSUID, true},
		needle{"parent BSUID digits", leakParentBSUID[7:], true},
		needle{"new phone", leakNewWa, true},
		needle{"new national number", leakNewWa[2:], true},
		needle{"new BSUID", leakNewBSUID, true},
		needle{"new BSUID digits", leakNewBSUID[3:], true},
	)
}

// digitsOnly keeps the decimal digits of s: a phone number written with
// any punctuation or spacing shows up in it.
func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestNoPersonalDataLeaks runs a shopper through a purchase, a status
// update with an internal note, a courier's relayed message, "my data"
// and a failed send, then searches the broker's logs, its /metrics, every
// audit entry and a dump of its database for the shopper's phone number
// (in any spelling), name, street address, location and chat text (SPEC §5
// rules 4 and 5: outside sealed records none of them appears in plaintext).
func TestNoPersonalDataLeaks(t *testing.T) {
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Some packages log through the default logger: capture that too.
	prev := slog.Default()
	slog.SetDefault(logger)
	t.Cleanup(func() { slog.SetDefault(prev) })
	h := newHarnessWith(t, harnessOpts{log: logger})

	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write"}})
	logi := h.partnerWith(token.PartnerSpec{Name: "Couriers", Kind: broker.KindLogistics,
		Scopes: []string{"delivery:read", "delivery:message"}})
	wa := leakWa

	// The purchase, with a question typed into the chat on the way.
	h.mustPost(leakText("Hi"))
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(leakReply(commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(leakReply(commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	h.mustPost(leakText(leakChat))
	h.waitIdle()
	h.mustPost(leakMessage("order", `"order":{"catalog_id":"100000000000002","product_items":[`+item("SKU-ATTA-5KG", 2, "289.5")+","+item("SKU-MILK-1L", 3, "64")+`]}`))
	h.next(wa, "cart summary", offers(commerce.IDCartConfirm))
	h.mustPost(leakReply(commerce.IDCartConfirm))
	h.next(wa, "location request", kindIs("location_request_message"))
	h.mustPost(leakMessage("location", fmt.Sprintf(`"location":{"latitude":%s,"longitude":%s,"name":"Home","address":%q}`,
		leakLat, leakLong, leakAddress)))
	slots := h.next(wa, "slot list", kindIs("list"))
	if len(slots.replyIDs()) == 0 {
		t.Fatal("no slots offered")
	}
	h.mustPost(leakReply(slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	h.mustPost(paymentStatus(wa, od.referenceID(), 2*28950+3*6400, "captured", "success"))
	h.next(wa, "confirmation", contains("is placed"))

	// The retailer reads the order (the address is released to it: that is
	// fulfilment), then dispatches it with an internal note.
	var view map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view); r.StatusCode != 200 {
		t.Fatalf("retailer GET: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/dispatch", retail.Bearer, map[string]any{"logistics": logi.ID}, nil); r.StatusCode != 200 {
		t.Fatalf("dispatch: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/status", retail.Bearer, map[string]any{"status": "out_for_delivery",
		"eta": "7:30 pm", "internal_note": leakInternal}, nil); r.StatusCode != 200 {
		t.Fatalf("status update: %d", r.StatusCode)
	}
	h.next(wa, "status update", kindIs("order_status"))
	var delivery map[string]any
	if r := h.do("GET", "/v1/orders/"+orderID+"/delivery", logi.Bearer, nil, &delivery); r.StatusCode != 200 {
		t.Fatalf("delivery view: %d", r.StatusCode)
	}
	if r := h.do("POST", "/v1/orders/"+orderID+"/messages", logi.Bearer, map[string]string{"text": leakRelay}, nil); r.StatusCode != 202 {
		t.Fatalf("relay: %d", r.StatusCode)
	}
	h.next(wa, "relayed text", contains("Pattabhiraman"))

	// "my data"; then a send that the Send API refuses for good, so the
	// failure paths log too.
	h.mustPost(leakText("my data"))
	h.next(wa, "data summary", contains("What we hold about you"))
	h.wa.failCode = 131026 // undeliverable: permanent
	h.wa.failNext.Store(1)
	h.mustPost(leakText("help"))
	h.waitIdle()

	// The shopper changes number (the system message's body spells both
	// numbers out), then writes from the new one.
	h.mustPost(fmt.Sprintf(`"messages":[{"from":%q,"id":%q,"timestamp":%s,"type":"system","system":{"body":"User %s changed from %s to %s","wa_id":%q,"user_id":%q,"previous_user_id":%q,"type":"user_changed_number"}}]`,
		leakWa, wamidFor(leakWa), ts(), leakName, leakWa, leakNewWa, leakNewWa, leakNewBSUID, leakWaBSUID))
	h.mustPost(fmt.Sprintf(`"contacts":[{"profile":{"name":%q},"wa_id":%q,"user_id":%q}],"messages":[{"from":%q,"from_user_id":%q,"id":%q,"timestamp":%s,"type":"text","text":{"body":"my data"}}]`,
		leakName, leakNewWa, leakNewBSUID, leakNewWa, leakNewBSUID, wamidFor(leakNewWa), ts()))
	h.next(leakNewWa, "data summary at the new number", contains("What we hold about you"))
	h.waitIdle()

	// A username user chats, gets read receipts for what was sent to them,
	// then erases their data: nothing of theirs may remain, hashed ids
	// included (SPEC §5.8).
	h.mustPost(leakBSUIDMessage("text", `"text":{"body":"Hi"}`))
	h.next(leakBSUID, "privacy notice to the BSUID", offers(commerce.IDConsentAccept))
	h.mustPost(leakBSUIDMessage("interactive", `"interactive":{"type":"button_reply","button_reply":{"id":"`+commerce.IDConsentAccept+`","title":"x"}}`))
	optIn := h.next(leakBSUID, "marketing opt-in to the BSUID", offers(commerce.IDMarketingNo))
	h.mustPost(fmt.Sprintf(`"statuses":[{"id":%q,"status":"read","timestamp":%s,"recipient_user_id":%q}]`, optIn.ID, ts(), leakBSUID))
	h.mustPost(leakBSUIDMessage("text", `"text":{"body":"delete my data"}`))
	h.next(leakBSUID, "erase question", offers(commerce.IDEraseConfirm))
	h.mustPost(leakBSUIDMessage("interactive", `"interactive":{"type":"button_reply","button_reply":{"id":"`+commerce.IDEraseConfirm+`","title":"x"}}`))
	h.next(leakBSUID, "erasure confirmation", contains("has been erased"))
	h.waitIdle()

	// A minor names a parent, who approves from their own number.
	h.mustPost(textMsg(leakKid, "Hi"))
	h.next(leakKid, "notice to the minor", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(leakKid, commerce.IDConsentAccept))
	h.next(leakKid, "opt-in", offers(commerce.IDAgeMinor))
	h.mustPost(replyMsg(leakKid, commerce.IDAgeMinor))
	h.mustPost(orderMsg(leakKid, item("SKU-ATTA-5KG", 1, "289.5")))
	h.next(leakKid, "cart", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(leakKid, commerce.IDCartConfirm))
	h.mustPost(textMsg(leakKid, "3 Main Road, Mysuru 570001"))
	kidSlot := h.next(leakKid, "slots", kindIs("list")).replyIDs()[0]
	h.mustPost(replyMsg(leakKid, kidSlot))
	h.next(leakKid, "parent's number asked", contains("parent's WhatsApp number"))
	h.mustPost(textMsg(leakKid, "+91 97318 52046"))
	tpl := h.next(leakParent, "template to the parent", kindIs("template"))
	approve := regexp.MustCompile(`parent:approve:gdn_[a-z0-9]+`).FindString(string(tpl.Raw))
	h.mustPost(message(leakParent, "button", fmt.Sprintf(`"button":{"payload":%q,"text":"Approve"}`, approve)))
	h.next(leakParent, "approval recorded", contains("approval is recorded"))
	h.waitIdle()
	waitAuditSequenced(t, h)

	// The haystacks.
	ctx := context.Background()
	req, _ := http.NewRequest("GET", h.base+"/metrics", nil)
	metrics := send(t, req)
	if metrics.status != 200 || !strings.Contains(string(metrics.body), "sieve_http_requests_total") {
		t.Fatalf("/metrics: %d", metrics.status)
	}
	var auditText strings.Builder
	for _, q := range []string{`SELECT leaf FROM audit_entries ORDER BY idx`, `SELECT entry FROM audit_pending ORDER BY id`} {
		rows, err := h.m.Sys.DB.Pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		leaves, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leaves {
			auditText.Write(l)
			auditText.WriteByte('\n')
		}
	}
	if n := h.count(`SELECT count(*) FROM audit_entries`); n < 5 {
		t.Fatalf("only %d audit entries: the run did not happen", n)
	}
	dump := dumpDatabase(t, h.m.Config.Database.URL)
	if !strings.Contains(dump, orderID) {
		t.Fatalf("the dump does not contain the order %s: it is not a dump of the broker's database", orderID)
	}
	if logs.String() == "" {
		t.Error("the broker logged nothing, not even the refused send: the log capture is not working")
	}
	t.Logf("haystacks: logs %d bytes, metrics %d bytes, audit %d bytes, dump %d bytes",
		len(logs.String()), len(metrics.body), auditText.Len(), len(dump))

	// Partner views hold what fulfilment needs (a name, an address) but
	// never an identifier: no phone, no BSUID, no parent BSUID.
	t.Run("partner responses", func(t *testing.T) {
		views := mustJSON(view) + "\n" + mustJSON(delivery)
		for _, n := range leakNeedles() {
			if (strings.Contains(n.what, "phone") || strings.Contains(n.what, "BSUID")) && strings.Contains(views, n.s) {
				t.Errorf("a partner view holds the %s", n.what)
			}
		}
		if !strings.Contains(views, "customer_ref") {
			t.Fatal("the partner views were not captured")
		}
	})
	for _, hay := range []struct {
		name, text string
		all        bool // also the retailer's internal note
	}{
		{"logs", logs.String(), true},
		{"metrics", string(metrics.body), true},
		{"audit log", auditText.String(), true},
		{"database dump", dump, false},
	} {
		t.Run(hay.name, func(t *testing.T) {
			searchNeedles(t, hay.text, "in plaintext", hay.all)
			// Encoded forms: a WhatsApp message id is base64 of a
			// structure holding the phone number, and bytea columns dump
			// as hex.
			hits := 0
			for _, run := range decodedRuns(hay.text) {
				if hits == 5 {
					t.Errorf("… and more encoded runs not searched")
					break
				}
				if searchNeedles(t, run.decoded, "in "+run.how+" of …"+run.source+"…", hay.all) {
					hits++
				}
			}
		})
	}
}

// searchNeedles reports every needle found in text, and whether it found
// any.
func searchNeedles(t *testing.T, text, where string, all bool) bool {
	t.Helper()
	found := false
	for _, n := range leakNeedles() {
		if !n.shopperPII && !all {
			continue
		}
		if i := strings.Index(text, n.s); i >= 0 {
			t.Errorf("%s %s: …%q…", n.what, where, text[max(0, i-120):min(len(text), i+len(n.s)+60)])
			found = true
		}
	}
	if strings.Contains(digitsOnly(text), leakWa[2:]) {
		t.Errorf("the phone number's digits appear in order, with punctuation between them, %s", where)
		found = true
	}
	return found
}

// decodedRun is the decoding of one encoded run found in a haystack.
type decodedRun struct{ how, source, decoded string }

var (
	// base64 and base64url, with or without padding; at least 16
	// characters (12 bytes), shorter runs are words.
	base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{16,}={0,2}`)
	hexRun    = regexp.MustCompile(`[0-9a-fA-F]{16,}`)
)

// decodedRuns decodes every base64, base64url and hex run of text, at
// every alignment (a run may start mid-quantum, after a prefix that is
// itself base64 characters), and returns the decodings.
func decodedRuns(text string) []decodedRun {
	var out []decodedRun
	for _, run := range base64Run.FindAllString(text, -1) {
		run = strings.TrimRight(run, "=")
		for _, enc := range []struct {
			name string
			enc  *base64.Encoding
			skip string
		}{{"base64", base64.RawStdEncoding, "-_"}, {"base64url", base64.RawURLEncoding, "+/"}} {
			if strings.ContainsAny(run, enc.skip) {
				continue
			}
			for off := 0; off < 4 && len(run)-off >= 16; off++ {
				r := run[off:]
				r = r[:len(r)-len(r)%4]
				if b, err := enc.enc.DecodeString(r); err == nil {
					out = append(out, decodedRun{enc.name, run[:min(len(run), 40)], string(b)})
				}
			}
		}
	}
	for _, run := range hexRun.FindAllString(text, -1) {
		for off := 0; off < 2; off++ {
			r := run[off:]
			if b, err := hex.DecodeString(r[:len(r)-len(r)%2]); err == nil {
				out = append(out, decodedRun{"hex", run[:min(len(run), 40)], string(b)})
			}
		}
	}
	return out
}

// TestLeakSearchDecodes: the search finds a phone number inside a
// Meta-format message id, in base64url, unpadded, mid-run and in hex, and
// nothing in ciphertext-like noise.
func TestLeakSearchDecodes(t *testing.T) {
	id := whatsapp.NewInboundWAMID(leakWa)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(id, "wamid."))
	for _, tc := range []struct {
		name, hay string
		found     bool
	}{
		{"wamid in a dedup key", "m:" + id + "\t42", true},
		{"base64url unpadded", `{"k":"` + base64.RawURLEncoding.EncodeToString(raw) + `"}`, true},
		{"mid-run", "xyz" + base64.StdEncoding.EncodeToString(append([]byte("ab"), raw...)), true},
		{"hex bytea", `\x` + hex.EncodeToString([]byte("phone "+leakWa)), true},
		{"noise", base64.StdEncoding.EncodeToString([]byte("nothing personal in here at all, sorry")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			found := false
			for _, r := range decodedRuns(tc.hay) {
				if strings.Contains(r.decoded, leakWa) {
					found = true
				}
			}
			if found != tc.found {
				t.Errorf("found = %v in %s", found, tc.hay)
			}
		})
	}
}

// dumpDatabase returns a plain-text pg_dump of the database, or (when
// pg_dump is not installed) every row of every table as text.
func dumpDatabase(t *testing.T, dbURL string) string {
	t.Helper()
	bin := ""
	if out, err := exec.Command(filepath.Join("..", "..", "scripts", "pg.sh"), "bindir").Output(); err == nil {
		if p := filepath.Join(strings.TrimSpace(string(out)), "pg_dump"); fileExists(p) {
			bin = p
		}
	}
	if bin == "" {
		bin, _ = exec.LookPath("pg_dump")
	}
	if bin != "" {
		out, err := exec.Command(bin, "--no-owner", "--no-privileges", "--dbname", dbURL).Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("pg_dump: %v: %s", err, stderr)
		}
		return string(out)
	}
	t.Log("pg_dump not found: dumping every table through SQL instead")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		r, err := conn.Query(ctx, `SELECT t::text FROM `+tbl+` t`)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "-- %s\n%s\n", tbl, strings.Join(all, "\n"))
	}
	return b.String()
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
