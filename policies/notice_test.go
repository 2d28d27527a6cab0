package policies

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

var testNoticeOptions = NoticeOptions{Contact: "dpo@shop.example, +91 80 4000 0000"}

func testNoticeURL(lang string) string { return "https://broker.example/privacy/" + lang }

// TestShippedNoticesComplete: English and Hindi ship, and each names every
// purpose, data item, recipient, section and sentence of the policy data.
func TestShippedNoticesComplete(t *testing.T) {
	e := engine(t)
	texts := e.NoticeTexts()
	for _, lang := range []string{"en", "hi"} {
		tx, ok := texts[lang]
		if !ok {
			t.Fatalf("no %s notice shipped", lang)
		}
		if err := e.Data().CheckNotice(tx); err != nil {
			t.Errorf("%s: %v", lang, err)
		}
	}
	ns, err := BuildNotices(e.Data(), texts, testNoticeOptions, testNoticeURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range ns.Langs() {
		n := ns.Get(lang)
		if c := utf8.RuneCountInString(n.Summary); c > MaxNoticeSummary {
			t.Errorf("%s summary: %d characters, over the reply-button body limit", lang, c)
		}
		for _, want := range []string{testNoticeOptions.Contact, testNoticeURL(lang), "stop", "delete my data", "my data"} {
			if !strings.Contains(n.Summary, want) || !strings.Contains(n.Text, want) {
				t.Errorf("%s: summary or text lacks %q", lang, want)
			}
		}
		if strings.Contains(strings.ToLower(n.Text), "contract") {
			t.Errorf("%s: the DPDP Act has no contract basis, the notice names one", lang)
		}
	}
	if ns.Get("hi").SHA256 == ns.Get("en").SHA256 || !strings.Contains(ns.Get("hi").Text, "डेटा संरक्षण बोर्ड") {
		t.Error("the Hindi notice is not Hindi")
	}
	if ns.Get("xx").Lang != "en" {
		t.Error("an unknown language does not fall back to English")
	}
}

// TestNoticeFromPolicyData: each purpose's items, recipients, data life and
// basis come from policy data, and changing the data changes the version.
func TestNoticeFromPolicyData(t *testing.T) {
	e := engine(t)
	d := e.Data()
	en := e.NoticeTexts()["en"]
	n, err := d.Notice(en, NoticeOptions{Contact: "dpo@x", URL: "u"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[broker.Purpose]NoticePurpose{}
	for _, p := range n.Purposes {
		byName[p.Purpose] = p
	}
	if len(byName) != len(d.Purposes) {
		t.Fatalf("notice has %d purposes, policy %d", len(byName), len(d.Purposes))
	}
	mk := byName[broker.PurposeMarketing]
	if !mk.Optional || strings.Join(mk.Items, "|") != "a customer code that is different for every recipient (not your number)|PIN code" ||
		strings.Join(mk.Recipients, "|") != "an analytics partner (India)|the store (India)" ||
		mk.DataLife != "3 years after your last interaction" || mk.Basis != "your consent (DPDP Act s. 6)" {
		t.Errorf("marketing = %+v", mk)
	}
	if of := byName[broker.PurposeOrderFulfilment]; of.Optional || !strings.Contains(strings.Join(of.Recipients, ","), "you, in this chat") {
		t.Errorf("order_fulfilment = %+v", of)
	}
	if dsr := byName[broker.PurposeDataSubjectRequest]; !strings.Contains(dsr.Basis, "7(a)") {
		t.Errorf("data_subject_request basis = %q", dsr.Basis)
	}

	// The store now also gets the delivery slot for marketing: the notice
	// says so, and its version changes (shoppers are asked again).
	g := d.Purposes[broker.PurposeMarketing].Parties[broker.KindRetailer]
	g.Fields["delivery.slot"] = broker.TransformKeep
	n2, err := d.Notice(en, NoticeOptions{Contact: "dpo@x", URL: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if n2.SHA256 == n.SHA256 || !strings.Contains(n2.Text, "delivery slot") {
		t.Error("a change of policy data did not change the notice or its version")
	}
	n3, _ := e.Data().Notice(en, NoticeOptions{Contact: "dpo@x", URL: "u"})
	if n3.SHA256 != n.SHA256 {
		t.Error("the notice version is not stable")
	}
	if !strings.Contains(string(n.HTML()), "<h2>Your order: the store packs it") {
		t.Error("the HTML page does not list the purposes")
	}
}

// TestNoticeTranslationGaps: a translation that misses a purpose, a field
// or a sentence stops the policy from loading.
func TestNoticeTranslationGaps(t *testing.T) {
	hi, err := fs.ReadFile(FS(), NoticeDir+"/hi.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"purpose":  func(m map[string]any) { delete(m["purposes"].(map[string]any), "delivery") },
		"field":    func(m map[string]any) { delete(m["fields"].(map[string]any), "delivery.postal_code") },
		"sentence": func(m map[string]any) { delete(m["text"].(map[string]any), "complain") },
		"section":  func(m map[string]any) { delete(m["dpdp_sections"].(map[string]any), "7(a)") },
		"recipient": func(m map[string]any) {
			delete(m["party_kinds"].(map[string]any), "logistics")
		},
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(hi, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ := json.Marshal(m)
			_, err := New(context.Background(), treeWith(t, map[string][]byte{NoticeDir + "/hi.json": b}))
			if err == nil || !strings.Contains(err.Error(), "notice hi: no") {
				t.Fatalf("New = %v; want a missing-translation error", err)
			}
		})
	}
	// A new language is a new file.
	var m map[string]any
	_ = json.Unmarshal(hi, &m)
	m["lang"] = "mr"
	b, _ := json.Marshal(m)
	e, err := New(context.Background(), treeWith(t, map[string][]byte{NoticeDir + "/mr.json": b}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.NoticeTexts()["mr"]; !ok {
		t.Error("a third language file was not picked up")
	}
}
