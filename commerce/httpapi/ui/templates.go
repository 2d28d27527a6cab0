package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// assets holds the templates and static files, embedded in the binary: the
// dashboard needs no file on disk and loads nothing from elsewhere.
//
//go:embed assets
var assets embed.FS

// staticFile is an embedded static asset with its content hash, which
// versions its URL so it can be cached for good.
type staticFile struct {
	body  []byte
	ctype string
	hash  string
}

// pages are the parsed page templates, each with the layout.
type pages struct {
	t      map[string]*template.Template
	static map[string]staticFile
}

// pageNames are the templates under assets/templates besides the layout.
var pageNames = []string{"login", "error", "overview", "audit", "entry", "flows", "policies", "desk", "subject",
	"erase", "erased", "reports", "password", "notices", "held",
	"grievances", "grievance", "breaches", "breach", "nomination", "market"}

func mustParsePages() *pages {
	p := &pages{t: map[string]*template.Template{}, static: map[string]staticFile{}}
	files, err := fs.Glob(assets, "assets/static/*")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		b, err := assets.ReadFile(f)
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(f))
		if ct == "" {
			ct = "application/octet-stream"
		}
		p.static[path.Base(f)] = staticFile{body: b, ctype: ct, hash: hex.EncodeToString(sum[:6])}
	}
	funcs := template.FuncMap{
		"asset": func(name string) (string, error) {
			f, ok := p.static[name]
			if !ok {
				return "", fmt.Errorf("no static asset %q", name)
			}
			return "/ui/static/" + name + "?v=" + f.hash, nil
		},
		"ts":       fmtTime,
		"date":     func(t time.Time) string { return fmtDate(t) },
		"short":    shorten,
		"join":     strings.Join,
		"human":    func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"money":    fmtPaise,
		"num":      fmtInt,
		"outcome":  outcomeClass,
		"plural":   plural,
		"contains": func(list []string, s string) bool { return containsString(list, s) },
		"pct":      func(f float64) float64 { return 100 * f },
	}
	for _, name := range pageNames {
		t := template.New("layout.html").Funcs(funcs)
		p.t[name] = template.Must(t.ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html"))
	}
	return p
}

func (p *pages) execute(w io.Writer, name string, d *pageData) error {
	t, ok := p.t[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	return t.ExecuteTemplate(w, "layout.html", d)
}

// static serves an embedded asset; versioned URLs are cached for a year.
func (u *UI) static(c *fiber.Ctx) error {
	f, ok := u.pages.static[c.Params("file")]
	if !ok {
		return broker.Errorf(broker.ENotFound, "There is no such file.")
	}
	c.Set(fiber.HeaderContentType, f.ctype)
	if c.Query("v") == f.hash {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	c.Set(fiber.HeaderETag, `"`+f.hash+`"`)
	return c.Send(f.body)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006")
}

// shorten keeps the first n characters of a long identifier or hash.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fmtInt groups thousands: 1234567 → "1,234,567". It takes any integer
// type, since templates cannot convert.
func fmtInt(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtPaise formats minor units of INR.
func fmtPaise(p int64) string {
	return "₹" + fmtInt(p/100) + fmt.Sprintf(".%02d", p%100) // totals are never negative
}

func outcomeClass(o string) string {
	switch o {
	case "released", "done":
		return "ok"
	case "partial":
		return "warn"
	case "denied", "failed":
		return "bad"
	}
	return "neutral"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
