package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	cpg "github.com/sieve-broker/sieve/commerce/postgres"
)

// partner create|update --ack-key registers a partner's Ed25519 ack key;
// a malformed key is refused and changes nothing; --no-ack-key removes it.
func TestPartnerAckKey(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, func(k string) string {
			switch k {
			case "DATABASE_URL":
				return dbURL
			case "BROKER_KEY_DIR":
				return keys
			}
			return ""
		})
		return code, out.String(), errb.String()
	}
	if code, _, e := ctl("migrate"); code != 0 {
		t.Fatalf("migrate: %s", e)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.StdEncoding.EncodeToString(pub)
	if code, _, e := ctl("partner", "create", "--name", "Bad Key", "--kind", "retailer", "--scopes", "orders:read",
		"--ack-key", "AAAA"); code == 0 || !strings.Contains(e, "--ack-key") {
		t.Errorf("a short key: exit %d %q", code, e)
	}
	code, out, e := ctl("partner", "create", "--name", "Fresh Mart", "--kind", "retailer", "--scopes", "orders:read",
		"--ack-key", b64, "--json")
	if code != 0 {
		t.Fatalf("create with --ack-key: %d %s", code, e)
	}
	var created map[string]string
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	id := created["client_id"]
	db, err := postgres.Open(context.Background(), dbURL, postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func() []byte {
		k, err := cpg.New(db).Notices.PartnerAckKey(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if !bytes.Equal(key(), pub) {
		t.Fatalf("stored key %x, want %x", key(), pub)
	}
	if code, _, _ := ctl("partner", "update", id, "--ack-key", "not base64!"); code == 0 || !bytes.Equal(key(), pub) {
		t.Errorf("a bad key: exit %d, key changed: %v", code, !bytes.Equal(key(), pub))
	}
	if code, _, _ := ctl("partner", "update", id, "--ack-key", b64, "--no-ack-key"); code != 2 {
		t.Errorf("both --ack-key and --no-ack-key: exit %d, want 2", code)
	}
	if code, _, e := ctl("partner", "update", id, "--no-ack-key"); code != 0 || key() != nil {
		t.Errorf("--no-ack-key: exit %d %s, key %x", code, e, key())
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if code, _, e := ctl("partner", "update", id, "--ack-key", base64.RawStdEncoding.EncodeToString(other)); code != 0 || !bytes.Equal(key(), other) {
		t.Errorf("update --ack-key (unpadded): exit %d %s", code, e)
	}
}
