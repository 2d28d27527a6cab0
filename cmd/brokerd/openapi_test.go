package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// openAPIMethods are the operation keys of an OpenAPI path item; other
// keys (parameters, summary, servers…) are not operations.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var templateParam = regexp.MustCompile(`\{([^}/]+)\}`)

// documented reports whether a route must appear in the OpenAPI document:
// the partner, compliance and token API (operations endpoints, the
// webhook and the dashboard are documented where they are or not at all).
func documented(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/oauth/token" || path == "/.well-known/jwks.json"
}

// TestOpenAPIMatchesRoutes checks /openapi.json against the running
// server's route table in both directions: every documented operation is
// served, and every partner, compliance and token route is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("GET", h.base+"/openapi.json", nil)
	a := send(t, req)
	if a.status != 200 {
		t.Fatalf("GET /openapi.json: %d", a.status)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Info    struct{ Title, Version string }       `json:"info"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatalf("/openapi.json is not valid JSON of the expected shape: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" || len(doc.Paths) == 0 {
		t.Fatalf("not an OpenAPI 3 document: openapi %q, title %q, version %q, %d paths",
			doc.OpenAPI, doc.Info.Title, doc.Info.Version, len(doc.Paths))
	}

	// The route table, as "METHOD /path/:param".
	served := map[string]bool{}
	for _, r := range h.m.HTTP.App.GetRoutes(true) {
		served[r.Method+" "+r.Path] = true
	}
	docOps := map[string]bool{}
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/") {
			t.Errorf("path %q does not start with /", path)
		}
		fiberPath := templateParam.ReplaceAllString(path, ":$1")
		ops := 0
		for key, op := range item {
			if !slices.Contains(openAPIMethods, key) {
				continue
			}
			ops++
			var o struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil || len(o.Responses) == 0 {
				t.Errorf("%s %s documents no responses", strings.ToUpper(key), path)
			}
			k := strings.ToUpper(key) + " " + fiberPath
			docOps[k] = true
			if !served[k] {
				t.Errorf("documented but not served: %s %s", strings.ToUpper(key), path)
			}
		}
		if ops == 0 {
			t.Errorf("path %s documents no operation", path)
		}
	}

	var missing []string
	for k := range served {
		method, path, _ := strings.Cut(k, " ")
		if method == fiber.MethodHead || !documented(path) {
			continue // HEAD comes with every GET
		}
		if !docOps[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("served but not documented: %s", k)
	}
	// The check above must have had routes to look at.
	for _, must := range []string{"POST /oauth/token", "GET /v1/orders/:id", "POST /v1/data-requests", "GET /.well-known/jwks.json"} {
		if !served[must] || !docOps[must] {
			t.Errorf("%s: served %v, documented %v", must, served[must], docOps[must])
		}
	}
}
