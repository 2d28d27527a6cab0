package whatsapp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
)

// UploadMedia posts the file as the Cloud API's media endpoint expects
// (multipart: messaging_product, type, file) and returns the id.
func TestUploadMedia(t *testing.T) {
	g := &graphServer{status: 200, body: `{"id":"4000000000000001"}`}
	c := newTestClient(t, g)
	id, err := c.UploadMedia(context.Background(), "100000000000001", "my-data.json", "application/json", []byte(`{"a":1}`))
	if err != nil || id != "4000000000000001" {
		t.Fatalf("id %q, %v", id, err)
	}
	r := g.last.Load()
	if r.method != "POST" || r.path != "/v25.0/100000000000001/media" || r.auth != "Bearer tok-123" {
		t.Errorf("request %s %s %s", r.method, r.path, r.auth)
	}
	mt, params, err := mime.ParseMediaType(r.contentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q", r.contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	got := map[string]string{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		got[p.FormName()] = string(b)
		if p.FormName() == "file" && (p.FileName() != "my-data.json" || p.Header.Get("Content-Type") != "application/json") {
			t.Errorf("file part %q %q", p.FileName(), p.Header.Get("Content-Type"))
		}
	}
	if got["messaging_product"] != "whatsapp" || got["type"] != "application/json" || got["file"] != `{"a":1}` {
		t.Errorf("parts %v", got)
	}

	for _, bad := range []struct {
		status int
		body   string
	}{{200, `{}`}, {400, graphErr(100, "bad")}} {
		g := &graphServer{status: bad.status, body: bad.body}
		if _, err := newTestClient(t, g).UploadMedia(context.Background(), "1", "f.json", "application/json", []byte("x")); err == nil {
			t.Errorf("%d %s accepted", bad.status, bad.body)
		}
	}
	if _, err := c.UploadMedia(context.Background(), "1", "f.json", "application/json", nil); err == nil {
		t.Error("an empty file was uploaded")
	}
}

func TestNewDocument(t *testing.T) {
	m, err := NewDocument("IN.1410000000000001", "4000000000000001", "my-data.json", "Your data")
	if err != nil || m.Recipient != "IN.1410000000000001" || m.To != "" || m.Type != TypeDocument || m.Document.ID != "4000000000000001" {
		t.Fatalf("%+v %v", m, err)
	}
	b, _ := m.Marshal()
	if !strings.Contains(string(b), `"document":{"id":"4000000000000001","filename":"my-data.json","caption":"Your data"}`) {
		t.Errorf("wire %s", b)
	}
	for _, bad := range []*OutboundMessage{
		{MessagingProduct: MessagingProduct, To: "+919811112222", Type: TypeDocument},
		{MessagingProduct: MessagingProduct, To: "+919811112222", Type: TypeDocument, Document: &DocumentBody{}},
		{MessagingProduct: MessagingProduct, To: "+919811112222", Type: TypeDocument, Document: &DocumentBody{ID: "1", Filename: "../etc/passwd"}},
		{MessagingProduct: MessagingProduct, To: "+919811112222", Type: TypeDocument, Document: &DocumentBody{ID: "1"}, Text: &TextBody{Body: "x"}},
	} {
		if bad.Validate() == nil {
			t.Errorf("valid: %+v", bad)
		}
	}
}
