package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

// The subject page shows whether the shopper paused processing ("pause
// my data", GDPR Art. 18), so an officer sees why partners get 404s.
func TestSubjectPageShowsRestriction(t *testing.T) {
	p := mustParsePages()
	for _, restricted := range []bool{true, false} {
		var buf bytes.Buffer
		d := &pageData{Title: "Subject sub_x", Nav: "subjects", Officer: &broker.Officer{}, Now: time.Now(),
			Body: subjectBody{Pseudonym: "sub_x", Masked: "+91 98•••••222", Restricted: restricted}}
		if err := p.execute(&buf, "subject", d); err != nil {
			t.Fatal(err)
		}
		page := buf.String()
		paused := strings.Contains(page, `<span class="badge warn">paused</span>`)
		if paused != restricted || !strings.Contains(page, "<dt>Processing</dt>") {
			t.Errorf("restricted %v: the page shows paused %v", restricted, paused)
		}
	}
}
