package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// startReplica makes a streaming replica of primary with pg_basebackup -R
// and starts it on its own port; it is stopped and removed with the test.
func startReplica(t *testing.T, primary *privatePG) *privatePG {
	t.Helper()
	dir, err := os.MkdirTemp("", "sieve-faults-replica-")
	if err != nil {
		t.Fatal(err)
	}
	r := &privatePG{bindir: primary.bindir, dir: dir, data: filepath.Join(dir, "data"), port: freePort(t)}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(r.data, "postmaster.pid")); err == nil {
			_ = r.ctl("stop", "-m", "immediate", "-w", "-t", "30")
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o777); err != nil { // pg_basebackup (as postgres) creates data/ here
		t.Fatal(err)
	}
	if out, err := r.command("pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(primary.port), "-U", "postgres",
		"-D", r.data, "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	// The copied configuration names the primary's port and socket
	// directory; the last setting wins.
	run := filepath.Join(dir, "run")
	if out, err := asPostgres("mkdir", "-p", run).CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v %s", err, out)
	}
	conf := fmt.Sprintf("\n# replica of a fault test\nport = %d\nunix_socket_directories = '%s'\nhot_standby = on\n", r.port, run)
	cmd := asPostgres("sh", "-c", "cat >> "+filepath.Join(r.data, "postgresql.conf"))
	cmd.Stdin = strings.NewReader(conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("configure the replica: %v %s", err, out)
	}
	if out, err := asPostgres("touch", filepath.Join(dir, "postgres.log")).CombinedOutput(); err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	r.start(t)
	return r
}

// TestDashboardReadsFromAStreamingReplica runs brokerd against a primary
// with BROKER_READ_DATABASE_URL pointing at a real streaming replica: the
// compliance API's audit reads come from the replica (catching up with the
// primary), releases and erasures stay on the primary, and `brokerctl
// audit verify` checks the replica's copy of the log against the signed
// checkpoints with the same result as the primary.
func TestDashboardReadsFromAStreamingReplica(t *testing.T) {
	primary := startPrivatePG(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, primary.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE sieve"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	replica := startReplica(t, primary)

	w := newWorld(t, primary.url("sieve"))
	w.brokerctl("keys", "init")
	w.brokerctl("migrate")
	w.seedRetailer("")
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := w.brokerctl("partner", "create", "--name", "Auditor", "--kind", "compliance", "--scopes", "audit:read", "--json")
	if err := json.Unmarshal([]byte(out), &creds); err != nil {
		t.Fatal(err)
	}
	addr := pgtest.FreeAddr(t)
	b := &brokerd{addr: addr, url: "http://" + addr}
	b.proc = startProc(t, "brokerd", append(w.env(addr), "BROKER_READ_DATABASE_URL="+replica.url("sieve")), "brokerd")
	if err := b.waitReady(t, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	w.wasimShop(b.url+"/webhooks/whatsapp", "919811119999", 30*time.Second)

	// The audit log on the primary, once integrated.
	pconn, err := pgx.Connect(ctx, primary.url("sieve"))
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Close(ctx)
	var primarySize int
	waitFor(t, "the primary's audit log to be integrated", time.Minute, func() (bool, string) {
		var pending int
		_ = pconn.QueryRow(ctx, "SELECT count(*) FROM audit_pending").Scan(&pending)
		_ = pconn.QueryRow(ctx, "SELECT size FROM audit_tree").Scan(&primarySize)
		var cp int
		_ = pconn.QueryRow(ctx, "SELECT coalesce(max(size), 0) FROM audit_checkpoints").Scan(&cp)
		return pending == 0 && primarySize > 0 && cp == primarySize, fmt.Sprintf("pending %d, size %d, checkpoint %d", pending, primarySize, cp)
	})

	// The compliance API answers from the replica, which catches up.
	tok := accessToken(t, b.url, creds.ClientID, creds.ClientSecret)
	waitFor(t, "the replica to serve every audit entry", time.Minute, func() (bool, string) {
		req, _ := http.NewRequest("GET", b.url+"/v1/audit/entries?limit=500", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var page struct {
			Entries []json.RawMessage `json:"entries"`
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil {
			return false, fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		}
		return len(page.Entries) >= primarySize, fmt.Sprintf("%d of %d entries", len(page.Entries), primarySize)
	})
	rconn, err := pgx.Connect(ctx, replica.url("sieve"))
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(ctx)
	var inRecovery bool
	if err := rconn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("the replica is not a standby (in recovery %v, %v)", inRecovery, err)
	}

	// Verification from the replica gives the primary's answer.
	onPrimary := w.auditVerify()
	rw := *w
	rw.dbURL = replica.url("sieve")
	waitFor(t, "the replica's checkpoint to match", time.Minute, func() (bool, string) {
		var cp uint64
		_ = rconn.QueryRow(ctx, "SELECT coalesce(max(size), 0) FROM audit_checkpoints").Scan(&cp)
		return cp == onPrimary, fmt.Sprintf("replica checkpoint %d, primary verified %d", cp, onPrimary)
	})
	if onReplica := rw.auditVerify(); onReplica != onPrimary {
		t.Errorf("audit verify on the replica: %d entries, on the primary %d", onReplica, onPrimary)
	}
	b.terminate(t)
}

// accessToken gets an access token with client credentials.
func accessToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: status %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// asPostgres runs a plain program as the postgres user when we are root
// (the replica's files must belong to the server's user).
func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}
