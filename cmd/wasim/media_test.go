package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// The fake API implements the media upload the broker uses for "export my
// data", refuses a document naming no upload, and `wasim chat` saves the
// document it receives.
func TestMediaUploadAndChatSavesDocument(t *testing.T) {
	store, srv := newTestSim(t)
	client := whatsapp.NewClient(srv.URL+"/v25.0", testToken)
	ctx := context.Background()
	const user = "IN.1410000000000077" // a username user: sent to by BSUID
	dir := t.TempDir()
	in, w := io.Pipe()
	var out syncBuffer
	c := &Chat{User: &User{BSUID: user}, Name: "Kiran", Webhooks: NewWebhookSender("http://127.0.0.1:1/none", []byte("x"), whatsapp.DevPhoneNumberID),
		Sim: store, In: in, Out: &out, Linger: 10 * time.Millisecond, SaveDir: dir}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)

	bad, _ := whatsapp.NewDocument(user, "999", "x.json", "")
	if _, err := client.Send(ctx, whatsapp.DevPhoneNumberID, bad); err == nil {
		t.Error("a document naming no upload was accepted")
	}
	id, err := client.UploadMedia(ctx, whatsapp.DevPhoneNumberID, "my-data.json", "application/json", []byte(`{"orders":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := whatsapp.NewDocument(user, id, "my-data.json", "Your data")
	if _, err := client.Send(ctx, whatsapp.DevPhoneNumberID, m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "my-data.json")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && string(b) == `{"orders":[]}` {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != `{"orders":[]}` {
		t.Fatalf("saved file: %q %v\n%s", b, err, out.String())
	}
	if !strings.Contains(out.String(), "[document my-data.json") || !strings.Contains(out.String(), "saved "+path) {
		t.Errorf("chat output:\n%s", out.String())
	}
	// Over HTTP too (wasim chat --no-serve against a running wasim serve).
	got, err := (&SimClient{BaseURL: srv.URL}).Media(ctx, id)
	if err != nil || string(got.Data) != `{"orders":[]}` || got.Filename != "my-data.json" || got.MIME != "application/json" {
		t.Errorf("SimClient.Media: %+v %v", got, err)
	}
	if p, err := saveDocument(dir, Media{ID: "1", Filename: "../../etc/passwd", Data: []byte("x")}); err != nil || filepath.Dir(p) != dir {
		t.Errorf("a document name with a path was saved at %q (%v)", p, err)
	}
}
