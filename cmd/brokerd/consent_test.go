package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/commerce"
)

// consentExport is the body of POST /v1/subjects/consents.
type consentExport struct {
	DataPrincipal string         `json:"data_principal"`
	Language      string         `json:"language"`
	NoticeSHA256  string         `json:"notice_sha256"`
	Consent       broker.Consent `json:"consent"`
	Artefacts     []struct {
		ID, Lang, Status, Evidence, Method, Reason string
		NoticeSHA256                               string `json:"notice_sha256"`
		Purposes                                   []string
		At                                         string
	} `json:"artefacts"`
}

var noticeVersionRe = regexp.MustCompile(`<code>([0-9a-f]{64})</code>`)

// noticeVersion reads the notice version off the public page.
func (h *harness) noticeVersion(lang string) (string, string) {
	h.t.Helper()
	resp, err := http.Get(h.base + "/privacy/" + lang)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		h.t.Fatalf("GET /privacy/%s: %d %s", lang, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := noticeVersionRe.FindStringSubmatch(string(b))
	if m == nil {
		h.t.Fatalf("/privacy/%s names no version", lang)
	}
	return m[1], string(b)
}

func (h *harness) consents(bearer, wa string) consentExport {
	h.t.Helper()
	var ex consentExport
	if r := h.do("POST", "/v1/subjects/consents", bearer, map[string]string{"wa_id": wa}, &ex); r.StatusCode != 200 ||
		r.Header.Get("X-Decision-Id") == "" {
		h.t.Fatalf("POST /v1/subjects/consents: %d", r.StatusCode)
	}
	return ex
}

func buttonMsg(wa, payload string) string {
	return message(wa, "button", fmt.Sprintf(`"button":{"payload":%q,"text":"Approve"}`, payload))
}

func listReplyMsg(wa, id string) string {
	return message(wa, "interactive", fmt.Sprintf(`"interactive":{"type":"list_reply","list_reply":{"id":%q,"title":"x"}}`, id))
}

// TestHindiShopperEndToEnd: a shopper who picks Hindi on the notice gets
// the notice, buttons, cart, slot list, confirmation, status updates and
// rights answers in Hindi; the consent is an artefact with the Hindi
// notice's version, exported by POST /v1/subjects/consents, and the audit
// leaf names version and language.
func TestHindiShopperEndToEnd(t *testing.T) {
	const contact = "dpo@kirana.example, +91 80 4000 0000"
	h := newHarness(t, func(c *config.Config) { c.Desk.Contact = contact })
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read", "orders:write")
	_, dpo := h.partner("DPO desk", broker.KindCompliance, "", "audit:read")
	const wa = "919811113333"
	hiVersion, page := h.noticeVersion("hi")
	enVersion, _ := h.noticeVersion("en")
	if hiVersion == enVersion || !strings.Contains(page, "भारतीय डेटा संरक्षण बोर्ड") || !strings.Contains(page, "dpo@kirana.example") {
		t.Fatalf("the Hindi page is not the Hindi notice")
	}
	if r := h.do("GET", "/privacy/xx", "", nil, nil); r.StatusCode != 404 {
		t.Errorf("/privacy/xx: %d", r.StatusCode)
	}

	h.mustPost(textMsg(wa, "Hi"))
	n := h.next(wa, "notice", offers(commerce.IDLangChoose))
	if !strings.Contains(n.text(), "/privacy/en") || !strings.Contains(n.text(), contact) || len([]rune(n.text())) > 1024 {
		t.Errorf("English notice lacks the link or the contact, or is too long: %q", n.text())
	}
	h.mustPost(replyMsg(wa, commerce.IDLangChoose))
	h.next(wa, "language list", offers("lang:hi"))
	h.mustPost(listReplyMsg(wa, "lang:hi"))
	n = h.next(wa, "Hindi notice", offers(commerce.IDConsentAccept))
	if !strings.Contains(n.text(), "नमस्ते") || !strings.Contains(n.text(), "/privacy/hi") || n.str("interactive", "header", "text") != "गोपनीयता सूचना" {
		t.Fatalf("notice after choosing Hindi: %q", n.text())
	}
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "thanks", contains("धन्यवाद"))
	opt := h.next(wa, "opt-in", offers(commerce.IDMarketingNo))
	if !strings.Contains(opt.text(), "वैकल्पिक") || !strings.Contains(string(opt.Raw), "उम्र 18 से कम है") {
		t.Errorf("opt-in not in Hindi: %s", opt.Raw)
	}
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	if pl := h.next(wa, "product list", kindIs("product_list")); pl.text() != "देखें, कार्ट में डालें और यहाँ भेजें।" {
		t.Errorf("product list body %q", pl.text())
	}
	h.mustPost(orderMsg(wa, item("SKU-ATTA-5KG", 2, "289.5")))
	cart := h.next(wa, "cart", offers(commerce.IDCartConfirm))
	if !strings.HasPrefix(cart.text(), "आपका कार्ट:") || !strings.Contains(string(cart.Raw), "कार्ट की पुष्टि करें") {
		t.Errorf("cart not in Hindi: %s", cart.Raw)
	}
	h.mustPost(replyMsg(wa, commerce.IDCartConfirm))
	if lr := h.next(wa, "location request", kindIs("location_request_message")); !strings.Contains(lr.text(), "डिलीवरी कहाँ करें") {
		t.Errorf("location request %q", lr.text())
	}
	h.mustPost(locationMsg(wa, "12 MG Road, Bengaluru 560001"))
	slots := h.next(wa, "slots", kindIs("list"))
	if slots.text() != "डिलीवरी कब करें?" || !strings.Contains(string(slots.Raw), "बजे") {
		t.Errorf("slot list not in Hindi: %s", slots.Raw)
	}
	h.mustPost(replyMsg(wa, slots.replyIDs()[0]))
	od := h.next(wa, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	if !strings.Contains(od.text(), "दबाएँ") {
		t.Errorf("order_details body %q", od.text())
	}
	h.mustPost(paymentStatus(wa, od.referenceID(), 2*28950, "captured", "success"))
	h.next(wa, "confirmation", contains("धन्यवाद! आपका ऑर्डर "+orderID))
	if r := h.do("POST", "/v1/orders/"+orderID+"/status", retail, map[string]any{"status": "packed"}, nil); r.StatusCode != 200 {
		t.Fatalf("status update: %d", r.StatusCode)
	}
	h.next(wa, "status update in Hindi", contains("ऑर्डर "+orderID+" पैक हो गया है।"))
	h.mustPost(textMsg(wa, "my data"))
	md := h.next(wa, "my data", contains("हमारे पास आपके बारे में यह है:"))
	if !strings.HasSuffix(md.text(), "डेटा संरक्षण अधिकारी: "+contact) {
		t.Errorf("rights answer without the contact: %q", md.text())
	}

	ex := h.consents(dpo, wa)
	if ex.Language != "hi" || ex.NoticeSHA256 != hiVersion || !ex.Consent.Notice || strings.Contains(mustJSON(ex), wa) {
		t.Fatalf("consent export: %s", mustJSON(ex))
	}
	var given bool
	for _, a := range ex.Artefacts {
		if a.Status == "given" && a.Lang == "hi" && a.NoticeSHA256 == hiVersion && a.Method == "chat_reply" &&
			strings.Contains(strings.Join(a.Purposes, ","), "order_fulfilment") {
			given = true
			if !strings.HasPrefix(a.Evidence, broker.ProviderKeyPrefix) {
				t.Errorf("evidence %q is not a keyed hash", a.Evidence)
			}
		}
	}
	if !given {
		t.Errorf("no artefact of the Hindi notice's acceptance: %s", mustJSON(ex.Artefacts))
	}
	var entries struct {
		Entries []map[string]any `json:"entries"`
	}
	h.do("GET", "/v1/audit/entries?action=consent", dpo, nil, &entries)
	var leaf bool
	for _, e := range entries.Entries {
		leaf = leaf || (e["notice_sha256"] == hiVersion && e["lang"] == "hi")
	}
	if !leaf {
		t.Errorf("no consent leaf carries the notice version and language: %v", entries.Entries)
	}
}

// TestNoticeChangeReasksAndStopWithdraws: a shopper who accepted an older
// notice text is asked again at their next message, and accepting records
// a new artefact; "stop" withdraws the optional consents as an artefact.
func TestNoticeChangeReasksAndStopWithdraws(t *testing.T) {
	h := newHarness(t)
	_, dpo := h.partner("DPO desk", broker.KindCompliance, "", "subjects:write")
	const wa = "919811116666"
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDMarketingYes))
	h.next(wa, "product list", kindIs("product_list"))
	h.waitIdle()
	// The notice text changed since (as when policy data or the contact
	// changes): this shopper's acceptance names the old version.
	if _, err := h.m.Sys.DB.Pool.Exec(context.Background(),
		`UPDATE subjects SET notice_sha256 = repeat('0', 64) WHERE notice_sha256 <> ''`); err != nil {
		t.Fatal(err)
	}
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "notice asked again", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "thanks", contains("Thank you"))
	h.mustPost(textMsg(wa, "stop"))
	st := h.next(wa, "stop", contains("no offers"))
	if !strings.Contains(st.text(), "Data Protection Officer: "+commerce.DefaultDPOContact) {
		t.Errorf("stop answer without the contact: %q", st.text())
	}
	h.waitIdle()
	en, _ := h.noticeVersion("en")
	ex := h.consents(dpo, wa)
	var reasks, withdrawn int
	for _, a := range ex.Artefacts {
		if a.Status == "given" && a.Reason == "notice_version" && a.NoticeSHA256 == en &&
			strings.Contains(strings.Join(a.Purposes, ","), "marketing") {
			reasks++
		}
		if a.Status == "withdrawn" && strings.Join(a.Purposes, ",") == "marketing" && a.Method == "chat_command" {
			withdrawn++
		}
	}
	if reasks != 1 || withdrawn != 1 || ex.Consent.Marketing {
		t.Errorf("artefacts: re-accepted %d, withdrawn %d, consent %+v: %s", reasks, withdrawn, ex.Consent, mustJSON(ex.Artefacts))
	}
}

// TestMinorNeedsParentFromTheirOwnNumber: a minor cannot opt in, cannot
// pay until a parent approves from the number the minor named (anyone
// else's answer counts for nothing), the approval is an artefact, the
// parent can withdraw, and the parent's number is never in plaintext.
func TestMinorNeedsParentFromTheirOwnNumber(t *testing.T) {
	h := newHarness(t)
	_, retail := h.partner("Fresh Mart", broker.KindRetailer, "", "orders:read", "data:request")
	_, dpo := h.partner("DPO desk", broker.KindCompliance, "", "audit:read")
	const kid, parent, stranger = "919811114444", "919811115555", "919811117777"
	h.mustPost(textMsg(kid, "Hi"))
	h.next(kid, "notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(kid, commerce.IDConsentAccept))
	h.next(kid, "opt-in", offers(commerce.IDAgeMinor))
	h.mustPost(replyMsg(kid, commerce.IDAgeMinor))
	h.next(kid, "minor noted", contains("under 18"))
	h.mustPost(replyMsg(kid, commerce.IDMarketingYes))
	h.next(kid, "opt-in refused", contains("stay off"))
	h.mustPost(orderMsg(kid, item("SKU-ATTA-5KG", 2, "289.5")))
	h.next(kid, "cart", offers(commerce.IDCartConfirm))
	h.mustPost(replyMsg(kid, commerce.IDCartConfirm))
	h.mustPost(locationMsg(kid, "12 MG Road, Bengaluru 560001"))
	slot := h.next(kid, "slots", kindIs("list")).replyIDs()[0]
	h.mustPost(replyMsg(kid, slot))
	h.next(kid, "parent's number asked", contains("parent's WhatsApp number"))
	h.mustPost(textMsg(kid, "+91 98111 15555"))
	tpl := h.next(parent, "template to the parent", kindIs("template"))
	raw := string(tpl.Raw)
	if tpl.str("template", "name") != "parental_consent" || strings.Contains(raw, kid) {
		t.Fatalf("parent's template: %s", raw)
	}
	approve := regexp.MustCompile(`parent:approve:gdn_[a-z0-9]+`).FindString(raw)
	if approve == "" {
		t.Fatalf("no approve payload: %s", raw)
	}
	h.next(kid, "asked", contains("asked your parent"))
	h.mustPost(replyMsg(kid, slot))
	h.next(kid, "still waiting", contains("waiting for your parent"))

	// Someone else taps the payload: nothing changes.
	h.mustPost(buttonMsg(stranger, approve))
	h.next(stranger, "not yours", contains("no longer open"))
	h.mustPost(replyMsg(kid, slot))
	h.next(kid, "still waiting", contains("waiting for your parent"))

	h.mustPost(buttonMsg(parent, approve))
	ack := h.next(parent, "approval recorded", contains("approval is recorded"))
	withdraw := ack.replyIDs()
	h.next(kid, "parent approved", contains("Your parent approved"))
	h.mustPost(replyMsg(kid, slot))
	od := h.next(kid, "order_details", kindIs("order_details"))
	orderID := orderIDRe.FindString(od.text())
	h.mustPost(paymentStatus(kid, od.referenceID(), 2*28950, "captured", "success"))
	h.next(kid, "placed", contains("is placed"))

	// Marketing for the child is denied whatever a partner asks.
	var view map[string]any
	h.do("GET", "/v1/orders/"+orderID, retail, nil, &view)
	var dr map[string]any
	h.do("POST", "/v1/data-requests", retail, map[string]any{"subject": view["customer_ref"], "purpose": "marketing",
		"fields": []string{"customer.ref", "delivery.postal_code"}}, &dr)
	if len(asMap(dr["released"])) != 0 || !strings.Contains(mustJSON(dr), "child") {
		t.Errorf("marketing data request for a child: %s", mustJSON(dr))
	}

	if len(withdraw) != 1 {
		t.Fatalf("no withdraw button: %s", ack.Raw)
	}
	h.mustPost(replyMsg(parent, withdraw[0]))
	h.next(parent, "withdrawn", contains("withdrawn"))
	h.next(kid, "told", contains("withdrew"))
	h.waitIdle()

	ex := h.consents(dpo, kid)
	var approvals, withdrawals int
	for _, a := range ex.Artefacts {
		if strings.Join(a.Purposes, ",") == string(commerce.PurposeParentalConsent) && a.Method == commerce.MethodParent {
			if a.Status == "given" {
				approvals++
			} else if a.Reason == "parent_withdrawn" {
				withdrawals++
			}
		}
	}
	if !ex.Consent.Child || ex.Consent.Marketing || approvals != 1 || withdrawals != 1 {
		t.Errorf("minor's consents: %s", mustJSON(ex))
	}
	// Erasing the child takes the parent's number with it; the consent
	// record says the consents ended.
	h.mustPost(textMsg(kid, "delete my data"))
	h.next(kid, "erase?", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(kid, commerce.IDEraseConfirm))
	h.next(kid, "erased", contains("erased"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM guardians`); n != 0 {
		t.Errorf("%d guardian rows outlive the child's erasure", n)
	}
	if n := h.count(`SELECT count(*) FROM consent_artefacts WHERE method = 'erasure' AND status = 'withdrawn'`); n != 1 {
		t.Errorf("%d erasure artefacts, want 1", n)
	}
	for _, q := range []string{
		`SELECT count(*) FROM guardians WHERE sealed::text LIKE '%9811115555%' OR encode(sealed, 'escape') LIKE '%9811115555%'`,
		`SELECT count(*) FROM audit_entries WHERE convert_from(leaf, 'UTF8') LIKE '%9811115555%'`,
	} {
		if n := h.count(q); n != 0 {
			t.Errorf("the parent's number is in plaintext: %s → %d", q, n)
		}
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
