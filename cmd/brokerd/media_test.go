package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// upload is the fake Send API's media endpoint, as the Cloud API's:
// multipart with messaging_product, type and file; it answers the id.
func (f *fakeSendAPI) upload(t *testing.T, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(8 << 20); err != nil || r.FormValue("messaging_product") != whatsapp.MessagingProduct ||
		r.FormValue("type") == "" {
		w.WriteHeader(400)
		t.Errorf("broker sent an invalid media upload: %v", err)
		return
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		w.WriteHeader(400)
		t.Errorf("media upload without a file: %v", err)
		return
	}
	data, _ := io.ReadAll(file)
	f.mu.Lock()
	if f.media == nil {
		f.media = map[string][]byte{}
	}
	id := fmt.Sprintf("%d", 4000000000000000+len(f.media))
	f.media[id] = data
	f.mu.Unlock()
	fmt.Fprintf(w, `{"id":%q}`, id)
}

// file returns the uploaded file a document message names.
func (f *fakeSendAPI) file(s sent) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.media[s.str("document", "id")]
}
