package httpapi

import (
	_ "embed"
	"encoding/json"
)

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3.1 description of the API.
func OpenAPI() []byte { return openapiJSON }

// ServedOpenAPI returns doc with its servers set to the broker's issuer
// (BROKER_ISSUER), so generated clients call the deployment that served
// the document rather than a development address. The document is
// rewritten once, at start-up; an unparsable one is served as it is.
func ServedOpenAPI(doc []byte, issuer string) []byte {
	if issuer == "" || len(doc) == 0 {
		return doc
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return doc
	}
	servers, err := json.Marshal([]map[string]string{{"url": issuer, "description": "this broker (BROKER_ISSUER)"}})
	if err != nil {
		return doc
	}
	m["servers"] = servers
	out, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return doc
	}
	return out
}
