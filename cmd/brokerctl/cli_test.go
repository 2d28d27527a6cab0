package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
	"github.com/sieve-broker/sieve/commerce"
)

// world is one database and one key directory; ctl runs brokerctl in
// process against them, with the real PostgreSQL and real key files.
type world struct {
	t   *testing.T
	env map[string]string
}

// newWorld migrates a fresh database and creates its keys in a fresh
// directory, as `make run` does.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, env: map[string]string{
		"DATABASE_URL":   pgtest.NewURL(t),
		"BROKER_KEY_DIR": t.TempDir(),
	}}
	w.must("keys", "init")
	w.must("migrate")
	return w
}

// ctl runs brokerctl with the world's environment plus extra (KEY=VALUE).
func (w *world) ctl(extra map[string]string, args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return w.env[k]
	}
	code = run(context.Background(), args, &out, &errOut, getenv)
	return out.String(), errOut.String(), code
}

func (w *world) must(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.ctl(nil, args...)
	if code != 0 {
		w.t.Fatalf("brokerctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// keyFiles lists what a key directory holds, recursively.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// TestRefusesToCreateKeysOverExistingData: brokerctl run with the wrong
// (here: an empty, relative) key directory used to create a fresh key set
// silently, after which audit verify reported tampering, subject export
// "not found", and an erasure erased nothing. It must refuse, name the
// directory as an absolute path, and leave it without keys.
func TestRefusesToCreateKeysOverExistingData(t *testing.T) {
	w := newWorld(t)
	w.must("partner", "create", "--name", "Mart", "--kind", "retailer", "--scopes", "orders:read", "--json")
	w.must("audit", "checkpoint")

	t.Chdir(t.TempDir())
	wrong := map[string]string{"BROKER_KEY_DIR": filepath.Join("elsewhere", "keys")}
	abs, _ := filepath.Abs(wrong["BROKER_KEY_DIR"])
	for _, args := range [][]string{
		{"audit", "verify", "--quiet"},
		{"subject", "export", "--wa-id", "919811112222", "--operator", "asha"},
		{"subject", "erase", "--wa-id", "919811112222", "--operator", "asha"},
		{"keys", "init"},
		{"audit", "key"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, errOut, code := w.ctl(wrong, args...)
			if code == 0 {
				t.Fatalf("ran with an empty key directory over existing data: %q", out)
			}
			for _, want := range []string{"refusing to create keys", abs, "partners", "audit checkpoints"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("error does not say %q: %s", want, errOut)
				}
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("error is not one line: %q", errOut)
			}
			if files := keyFiles(t, abs); len(files) != 0 {
				t.Fatalf("keys were created anyway: %v", files)
			}
		})
	}
	// One key lost from the right directory (here the pseudonym key, which
	// keys every blind index): not silently replaced either.
	partial := t.TempDir()
	if err := os.CopyFS(partial, os.DirFS(w.env["BROKER_KEY_DIR"])); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(partial, "pseudonym.key")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := w.ctl(map[string]string{"BROKER_KEY_DIR": partial}, "partner", "rotate-secret", "cli_x")
	if code == 0 || !strings.Contains(errOut, "refusing to create keys in "+partial) || !strings.Contains(errOut, "pseudonym key") {
		t.Fatalf("a missing pseudonym key: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(partial, "pseudonym.key")); err == nil {
		t.Fatal("a new pseudonym key was created")
	}

	// Another deployment's complete key set is not created, only used: a
	// failed verification then names the directory its keys came from.
	other := newWorld(t).env["BROKER_KEY_DIR"]
	_, errOut, code = w.ctl(map[string]string{"BROKER_KEY_DIR": other}, "audit", "verify", "--quiet")
	if code != 1 || !strings.Contains(errOut, "FAILED") || !strings.Contains(errOut, other) {
		t.Fatalf("verify with another deployment's keys: exit %d %s", code, errOut)
	}

	// The right directory still works, and a command that needs no key
	// works from anywhere.
	if out := w.must("audit", "verify", "--quiet"); !strings.HasPrefix(out, "ok ") {
		t.Fatalf("audit verify: %q", out)
	}
	if _, errOut, code := w.ctl(wrong, "partner", "list", "--json"); code != 0 {
		t.Fatalf("partner list needs no key: %s", errOut)
	}
}

// TestKeysInitBeforeMigrateAndOnAFreshDatabase: the guard must not stand in
// the way of a first start (keys init runs before migrate in make run),
// nor of a database that holds only data keys this directory can unwrap.
func TestKeysInitBeforeMigrateAndOnAFreshDatabase(t *testing.T) {
	w := &world{t: t, env: map[string]string{"DATABASE_URL": emptyDatabase(t), "BROKER_KEY_DIR": t.TempDir()}}
	out := w.must("keys", "init")
	if !strings.Contains(out, "created") || !strings.Contains(out, w.env["BROKER_KEY_DIR"]) {
		t.Fatalf("keys init: %q", out)
	}
	w.must("migrate")
	w.must("keys", "init") // idempotent with the data present
}

// emptyDatabase is a database without the schema: pgtest's are migrated,
// so drop what the migrations made.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	u := pgtest.NewURL(t)
	w := &world{t: t, env: map[string]string{"DATABASE_URL": u}}
	c := &cli{cfg: config.FromEnv(func(k string) string { return w.env[k] })}
	c.cfg.SetDefaults()
	d, err := c.database(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Pool.Exec(context.Background(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestMigrateInProductionNeedsNoKeys: migrate opens only the database, so
// it works with BROKER_ENV=production before keys or WhatsApp secrets
// exist (issue 15); a command that needs keys says which directory lacks
// them, as an absolute path.
func TestMigrateInProductionNeedsNoKeys(t *testing.T) {
	keys := t.TempDir()
	w := &world{t: t, env: map[string]string{"BROKER_ENV": "production", "DATABASE_URL": emptyDatabase(t),
		"BROKER_KEY_DIR": keys}}
	out := w.must("migrate")
	if !strings.Contains(out, "applied") {
		t.Fatalf("migrate: %q", out)
	}
	if files := keyFiles(t, keys); len(files) != 0 {
		t.Fatalf("migrate created keys: %v", files)
	}
	w.must("catalog", "import", "--demo")
	w.must("partner", "list")
	w.must("officer", "list")
	// A database-only command that fails says why, not that keys are missing.
	if _, errOut, code := w.ctl(nil, "partner", "courier", "ret_none", "--none"); code == 0 ||
		!strings.Contains(errOut, "no retailer ret_none") {
		t.Fatalf("partner courier without keys: exit %d %s", code, errOut)
	}
	if files := keyFiles(t, keys); len(files) != 0 {
		t.Fatalf("a database-only command created keys: %v", files)
	}
	if _, errOut, code := w.ctl(nil, "migrate", "--bogus"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("bad flag: exit %d %s", code, errOut)
	}
	// Production with WhatsApp set, keys still missing: the error names the directory.
	prod := map[string]string{"BROKER_ISSUER": "https://broker.example", "WHATSAPP_APP_SECRET": "s",
		"WHATSAPP_VERIFY_TOKEN": "v", "WHATSAPP_ACCESS_TOKEN": "a", "WHATSAPP_API_BASE": "https://graph.example/v25.0",
		"WHATSAPP_PHONE_NUMBER_ID": "123", "SIEVE_DPO_CONTACT": "dpo@shop.example"}
	_, errOut, code := w.ctl(prod, "audit", "verify", "--quiet")
	if code == 0 || !strings.Contains(errOut, keys) || !strings.Contains(errOut, "keys init") {
		t.Fatalf("missing production keys: exit %d %s", code, errOut)
	}
	if files := keyFiles(t, keys); len(files) != 0 {
		t.Fatalf("production created keys: %v", files)
	}
}

// TestAuditExportOut: --out creates a new file and never follows a
// symbolic link or overwrites one unless --force; "-" is stdout.
func TestAuditExportOut(t *testing.T) {
	w := newWorld(t)
	w.must("partner", "create", "--name", "Mart", "--kind", "retailer", "--scopes", "orders:read")
	w.must("audit", "checkpoint")
	dir := t.TempDir()
	t.Chdir(dir)

	stdout := w.must("audit", "export", "--format", "jsonl")
	if stdout == "" {
		t.Fatal("empty export")
	}
	if got := w.must("audit", "export", "--format", "jsonl", "--out", "-"); got != stdout {
		t.Fatalf("--out - differs from stdout: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "-")); !os.IsNotExist(err) {
		t.Fatalf("--out - wrote a file named -: %v", err)
	}

	out := filepath.Join(dir, "log.jsonl")
	w.must("audit", "export", "--format", "jsonl", "--out", out)
	if b, _ := os.ReadFile(out); string(b) != stdout {
		t.Fatalf("file export differs")
	}
	if err := os.WriteFile(out, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := w.ctl(nil, "audit", "export", "--format", "jsonl", "--out", out)
	if code == 0 || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "--force") {
		t.Fatalf("overwrote an existing file: exit %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me\n" {
		t.Fatalf("existing file changed: %q", b)
	}
	w.must("audit", "export", "--format", "jsonl", "--out", out, "--force")
	if b, _ := os.ReadFile(out); string(b) != stdout {
		t.Fatalf("--force did not replace the file")
	}

	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		args := []string{"audit", "export", "--format", "jsonl", "--out", link}
		if force {
			args = append(args, "--force")
		}
		if _, errOut, code := w.ctl(nil, args...); code == 0 {
			t.Fatalf("followed a symbolic link (force %v): %s", force, errOut)
		}
		if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
			t.Fatalf("wrote through a symbolic link (force %v): %q", force, b)
		}
	}
	dangling := filepath.Join(dir, "dangling.jsonl")
	if err := os.Symlink(filepath.Join(dir, "created-through-link"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, _, code := w.ctl(nil, "audit", "export", "--format", "jsonl", "--out", dangling); code == 0 {
		t.Fatal("created a file through a dangling symbolic link")
	}
	if _, err := os.Lstat(filepath.Join(dir, "created-through-link")); !os.IsNotExist(err) {
		t.Fatalf("a file was created through the link: %v", err)
	}
}

// TestStoreConflictIsOneCleanLine: a unique violation used to print
// PostgreSQL's own text (constraint names, "duplicate key value", the
// SQLSTATE). It must be one line in brokerctl's words.
func TestStoreConflictIsOneCleanLine(t *testing.T) {
	w := newWorld(t)
	args := []string{"partner", "create", "--name", "Mart", "--kind", "retailer", "--scopes", "orders:read", "--store", "100000000000009"}
	w.must(args...)
	_, errOut, code := w.ctl(nil, args...)
	if code != 1 {
		t.Fatalf("second retailer of the same store: exit %d %s", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "conflict") {
		t.Errorf("want one line naming the conflict: %q", errOut)
	}
	for _, raw := range []string{"SQLSTATE", "duplicate key", "constraint", "violates", "ERROR:"} {
		if strings.Contains(errOut, raw) {
			t.Errorf("raw PostgreSQL text %q printed: %q", raw, errOut)
		}
	}
}

// TestReportProcessingJSON: --json was ignored (JSON always). Now the
// record prints for people by default and as JSON with --json; it needs
// no database (here: one that does not answer) and no key.
func TestReportProcessingJSON(t *testing.T) {
	w := &world{t: t, env: map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/none?sslmode=disable",
		"BROKER_KEY_DIR": t.TempDir()}}
	text := w.must("report", "processing")
	if strings.HasPrefix(strings.TrimSpace(text), "{") || !strings.Contains(text, "Record of processing activities") ||
		!strings.Contains(text, "lawful basis") {
		t.Fatalf("report processing without --json: %q", text)
	}
	var rec wire.ProcessingRecord
	if err := json.Unmarshal([]byte(w.must("report", "processing", "--json")), &rec); err != nil {
		t.Fatalf("--json is not JSON: %v", err)
	}
	if len(rec.Activities) == 0 || len(rec.Retention) == 0 {
		t.Fatalf("empty record: %+v", rec)
	}
	if files := keyFiles(t, w.env["BROKER_KEY_DIR"]); len(files) != 0 {
		t.Fatalf("report processing created keys: %v", files)
	}
}

// TestJSONFlagsAreHonoured: every command whose usage lists --json prints
// JSON with it.
func TestJSONFlagsAreHonoured(t *testing.T) {
	w := newWorld(t)
	created := w.must("partner", "create", "--name", "Mart", "--kind", "retailer", "--scopes", "orders:read", "--json")
	var p struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal([]byte(created), &p); err != nil || p.ClientID == "" {
		t.Fatalf("partner create --json: %q", created)
	}
	w.must("catalog", "import", "--demo")
	runs := map[string][]string{
		"partner create":        {"partner", "create", "--name", "Couriers", "--kind", "logistics", "--scopes", "delivery:read", "--json"},
		"partner list":          {"partner", "list", "--json"},
		"partner rotate-secret": {"partner", "rotate-secret", p.ClientID, "--json"},
		"catalog list":          {"catalog", "list", "--json"},
		"report processing":     {"report", "processing", "--json"},
		"officer create":        {"officer", "create", "--name", "asha", "--json"},
		"officer list":          {"officer", "list", "--json"},
		"grievance list":        {"grievance", "list", "--json"},
	}
	for name, cmd := range commands {
		if !strings.Contains(cmd.usage, "--json") {
			continue
		}
		args, ok := runs[name]
		if !ok {
			t.Errorf("%s lists --json but this test does not run it", name)
			continue
		}
		out, errOut, code := w.ctl(nil, args...)
		if code != 0 || !json.Valid([]byte(out)) {
			t.Errorf("%s --json: exit %d, not JSON: %q %s", name, code, out, errOut)
		}
	}
}

// TestOperatorAttribution: CLI actions were attributed to
// officer:brokerctl. They name --operator, else SIEVE_OPERATOR, else the
// login name; a name that does not fit an audit leaf is refused.
func TestOperatorAttribution(t *testing.T) {
	w := newWorld(t)
	const waID = "919811112222"
	w.seedShopper(waID)

	w.must("subject", "export", "--wa-id", waID, "--operator", "asha")
	if _, errOut, code := w.ctl(map[string]string{"SIEVE_OPERATOR": "ravi.k"}, "subject", "export", "--wa-id", waID); code != 0 {
		t.Fatal(errOut)
	}
	// The flag wins over the variable, and may come before the command.
	if _, errOut, code := w.ctl(map[string]string{"SIEVE_OPERATOR": "ravi.k"}, "--operator=meena", "subject", "export", "--wa-id", waID); code != 0 {
		t.Fatal(errOut)
	}
	want := []string{"officer:asha", "officer:ravi.k", "officer:meena"}
	if u, err := user.Current(); err == nil && operatorName.MatchString(loginName(u.Username)) {
		w.must("subject", "export", "--wa-id", waID)
		want = append(want, "officer:"+loginName(u.Username))
	}
	for _, bad := range []string{"Asha Verma", "asha;drop", "", strings.Repeat("a", 33), "officer:x"} {
		_, errOut, code := w.ctl(nil, "subject", "export", "--wa-id", waID, "--operator", bad)
		if code != 2 || !strings.Contains(errOut, "--operator") {
			t.Errorf("--operator %q: exit %d %s", bad, code, errOut)
		}
		_, errOut, code = w.ctl(map[string]string{"SIEVE_OPERATOR": bad + "!"}, "subject", "export", "--wa-id", waID)
		if code == 0 || !strings.Contains(errOut, "SIEVE_OPERATOR") {
			t.Errorf("SIEVE_OPERATOR %q: exit %d %s", bad+"!", code, errOut)
		}
	}
	w.must("audit", "checkpoint")

	db := w.open()
	rows, err := db.DB.Pool.Query(context.Background(), "SELECT actor FROM audit_entries WHERE action = 'export' ORDER BY idx")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("export entries name %v, want %v", got, want)
	}
}

// open opens the world's whole system in the test (to seed what no
// command creates), closed when the test ends.
func (w *world) open() *wire.System {
	w.t.Helper()
	cfg := config.FromEnv(func(k string) string { return w.env[k] })
	cfg.SetDefaults()
	sys, err := wire.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(sys.Close)
	return sys
}

// seedShopper creates a shopper with a sealed identity, as the first
// message from waID does.
func (w *world) seedShopper(waID string) {
	w.t.Helper()
	sys := w.open()
	ctx := context.Background()
	err := sys.DB.InTx(ctx, func(ctx context.Context) error {
		row, _, err := sys.Stores.Subjects.EnsureSubject(ctx, sys.Pseudo.BlindIndex("wa", waID), broker.NewID("shp"))
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"wa_id": waID, "name": "Test Shopper"})
		sealed, err := sys.Sealer.Seal(ctx, row.ID, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: row.ID}, b)
		if err != nil {
			return err
		}
		return sys.Stores.Subjects.SetSubjectIdentity(ctx, row.ID, sealed)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func TestTakeOperator(t *testing.T) {
	tests := []struct {
		args     []string
		rest     string
		name     string
		hasError bool
	}{
		{[]string{"subject", "erase", "--wa-id", "1"}, "subject erase --wa-id 1", "", false},
		{[]string{"--operator", "asha", "subject", "erase"}, "subject erase", "asha", false},
		{[]string{"subject", "erase", "-operator=a.b_c-d"}, "subject erase", "a.b_c-d", false},
		{[]string{"subject", "erase", "--operator"}, "", "", true},
		{[]string{"subject", "erase", "--operator", "ASHA"}, "", "", true},
		{[]string{"subject", "erase", "--operator", "-x"}, "", "", true},
		{[]string{"subject", "erase", "--operator=a\x1fb"}, "", "", true},
	}
	for _, tc := range tests {
		rest, name, err := takeOperator(tc.args)
		if (err != nil) != tc.hasError || strings.Join(rest, " ") != tc.rest || name != tc.name {
			t.Errorf("takeOperator(%q) = %q, %q, %v", tc.args, rest, name, err)
		}
	}
	if loginName(`CORP\Asha`) != "asha" {
		t.Error(`loginName(CORP\Asha)`)
	}
}

// TestSubjectByUserID: `subject export|erase --user-id BSUID` find a
// shopper by business-scoped user id (SPEC §2); one of --wa-id and
// --user-id, never both; erasure removes every identifier's index.
func TestSubjectByUserID(t *testing.T) {
	w := newWorld(t)
	const waID, bsuid = "919811112233", "IN.1410000000112233"
	w.seedShopper(waID)
	sys := w.open()
	ctx := context.Background()
	row, err := sys.Stores.Subjects.SubjectByIndex(ctx, sys.Pseudo.BlindIndex(commerce.IDPhone, waID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Stores.Subjects.LinkIdentifiers(ctx, row.ID, []commerce.IdentifierIndex{{Kind: commerce.IDBSUID,
		Index: sys.Pseudo.BlindIndex(commerce.IDBSUID, bsuid)}}); err != nil {
		t.Fatal(err)
	}
	if out := w.must("subject", "export", "--user-id", bsuid, "--operator", "asha"); !json.Valid([]byte(out)) {
		t.Errorf("export by --user-id: %q", out)
	}
	for _, args := range [][]string{
		{"subject", "export", "--operator", "asha"},
		{"subject", "export", "--wa-id", waID, "--user-id", bsuid, "--operator", "asha"},
	} {
		if _, errOut, code := w.ctl(nil, args...); code != 2 {
			t.Errorf("%q: exit %d %s", args, code, errOut)
		}
	}
	if _, _, code := w.ctl(nil, "subject", "export", "--user-id", "IN 1", "--operator", "asha"); code == 0 {
		t.Error("a malformed --user-id was accepted")
	}
	w.must("subject", "erase", "--user-id", bsuid, "--operator", "asha")
	var n int
	if err := sys.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM subject_identifiers`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d identifiers after erasure (%v)", n, err)
	}
}
