package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/config"
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

// apiCall is one request of the contract test: Template is the OpenAPI
// path it exercises, Path the request's path and query.
type apiCall struct {
	method, template, path string
	authz                  string // the Authorization header ("" none)
	body                   string // JSON unless it starts with "form:"
	want                   int    // the status the scenario expects
}

// openAPISchemas validates real answers against the responses that
// /openapi.json documents, with a JSON Schema 2020-12 validator (OpenAPI
// 3.1 schemas are JSON Schema).
type openAPISchemas struct {
	t     *testing.T
	doc   map[string]any
	c     *jsonschema.Compiler
	cache map[string]*jsonschema.Schema
	n     int
}

const openAPIURL = "file:///openapi.json"

func newOpenAPISchemas(t *testing.T, raw []byte) *openAPISchemas {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return &openAPISchemas{t: t, doc: m, c: c, cache: map[string]*jsonschema.Schema{}}
}

// resolve follows a local "$ref" of the document.
func (o *openAPISchemas) resolve(v any) (map[string]any, string) {
	m, _ := v.(map[string]any)
	ref, _ := m["$ref"].(string)
	if ref == "" {
		return m, ""
	}
	cur := any(o.doc)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		cm, _ := cur.(map[string]any)
		cur = cm[part]
	}
	m, _ = cur.(map[string]any)
	return m, ref
}

// check validates one answer against its documented response and returns
// the problems found.
func (o *openAPISchemas) check(c apiCall, a answer) []string {
	paths, _ := o.doc["paths"].(map[string]any)
	item, _ := paths[c.template].(map[string]any)
	op, _ := item[strings.ToLower(c.method)].(map[string]any)
	if op == nil {
		return []string{"operation not documented"}
	}
	responses, _ := op["responses"].(map[string]any)
	status := strconv.Itoa(a.status)
	rv, ok := responses[status]
	if !ok {
		if rv, ok = responses[status[:1]+"XX"]; !ok {
			if rv, ok = responses["default"]; !ok {
				return []string{"status " + status + " is not documented"}
			}
		}
	}
	resp, ref := o.resolve(rv)
	if resp == nil {
		return []string{"response " + status + ": broken $ref " + ref}
	}
	content, _ := resp["content"].(map[string]any)
	if len(a.body) == 0 && len(content) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type"))
	media, _ := content[mt].(map[string]any)
	if media == nil {
		return []string{fmt.Sprintf("response %s: content type %q is not documented", status, mt)}
	}
	schemaDoc, ok := media["schema"]
	if !ok {
		return []string{fmt.Sprintf("response %s (%s) declares no schema", status, mt)}
	}
	var inst any = string(a.body)
	if strings.HasSuffix(mt, "json") {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(a.body))
		if err != nil {
			return []string{"body is not JSON: " + err.Error()}
		}
		inst = v
	}
	key := c.method + " " + c.template + " " + status + " " + mt
	sch := o.cache[key]
	if sch == nil {
		// The schema as its own resource, its local references pointed at
		// the document.
		b, _ := json.Marshal(schemaDoc)
		b = bytes.ReplaceAll(b, []byte(`"#/`), []byte(`"`+openAPIURL+`#/`))
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return []string{err.Error()}
		}
		o.n++
		u := fmt.Sprintf("file:///response/%d.json", o.n)
		if err := o.c.AddResource(u, v); err != nil {
			return []string{err.Error()}
		}
		if sch, err = o.c.Compile(u); err != nil {
			return []string{fmt.Sprintf("response %s: schema does not compile: %v", status, err)}
		}
		o.cache[key] = sch
	}
	if err := sch.Validate(inst); err != nil {
		return []string{fmt.Sprintf("response %s does not match its schema: %v", status, err)}
	}
	return nil
}

// TestOpenAPIResponsesMatch calls every documented operation, successes
// and refusals, and validates each real answer (status, content type and
// body) against /openapi.json. Every operation must be exercised with a
// success, so a route cannot be added without a schema its answers match.
func TestOpenAPIResponsesMatch(t *testing.T) {
	h := newHarness(t)
	raw := h.getWith("/openapi.json", "").body
	o := newOpenAPISchemas(t, raw)

	retail := h.partnerWith(token.PartnerSpec{Name: "Fresh Mart", Kind: broker.KindRetailer,
		Scopes: []string{"orders:read", "orders:write", "data:request"}})
	logi := h.partnerWith(token.PartnerSpec{Name: "Couriers", Kind: broker.KindLogistics,
		Scopes: []string{"delivery:read", "delivery:message"}})
	desk := h.partnerWith(token.PartnerSpec{Name: "Compliance desk", Kind: broker.KindCompliance,
		Scopes: []string{"audit:read", "subjects:write"}})
	const wa = "919800000401"
	orderID := h.purchase(wa)
	waitAuditSequenced(t, h)
	var view struct {
		CustomerRef string `json:"customer_ref"`
	}
	h.do("GET", "/v1/orders/"+orderID, retail.Bearer, nil, &view)
	bearer := func(c creds) string { return "Bearer " + c.Bearer }
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(retail.ID)+":"+url.QueryEscape(retail.Secret)))
	ord := "/v1/orders/" + orderID
	unknown := "/v1/orders/ord_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	challenge := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {h.m.Config.WhatsApp.VerifyToken},
		"hub.challenge": {"1158201444"}}.Encode()
	statusMsgBody := envelope(statusMsg(wa, wamid(), "read"))

	served := map[string]bool{}
	for _, r := range h.m.HTTP.App.GetRoutes(true) {
		served[r.Method+" "+r.Path] = true
	}
	calls := []apiCall{
		{"GET", "/healthz", "/healthz", "", "", 200},
		{"GET", "/readyz", "/readyz", "", "", 200},
		{"GET", "/metrics", "/metrics", "", "", 200},
		{"GET", "/openapi.json", "/openapi.json", "", "", 200},
		{"GET", "/.well-known/jwks.json", "/.well-known/jwks.json", "", "", 200},
		{"POST", "/oauth/token", "/oauth/token", basic, "form:grant_type=client_credentials", 200},
		{"POST", "/oauth/token", "/oauth/token", "", "form:grant_type=client_credentials", 401},
		{"POST", "/oauth/token", "/oauth/token", basic, "form:grant_type=password", 400},
		{"GET", "/webhooks/whatsapp", "/webhooks/whatsapp?" + challenge, "", "", 200},
		{"GET", "/webhooks/whatsapp", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=no&hub.challenge=1", "", "", 403},
		{"POST", "/webhooks/whatsapp", "/webhooks/whatsapp", "sign", statusMsgBody, 200},
		{"POST", "/webhooks/whatsapp", "/webhooks/whatsapp", "", statusMsgBody, 401},
		{"GET", "/v1/orders", "/v1/orders?limit=10", bearer(retail), "", 200},
		{"GET", "/v1/orders", "/v1/orders", "", "", 401},
		{"GET", "/v1/orders", "/v1/orders", bearer(logi), "", 403},
		{"GET", "/v1/orders", "/v1/orders?limit=0", bearer(retail), "", 400},
		{"GET", "/v1/orders/{id}", ord, bearer(retail), "", 200},
		{"GET", "/v1/orders/{id}", unknown, bearer(retail), "", 404},
		{"GET", "/v1/orders/{id}/delivery", ord + "/delivery", bearer(logi), "", 404},
		{"POST", "/v1/orders/{id}/status", ord + "/status", bearer(retail), `{"status":"accepted"}`, 200},
		{"POST", "/v1/orders/{id}/status", ord + "/status", bearer(retail), `{"status":"accepted"}`, 409},
		{"POST", "/v1/orders/{id}/status", ord + "/status", bearer(retail), `{"status":"lost"}`, 400},
		{"POST", "/v1/orders/{id}/status", ord + "/status", bearer(retail), `{"status":"packed"}`, 200},
	}
	if served["GET /v1/offers"] {
		// A retailer without a service area has no offers; unknown
		// offers are 404, the store's own offers are in market_test.
		const off = "/v1/offers/off_aaaaaaaaaaaaaaaaaaaaaaaaaa"
		// Two routed orders for a store with a service area (made after
		// the purchase above, which goes to the plain retailer): one
		// offer to take, one to decline.
		_, storeTok := h.store("Area Store", postgres.PartnerRegistry{Serves: serves("560001")})
		time.Sleep(2100 * time.Millisecond) // the routing stores cache
		h.routedCheckout("919800000402", "12 MG Road, Bengaluru 560001")
		h.routedCheckout("919800000403", "14 MG Road, Bengaluru 560001")
		open, _ := h.openOffers(storeTok)
		if len(open) != 2 {
			t.Fatalf("%d offers for the area store; want 2", len(open))
		}
		store := "Bearer " + storeTok
		calls = append(calls, []apiCall{
			{"GET", "/v1/offers", "/v1/offers", store, "", 200},
			{"POST", "/v1/offers/{id}/accept", "/v1/offers/" + open[0]["offer_id"].(string) + "/accept", store, "", 200},
			{"POST", "/v1/offers/{id}/accept", "/v1/offers/" + open[0]["offer_id"].(string) + "/accept", store, "", 409},
			{"POST", "/v1/offers/{id}/decline", "/v1/offers/" + open[1]["offer_id"].(string) + "/decline", store, "", 200},
			{"GET", "/v1/offers", "/v1/offers", bearer(retail), "", 200},
			{"GET", "/v1/offers", "/v1/offers", bearer(logi), "", 403},
			{"POST", "/v1/offers/{id}/accept", off + "/accept", bearer(retail), "", 404},
			{"POST", "/v1/offers/{id}/accept", off + "/accept", "", "", 401},
			{"POST", "/v1/offers/{id}/decline", off + "/decline", bearer(retail), "", 404},
		}...)
	}
	if served["POST /v1/orders/:id/dispatch"] {
		calls = append(calls, apiCall{"POST", "/v1/orders/{id}/dispatch", ord + "/dispatch", bearer(retail),
			mustJSON(map[string]string{"logistics": logi.ID}), 200})
	}
	calls = append(calls, []apiCall{
		{"POST", "/v1/orders/{id}/status", ord + "/status", bearer(retail), `{"status":"out_for_delivery","eta":"7 pm"}`, 200},
		{"GET", "/v1/orders/{id}/delivery", ord + "/delivery", bearer(logi), "", 200},
		{"POST", "/v1/orders/{id}/messages", ord + "/messages", bearer(logi), `{"text":"At your gate"}`, 202},
		{"POST", "/v1/orders/{id}/messages", ord + "/messages", bearer(logi), `{"text":"hi","to":"x"}`, 400},
		{"POST", "/v1/data-requests", "/v1/data-requests", bearer(retail),
			mustJSON(map[string]any{"subject": view.CustomerRef, "purpose": "order_fulfilment", "fields": []string{"delivery.postal_code", "customer.phone"}}), 200},
		{"POST", "/v1/data-requests", "/v1/data-requests", bearer(retail), `{"subject":""}`, 400},
		{"GET", "/v1/audit/entries", "/v1/audit/entries?limit=5", bearer(desk), "", 200},
		{"GET", "/v1/audit/entries", "/v1/audit/entries", bearer(retail), "", 403},
		{"GET", "/v1/audit/checkpoint", "/v1/audit/checkpoint", bearer(desk), "", 200},
		{"GET", "/v1/audit/checkpoint", "/v1/audit/checkpoint", "", "", 401},
		{"GET", "/v1/audit/proof/inclusion", "/v1/audit/proof/inclusion?index=0&size=2", bearer(desk), "", 200},
		{"GET", "/v1/audit/proof/inclusion", "/v1/audit/proof/inclusion?index=x&size=2", bearer(desk), "", 400},
		{"GET", "/v1/audit/proof/consistency", "/v1/audit/proof/consistency?from=1&to=2", bearer(desk), "", 200},
		{"GET", "/v1/reports/processing", "/v1/reports/processing", bearer(desk), "", 200},
		{"GET", "/v1/subjects/disclosures", "/v1/subjects/disclosures?wa_id=" + wa, bearer(desk), "", 200},
		{"GET", "/v1/subjects/disclosures", "/v1/subjects/disclosures?wa_id=919800000499", bearer(desk), "", 404},
		{"POST", "/v1/subjects/disclosures", "/v1/subjects/disclosures", bearer(desk), `{"wa_id":"` + wa + `"}`, 200},
		{"POST", "/v1/subjects/consents", "/v1/subjects/consents", bearer(desk), `{"wa_id":"` + wa + `"}`, 200},
		{"GET", "/v1/grievances", "/v1/grievances", bearer(desk), "", 200},
		{"GET", "/v1/breaches", "/v1/breaches", bearer(desk), "", 200},
		{"GET", "/privacy/{lang}", "/privacy/en", "", "", 200},
		{"POST", "/v1/subjects/export", "/v1/subjects/export", bearer(desk), `{"wa_id":"` + wa + `"}`, 200},
		{"POST", "/v1/subjects/erase", "/v1/subjects/erase", bearer(desk), `{"wa_id":"` + wa + `"}`, 400},
		{"POST", "/v1/subjects/erase", "/v1/subjects/erase", bearer(desk), `{"wa_id":"` + wa + `","confirm":true}`, 200},
	}...)

	// A tile of the tree as it stands: level 0, the first (partial) tile.
	waitAuditSequenced(t, h)
	if _, err := h.m.Sys.IntegrateAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := h.getWith("/v1/audit/checkpoint", bearer(desk)); a.status != 200 {
		t.Errorf("checkpoint: %d %s", a.status, a.body)
	} else {
		lines := strings.Split(string(a.body), "\n")
		if n, err := strconv.ParseUint(lines[1], 10, 64); err != nil || n == 0 {
			t.Errorf("checkpoint size %q: %v", lines[1], err)
		} else {
			tile := "/v1/audit/tile/0/000"
			if n < 256 {
				tile += ".p/" + strconv.FormatUint(n, 10)
			}
			calls = append(calls,
				apiCall{"GET", "/v1/audit/tile/*", tile, bearer(desk), "", 200},
				apiCall{"GET", "/v1/audit/tile/*", tile, "", "", 401})
		}
	}

	succeeded := map[string]bool{}
	run := func(c apiCall) {
		var rd io.Reader
		if c.body != "" {
			rd = strings.NewReader(strings.TrimPrefix(c.body, "form:"))
		}
		req, _ := http.NewRequest(c.method, h.base+c.path, rd)
		switch {
		case strings.HasPrefix(c.body, "form:"):
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case c.body != "":
			req.Header.Set("Content-Type", "application/json")
		}
		switch c.authz {
		case "":
		case "sign":
			req.Header.Set("X-Hub-Signature-256", signOf(c.body))
		default:
			req.Header.Set("Authorization", c.authz)
		}
		a := send(t, req)
		name := c.method + " " + c.path
		if a.status != c.want {
			t.Errorf("%s: %d, want %d: %.300s", name, a.status, c.want, a.body)
			return
		}
		for _, p := range o.check(c, a) {
			t.Errorf("%s: %s: %.300s", name, p, a.body)
		}
		if a.status < 300 {
			succeeded[strings.ToUpper(c.method)+" "+c.template] = true
		}
	}
	for _, c := range calls {
		run(c)
	}
	// The erasure told the retailer (a recipient notice): it reads the
	// event and acknowledges it.
	run(apiCall{"GET", "/v1/events", "/v1/events", bearer(retail), "", 200})
	var events struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	if a := h.getWith("/v1/events", bearer(retail)); json.Unmarshal(a.body, &events) != nil || len(events.Events) == 0 {
		t.Errorf("no recipient notice for the retailer after the erasure: %s", a.body)
	} else {
		run(apiCall{"POST", "/v1/acks", "/v1/acks", bearer(retail), `{"event_id":"` + events.Events[0].ID + `","status":"done"}`, 200})
	}

	// Every documented operation was exercised with a success.
	paths, _ := o.doc["paths"].(map[string]any)
	for path, item := range paths {
		for method := range item.(map[string]any) {
			if slices.Contains(openAPIMethods, method) && !succeeded[strings.ToUpper(method)+" "+path] {
				t.Errorf("%s %s: no successful call validated against the document", strings.ToUpper(method), path)
			}
		}
	}
}

// TestOpenAPIIsComplete checks the document's own completeness: servers
// from BROKER_ISSUER, a unique operationId per operation, security on
// every operation (empty where public), and a schema for every response
// that has a body.
func TestOpenAPIIsComplete(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Server.Issuer = "https://broker.example.in" })
	var doc struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(h.getWith("/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://broker.example.in" {
		t.Errorf("servers %+v, want the issuer https://broker.example.in", doc.Servers)
	}
	public := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "GET /openapi.json": true,
		"GET /.well-known/jwks.json": true, "GET /webhooks/whatsapp": true, "POST /webhooks/whatsapp": true, "GET /privacy/{lang}": true}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !slices.Contains(openAPIMethods, method) {
				continue
			}
			name := strings.ToUpper(method) + " " + path
			var op struct {
				OperationID string                     `json:"operationId"`
				Security    *[]map[string][]string     `json:"security"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			switch {
			case op.OperationID == "":
				t.Errorf("%s: no operationId", name)
			case ids[op.OperationID] != "":
				t.Errorf("%s: operationId %q also names %s", name, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = name
			switch {
			case op.Security == nil:
				t.Errorf("%s: no security (use [] for a public operation)", name)
			case public[name] && len(*op.Security) != 0:
				t.Errorf("%s: public, but security is %v", name, *op.Security)
			case !public[name] && len(*op.Security) == 0:
				t.Errorf("%s: security is empty, but the operation is not public", name)
			}
			for status, rr := range op.Responses {
				var r struct {
					Ref     string                          `json:"$ref"`
					Content map[string]struct{ Schema any } `json:"content"`
				}
				json.Unmarshal(rr, &r) //nolint:errcheck
				if r.Ref != "" {
					continue // components/responses: checked by the validation test
				}
				if status[0] == '2' && len(r.Content) == 0 {
					t.Errorf("%s %s: no content documented", name, status)
				}
				for mt, m := range r.Content {
					if m.Schema == nil {
						t.Errorf("%s %s %s: no schema", name, status, mt)
					}
				}
			}
		}
	}
}
