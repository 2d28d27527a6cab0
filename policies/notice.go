package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

// NoticeDir is where the notice translations live in the policy tree: one
// <lang>.json per language. Adding a language is adding a file.
const NoticeDir = "sieve/notices"

// DefaultLang is the language of a shopper who has not chosen one.
const DefaultLang = "en"

// MaxNoticeSummary is the Cloud API limit of a reply-button body, which
// carries the chat summary of the notice.
const MaxNoticeSummary = 1024

// NoticeText is one translation of the notice: the fixed sentences and the
// names of every purpose, data item, recipient kind, DPDP section and
// jurisdiction that policy data uses. The notice's content (which data, to
// whom, how long, on what basis) comes from policy data, never from here.
type NoticeText struct {
	Lang string `json:"lang"`
	// Name is the language's own name ("हिन्दी"), offered in the chooser.
	Name          string                      `json:"name"`
	Text          map[string]string           `json:"text"`
	Purposes      map[broker.Purpose]string   `json:"purposes"`
	Fields        map[string]string           `json:"fields"`
	PartyKinds    map[broker.PartyKind]string `json:"party_kinds"`
	DPDPSections  map[string]string           `json:"dpdp_sections"`
	Jurisdictions map[string]string           `json:"jurisdictions"`
}

// noticeKeys are the sentences every translation must have.
var noticeKeys = []string{"title", "intro", "data_items", "recipients", "you", "data_life", "days", "years",
	"not_kept", "lawful_basis", "optional", "withdraw", "rights", "complain", "contact", "full_text", "version",
	"summary_intro", "summary_optional", "summary_rights", "summary_basis"}

var langPattern = regexp.MustCompile(`^[a-z]{2,3}$`)

// ReadNotices reads every translation in the policy tree's NoticeDir.
func ReadNotices(fsys fs.FS) (map[string]NoticeText, error) {
	names, err := fs.Glob(fsys, NoticeDir+"/*.json")
	if err != nil {
		return nil, err
	}
	out := map[string]NoticeText{}
	for _, p := range names {
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var t NoticeText
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if want := strings.TrimSuffix(path.Base(p), ".json"); t.Lang != want || !langPattern.MatchString(t.Lang) {
			return nil, fmt.Errorf("%s: lang %q must be the file's name, a 2- or 3-letter ISO 639 code", p, t.Lang)
		}
		out[t.Lang] = t
	}
	if _, ok := out[DefaultLang]; !ok {
		return nil, fmt.Errorf("policies: no %s/%s.json: the notice needs an English text", NoticeDir, DefaultLang)
	}
	return out, nil
}

// CheckNotice reports everything a translation misses for this policy
// data: a sentence, or the name of a purpose, a data item a purpose uses,
// a recipient kind, a DPDP section or a jurisdiction. A notice with a gap
// would show a shopper an empty line where their data is named.
func (d Data) CheckNotice(t NoticeText) error {
	var errs []error
	miss := func(what, key string) { errs = append(errs, fmt.Errorf("notice %s: no %s %q", t.Lang, what, key)) }
	for _, k := range noticeKeys {
		if strings.TrimSpace(t.Text[k]) == "" {
			miss("text", k)
		}
	}
	for _, name := range d.PurposeNames() {
		p := d.Purposes[name]
		if t.Purposes[name] == "" {
			miss("purpose", string(name))
		}
		if t.DPDPSections[p.DPDPSection] == "" {
			miss("dpdp section", p.DPDPSection)
		}
		for _, kind := range slices.Sorted(maps.Keys(p.Parties)) {
			if t.PartyKinds[kind] == "" {
				miss("party kind", string(kind))
			}
			if j := d.PartyKinds[kind].Jurisdiction; t.Jurisdictions[j] == "" {
				miss("jurisdiction", j)
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(d.Fields)) {
		if !d.Fields[f].Internal && t.Fields[f] == "" {
			miss("field", f)
		}
	}
	return errors.Join(errs...)
}

// NoticeOptions are the deployment's parts of the notice.
type NoticeOptions struct {
	// Contact is SIEVE_DPO_CONTACT: the DPO or grievance officer.
	Contact string
	// URL is the full text's address (BROKER_ISSUER + /privacy/<lang>).
	URL string
}

// NoticePurpose is one purpose as the notice states it.
type NoticePurpose struct {
	Purpose    broker.Purpose
	Name       string
	Items      []string // the data items used, in the notice's language
	Recipients []string // "the store (India)"
	DataLife   string
	Basis      string // the DPDP section, in words
	Optional   bool   // needs an opt-in besides the notice
}

// Notice is the privacy notice in one language, generated from policy data.
type Notice struct {
	Lang     string
	LangName string
	Title    string
	Intro    string
	Purposes []NoticePurpose
	// Labels are the translation's headings, for the HTML page.
	Labels   map[string]string
	Withdraw string
	Rights   string
	Complain string
	Contact  string
	FullText string
	URL      string
	// Text is the full notice as plain text; SHA256 (hex) of it is the
	// notice's version, recorded with every consent given under it.
	Text   string
	SHA256 string
	// Summary is the chat message: it fits a reply-button body. Short is
	// the same without the legal-basis line, for when a greeting must fit
	// beside it (the basis stays in the full text).
	Summary string
	Short   string
}

// Notice builds the notice in translation t from policy data.
func (d Data) Notice(t NoticeText, o NoticeOptions) (Notice, error) {
	if err := d.CheckNotice(t); err != nil {
		return Notice{}, err
	}
	fill := func(key string, kv ...string) string {
		return strings.NewReplacer(kv...).Replace(t.Text[key])
	}
	n := Notice{Lang: t.Lang, LangName: t.Name, Title: t.Text["title"], Intro: t.Text["intro"], Labels: t.Text,
		Withdraw: t.Text["withdraw"], Rights: t.Text["rights"], Complain: t.Text["complain"],
		Contact: fill("contact", "{contact}", o.Contact), FullText: fill("full_text", "{url}", o.URL), URL: o.URL}
	for _, name := range noticeOrder(d) {
		p := d.Purposes[name]
		np := NoticePurpose{Purpose: name, Name: t.Purposes[name], Basis: t.DPDPSections[p.DPDPSection],
			Optional: slices.ContainsFunc(p.Consent, func(c string) bool { return c != "notice" })}
		items := map[string]bool{}
		days := 0
		for _, kind := range slices.Sorted(maps.Keys(p.Parties)) {
			g := p.Parties[kind]
			who := t.PartyKinds[kind] + " (" + t.Jurisdictions[d.PartyKinds[kind].Jurisdiction] + ")"
			if kind == broker.KindShopper {
				who = t.Text["you"]
			}
			np.Recipients = append(np.Recipients, who)
			for f := range g.Fields {
				items[f] = true
				days = max(days, d.Retention[d.Fields[f].Category].Days)
			}
		}
		for _, f := range slices.Sorted(maps.Keys(items)) {
			np.Items = append(np.Items, t.Fields[f])
		}
		switch {
		case days == 0:
			np.DataLife = t.Text["not_kept"]
		case days%365 == 0:
			np.DataLife = fill("years", "{n}", strconv.Itoa(days/365))
		default:
			np.DataLife = fill("days", "{n}", strconv.Itoa(days))
		}
		n.Purposes = append(n.Purposes, np)
	}
	n.Text = n.plain()
	sum := sha256.Sum256([]byte(n.Text))
	n.SHA256 = hex.EncodeToString(sum[:])
	n.Summary, n.Short = n.summary(t, true), n.summary(t, false)
	if utf8.RuneCountInString(n.Summary) > MaxNoticeSummary {
		// A long contact or address: the basis stays in the full text.
		n.Summary = n.Short
	}
	if c := utf8.RuneCountInString(n.Summary); c > MaxNoticeSummary {
		return Notice{}, fmt.Errorf("notice %s: the chat summary is %d characters, over %d", t.Lang, c, MaxNoticeSummary)
	}
	return n, nil
}

// noticeOrder lists the purposes a shopper meets first first: those the
// notice itself covers, then the optional ones, then rights answers.
func noticeOrder(d Data) []broker.Purpose {
	names := d.PurposeNames()
	rank := func(p Purpose) int {
		switch {
		case p.AnswersRightsRequest:
			return 2
		case len(p.Consent) > 1:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(names, func(a, b broker.Purpose) int { return rank(d.Purposes[a]) - rank(d.Purposes[b]) })
	return names
}

// plain renders the full notice as text, the bytes its version hashes.
func (n Notice) plain() string {
	var b strings.Builder
	b.WriteString(n.Title + "\n\n" + n.Intro + "\n")
	for _, p := range n.Purposes {
		b.WriteString("\n" + p.Name + "\n")
		if p.Optional {
			b.WriteString(n.Labels["optional"] + "\n")
		}
		fmt.Fprintf(&b, "%s: %s\n", n.Labels["data_items"], strings.Join(p.Items, ", "))
		fmt.Fprintf(&b, "%s: %s\n", n.Labels["recipients"], strings.Join(p.Recipients, ", "))
		fmt.Fprintf(&b, "%s: %s\n", n.Labels["data_life"], p.DataLife)
		fmt.Fprintf(&b, "%s: %s\n", n.Labels["lawful_basis"], p.Basis)
	}
	b.WriteString("\n" + n.Withdraw + "\n\n" + n.Rights + "\n\n" + n.Complain + "\n\n" + n.Contact + "\n" + n.FullText + "\n")
	return b.String()
}

// summary is the chat message: the purposes by name, how to withdraw,
// exercise rights and complain, the contact and the link to the full text.
func (n Notice) summary(t NoticeText, basis bool) string {
	var b strings.Builder
	b.WriteString(t.Text["summary_intro"] + "\n")
	for _, p := range n.Purposes {
		b.WriteString("• " + p.Name)
		if p.Optional {
			b.WriteString(" " + t.Text["summary_optional"])
		}
		b.WriteString("\n")
	}
	if basis {
		b.WriteString(t.Text["summary_basis"] + "\n")
	}
	b.WriteString("\n" + t.Text["summary_rights"] + "\n" + n.Complain + "\n" + n.Contact + "\n" +
		n.FullText)
	return b.String()
}

var noticePage = template.Must(template.New("notice").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}dt{font-weight:600}dd{margin:0 0 .5rem}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Intro}}</p>
{{range .Purposes}}<section id="{{.Purpose}}"><h2>{{.Name}}</h2>{{if .Optional}}<p>{{index $.Labels "optional"}}</p>{{end}}
<dl><dt>{{index $.Labels "data_items"}}</dt><dd>{{range $i, $x := .Items}}{{if $i}}, {{end}}{{$x}}{{end}}</dd>
<dt>{{index $.Labels "recipients"}}</dt><dd>{{range $i, $x := .Recipients}}{{if $i}}, {{end}}{{$x}}{{end}}</dd>
<dt>{{index $.Labels "data_life"}}</dt><dd>{{.DataLife}}</dd>
<dt>{{index $.Labels "lawful_basis"}}</dt><dd>{{.Basis}}</dd></dl></section>
{{end}}<p>{{.Withdraw}}</p><p>{{.Rights}}</p><p>{{.Complain}}</p><p>{{.Contact}}</p>
<p><small>{{index .Labels "version"}}: <code>{{.SHA256}}</code></small></p>
</body></html>
`))

// HTML renders the full notice as the page GET /privacy/{lang} serves.
func (n Notice) HTML() []byte {
	var b bytes.Buffer
	if err := noticePage.Execute(&b, n); err != nil {
		panic(err) // the template is fixed and its data typed: a bug
	}
	return b.Bytes()
}

// Notices are the notice in every shipped language, built once.
type Notices struct {
	byLang map[string]Notice
	langs  []string
}

// BuildNotices builds the notice in every translation of the policy tree;
// any gap in any translation is an error, so a broker never starts with a
// notice that leaves a purpose or a data item unnamed.
func BuildNotices(d Data, texts map[string]NoticeText, o NoticeOptions, url func(lang string) string) (*Notices, error) {
	ns := &Notices{byLang: map[string]Notice{}}
	var errs []error
	for _, lang := range slices.Sorted(maps.Keys(texts)) {
		oo := o
		if url != nil {
			oo.URL = url(lang)
		}
		n, err := d.Notice(texts[lang], oo)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ns.byLang[lang] = n
		ns.langs = append(ns.langs, lang)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ns, nil
}

// Get returns the notice in lang, falling back to English.
func (ns *Notices) Get(lang string) Notice {
	if n, ok := ns.byLang[lang]; ok {
		return n
	}
	return ns.byLang[DefaultLang]
}

// Has reports whether the notice exists in lang.
func (ns *Notices) Has(lang string) bool { _, ok := ns.byLang[lang]; return ok }

// Langs lists the languages, sorted.
func (ns *Notices) Langs() []string { return slices.Clone(ns.langs) }

// readNoticesChecked reads the translations and checks each against the
// policy data, reporting every gap at once.
func readNoticesChecked(fsys fs.FS, d Data) (map[string]NoticeText, error) {
	texts, err := ReadNotices(fsys)
	if err != nil {
		return nil, fmt.Errorf("policies: notices: %w", err)
	}
	var errs []error
	for _, lang := range slices.Sorted(maps.Keys(texts)) {
		errs = append(errs, d.CheckNotice(texts[lang]))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("policies: notices are incomplete:\n%w", err)
	}
	return texts, nil
}

// NoticeTexts returns the notice translations of the policy in force.
func (e *Engine) NoticeTexts() map[string]NoticeText { return maps.Clone(e.notices) }
