// Package jose checks the broker's JWT key rotation with a third-party
// client, npm jose (createRemoteJWKSet), run by node: across a rotation a
// client whose key set is cached never rejects a fresh token, because the
// new key is published before it signs.
package jose

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/token"
)

// node returns the node binary with jose installed, or skips (fails in CI).
func node(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err == nil {
		if _, err = os.Stat(filepath.Join("node_modules", "jose")); err != nil {
			var out []byte
			out, err = exec.Command("./install.sh").CombinedOutput()
			if err == nil {
				_, err = os.Stat(filepath.Join("node_modules", "jose"))
			}
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node with npm jose is required in CI: %v", err)
		}
		t.Skipf("node with npm jose not available: %v", err)
	}
	return bin
}

type result struct {
	Verified int      `json:"verified"`
	Rejected int      `json:"rejected"`
	Kids     []string `json:"kids"`
	Errors   []string `json:"errors"`
}

// run serves the real keyring's JWKS (with the broker's Cache-Control) and
// real tokens, and lets jose verify tokens for total while the key is
// rotated with the given prepublication delay at rotateAt.
func run(t *testing.T, bin string, delay, cooldown, total, rotateAt time.Duration) result {
	t.Helper()
	kr, err := token.LoadKeyring(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	iss := token.NewIssuer(kr, "https://sieve.test", 10*time.Minute)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", token.JWKSContentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(kr.JWKS()) //nolint:errcheck
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		raw, _, err := iss.Issue("cli_jose", []string{"orders:read"})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, raw)
	})
	mux.HandleFunc("POST /rotate", func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := kr.RotateAfter(delay); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ms := func(d time.Duration) string { return fmt.Sprint(d.Milliseconds()) }
	out, err := exec.Command(bin, "verify.mjs", srv.URL, ms(cooldown), ms(total), ms(rotateAt)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("node: %v", err)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	return res
}

// TestJoseCachedJWKSAcrossRotation runs jose with its cooldown scaled down
// to 2 s (30 s by default) and the key published 3 s ahead (10 min in
// production, longer than the 300 s max-age and the cooldown). The control
// run rotates with no prepublication and shows jose rejecting fresh tokens
// while its cache cools down: what partners saw before.
func TestJoseCachedJWKSAcrossRotation(t *testing.T) {
	bin := node(t)
	const cooldown, total, rotateAt = 2 * time.Second, 7 * time.Second, time.Second

	control := run(t, bin, 0, cooldown, 4*time.Second, rotateAt)
	if control.Rejected == 0 {
		t.Fatalf("control: an immediate rotation should make a cached jose reject fresh tokens: %+v", control)
	}
	got := run(t, bin, 3*time.Second, cooldown, total, rotateAt)
	if got.Rejected != 0 || len(got.Kids) != 2 || got.Verified < 40 {
		t.Fatalf("with the key published ahead jose rejected %d of %d fresh tokens (errors %v), saw %d keys sign",
			got.Rejected, got.Rejected+got.Verified, got.Errors, len(got.Kids))
	}
	t.Logf("control: %d rejected (%s); prepublished: %d verified across %d keys",
		control.Rejected, strings.Join(control.Errors, ","), got.Verified, len(got.Kids))
}
