package commerce

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The chat's strings are translated gettext-style: the English text the
// conversation writes is the message id, and each language file maps it to
// its translation. Variable parts are placeholders ({order}, {amount}, …)
// matched by kind, so "Order {order} is cancelled." translates every order.
// Keeping the conversation's code in English and translating each reply as
// it leaves means no reply can skip translation, and a string with no entry
// is detected (Misses), not silently sent in English.

//go:embed i18n/*.json
var i18nFS embed.FS

// langFile is one commerce/i18n/<lang>.json.
type langFile struct {
	Lang string `json:"lang"`
	// Name is the language's own name, shown in the language chooser.
	Name string `json:"name"`
	// Messages maps each English message id to its translation.
	Messages map[string]string `json:"messages"`
	// Words translates the values of {weekday} and {month}.
	Words map[string]string `json:"words,omitempty"`
}

// placeholderRe finds {name} placeholders in a message id.
var placeholderRe = regexp.MustCompile(`\{([a-z_0-9]+)\}`)

// placeholderKinds are what typed placeholders match; any other name
// matches any text, which is itself translated when it is a message.
var placeholderKinds = map[string]string{
	"n": `\d+`, "m": `\d+`, "k": `\d+`,
	"weekday": `Mon|Tue|Wed|Thu|Fri|Sat|Sun`,
	"month":   `Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec`,
	"amount":  `₹[0-9,]+(?:\.[0-9]+)?`,
	"order":   `ord_[A-Za-z0-9]+`,
}

type pattern struct {
	id    string
	tr    string
	re    *regexp.Regexp
	names []string
}

// Language is one chat language: its translations, compiled.
type Language struct {
	Code  string
	Name  string
	exact map[string]string
	words map[string]string
	pats  []pattern
}

// Languages are the chat languages shipped in commerce/i18n.
type Languages struct {
	byCode map[string]*Language
	codes  []string
	// misses counts strings with no entry, per language (for tests and a
	// metric): a shopper then sees English.
	mu     sync.Mutex
	misses map[string]map[string]bool
}

var (
	langsOnce sync.Once
	langsVal  *Languages
	langsErr  error
)

// ShippedLanguages loads commerce/i18n once.
func ShippedLanguages() (*Languages, error) {
	langsOnce.Do(func() { langsVal, langsErr = LoadLanguages(i18nFS) })
	return langsVal, langsErr
}

// LoadLanguages reads every i18n/<lang>.json of fsys. English is the
// message catalogue itself: every other language must translate each of
// its ids and no other.
func LoadLanguages(fsys fs.FS) (*Languages, error) {
	names, err := fs.Glob(fsys, "i18n/*.json")
	if err != nil {
		return nil, err
	}
	ls := &Languages{byCode: map[string]*Language{}, misses: map[string]map[string]bool{}}
	files := map[string]langFile{}
	for _, p := range names {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var f langFile
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if f.Lang != strings.TrimSuffix(path.Base(p), ".json") {
			return nil, fmt.Errorf("%s: lang %q is not the file's name", p, f.Lang)
		}
		files[f.Lang] = f
	}
	en, ok := files["en"]
	if !ok {
		return nil, fmt.Errorf("i18n: no en.json")
	}
	for code, f := range files {
		var errs []string
		for id := range en.Messages {
			if strings.TrimSpace(f.Messages[id]) == "" {
				errs = append(errs, fmt.Sprintf("no translation of %q", id))
			} else if !samePlaceholders(id, f.Messages[id]) {
				errs = append(errs, fmt.Sprintf("placeholders of %q differ", id))
			}
		}
		for id := range f.Messages {
			if _, ok := en.Messages[id]; !ok {
				errs = append(errs, fmt.Sprintf("%q is not an English message id", id))
			}
		}
		if len(errs) > 0 {
			slices.Sort(errs)
			return nil, fmt.Errorf("i18n/%s.json: %s", code, strings.Join(errs, "; "))
		}
		l := &Language{Code: code, Name: f.Name, exact: map[string]string{}, words: f.Words}
		for id, tr := range f.Messages {
			if !placeholderRe.MatchString(id) {
				l.exact[id] = tr
				continue
			}
			p := pattern{id: id, tr: tr}
			expr := "^"
			last := 0
			for _, m := range placeholderRe.FindAllStringSubmatchIndex(id, -1) {
				name := id[m[2]:m[3]]
				kind, ok := placeholderKinds[name]
				if !ok {
					kind = `.+?`
				}
				expr += regexp.QuoteMeta(id[last:m[0]]) + "(" + kind + ")"
				p.names = append(p.names, name)
				last = m[1]
			}
			p.re = regexp.MustCompile(expr + regexp.QuoteMeta(id[last:]) + "$")
			l.pats = append(l.pats, p)
		}
		// The most literal patterns first: "{n} × {item} — {amount}"
		// before "{text}".
		slices.SortFunc(l.pats, func(a, b pattern) int {
			la, lb := len(placeholderRe.ReplaceAllString(a.id, "")), len(placeholderRe.ReplaceAllString(b.id, ""))
			if la != lb {
				return lb - la
			}
			return strings.Compare(a.id, b.id)
		})
		ls.byCode[code] = l
		ls.codes = append(ls.codes, code)
	}
	slices.Sort(ls.codes)
	return ls, nil
}

func samePlaceholders(a, b string) bool {
	pa, pb := placeholderRe.FindAllString(a, -1), placeholderRe.FindAllString(b, -1)
	slices.Sort(pa)
	slices.Sort(pb)
	return slices.Equal(pa, pb)
}

// Codes lists the language codes, sorted.
func (ls *Languages) Codes() []string { return slices.Clone(ls.codes) }

// Has reports whether the chat speaks lang.
func (ls *Languages) Has(lang string) bool { _, ok := ls.byCode[lang]; return ok }

// Name is lang's own name.
func (ls *Languages) Name(lang string) string {
	if l, ok := ls.byCode[lang]; ok {
		return l.Name
	}
	return lang
}

// T translates one message id (no placeholders filled) into lang.
func (ls *Languages) T(lang, id string) string {
	out, _ := ls.line(lang, id, true)
	return out
}

// Misses returns, per language, the strings seen with no entry.
func (ls *Languages) Misses() map[string][]string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := map[string][]string{}
	for code, m := range ls.misses {
		for s := range m {
			out[code] = append(out[code], s)
		}
		slices.Sort(out[code])
	}
	return out
}

// Known reports whether s is a message of the catalogue, exactly or by a
// pattern (for the test that every string the chat writes has an entry).
func (ls *Languages) Known(s string) bool {
	_, ok := ls.line("en", s, false)
	return ok
}

// line translates one line; ok is false when no entry matches it.
func (ls *Languages) line(lang, s string, record bool) (string, bool) {
	if strings.TrimSpace(s) == "" {
		return s, true
	}
	l, ok := ls.byCode[lang]
	if !ok {
		l = ls.byCode["en"]
	}
	if t, ok := l.exact[s]; ok {
		return t, true
	}
	for _, p := range l.pats {
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		out := p.tr
		for i, name := range p.names {
			v := m[i+1]
			switch name {
			case "weekday", "month":
				if w, ok := l.words[v]; ok {
					v = w
				}
			default:
				if _, typed := placeholderKinds[name]; !typed {
					// Free text: a slot label or a message inside a
					// message is translated too; data (a product's
					// name) stays as it is.
					v, _ = ls.line(lang, v, false)
				}
			}
			out = strings.Replace(out, "{"+name+"}", v, 1)
		}
		return out, true
	}
	if record && lang != "en" {
		ls.mu.Lock()
		if ls.misses[lang] == nil {
			ls.misses[lang] = map[string]bool{}
		}
		ls.misses[lang][s] = true
		ls.mu.Unlock()
	}
	return s, false
}

// text translates a multi-line text line by line.
func (ls *Languages) text(lang, s string) string {
	if !strings.Contains(s, "\n") {
		out, _ := ls.line(lang, s, true)
		return out
	}
	lines := strings.Split(s, "\n")
	for i, ln := range lines {
		lines[i], _ = ls.line(lang, ln, true)
	}
	return strings.Join(lines, "\n")
}

// Localize returns r in lang: every text a shopper reads (header, body,
// footer, buttons, list rows and sections, the order status line). Ids,
// SKUs and amounts are left alone. A reply already written in the
// shopper's language (Localized) is returned as is.
func (ls *Languages) Localize(lang string, r Reply) Reply {
	if ls == nil || r.Localized {
		return r
	}
	r.Lang = lang
	if lang == "en" || !ls.Has(lang) {
		return r
	}
	r.Header = ls.text(lang, r.Header)
	r.Body = ls.text(lang, r.Body)
	r.Footer = ls.text(lang, r.Footer)
	r.Button = ls.text(lang, r.Button)
	if r.Buttons != nil {
		r.Buttons = slices.Clone(r.Buttons)
		for i := range r.Buttons {
			r.Buttons[i].Title = ls.text(lang, r.Buttons[i].Title)
		}
	}
	if r.Sections != nil {
		secs := make([]Section, len(r.Sections))
		for i, s := range r.Sections {
			if r.Kind != ReplyProductList {
				// Product sections are catalog categories (data).
				s.Title = ls.text(lang, s.Title)
			}
			if s.Rows != nil {
				rows := slices.Clone(s.Rows)
				for j := range rows {
					rows[j].Title = ls.text(lang, rows[j].Title)
					rows[j].Description = ls.text(lang, rows[j].Description)
				}
				s.Rows = rows
			}
			secs[i] = s
		}
		r.Sections = secs
	}
	if r.Status != nil {
		st := *r.Status
		st.Description = ls.text(lang, st.Description)
		r.Status = &st
	}
	return r
}
