// Package e2e runs the broker end to end: the real system on a fresh
// database, the WhatsApp simulator and the CLIs as built binaries, and a
// real browser.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// The shoppers of the dashboard tests: each with an address that can be
// recognised in any page that leaks it.
type dashShopper struct {
	WaID, Spaced, Local, Name, Address string
}

var (
	asha = dashShopper{WaID: "919811112222", Spaced: "98111 12222", Local: "9811112222", Name: "Asha Verma",
		Address: "7 Lotus Street, Indiranagar, Bengaluru 560038"}
	bala = dashShopper{WaID: "919822223333", Spaced: "98222 23333", Local: "9822223333", Name: "Bala Krishnan",
		Address: "42 Banyan Lane, Jayanagar, Bengaluru 560041"}
)

// pii returns the strings that identify the shopper: the number in its
// usual spellings, the profile name, the address and its street.
func (s dashShopper) pii() []string {
	street, _, _ := strings.Cut(s.Address, ",")
	return []string{s.WaID, s.Spaced, s.Local, s.Name, s.Address, street}
}

// dashWorld is a running broker with its simulator, binaries and data.
type dashWorld struct {
	t        *testing.T
	root     string // repository root
	bin      string // built binaries
	env      []string
	db       *postgres.DB   // the broker's database, read by the test only
	base     string         // the broker's URL
	sim      string         // wasim's fake Send API
	logs     *dashLogBuffer // brokerd's log
	creds    dashCreds
	officer  string
	password string
}

type dashCreds struct {
	Retailer  map[string]string `json:"retailer"`
	Logistics map[string]string `json:"logistics"`
}

// dashLogBuffer collects the broker's log for the no-PII check.
type dashLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *dashLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *dashLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func dashRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := pgtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// newDashWorld builds brokerd, brokerctl and wasim, and runs them as an
// operator would: `wasim serve` as the Send API, brokerd on a free loopback
// port over a fresh database and a temporary key directory, `brokerctl demo
// seed` for the demo catalog and partners and `brokerctl officer create`
// for an officer.
func newDashWorld(t *testing.T) *dashWorld {
	t.Helper()
	w := &dashWorld{t: t, root: dashRepoRoot(t), bin: t.TempDir(), logs: &dashLogBuffer{}}
	build := exec.Command("go", "build", "-o", w.bin+string(filepath.Separator), "./cmd/wasim", "./cmd/brokerctl", "./cmd/brokerd")
	build.Dir = w.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dbURL := pgtest.NewURL(t)
	db, err := postgres.Open(context.Background(), dbURL, postgres.Options{MaxConns: 2, AppName: "e2e-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	w.db = db
	w.sim = w.startSim()
	keys := t.TempDir()
	for attempt := 0; ; attempt++ {
		addr := pgtest.FreeAddr(t)
		w.base = "http://" + addr
		w.env = []string{"DATABASE_URL=" + dbURL, "BROKER_KEY_DIR=" + keys, "BROKER_ADDR=" + addr,
			"WHATSAPP_API_BASE=" + w.sim + "/v25.0", "BROKER_ENV=development", "BROKER_ISSUER=", "WASIM_ADDR=", "WASIM_WEBHOOK_URL="}
		err := w.startBroker()
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("brokerd: %v", err)
		}
	}
	seeded := w.brokerctl("demo", "seed", "--credentials", filepath.Join(t.TempDir(), "creds.json"))
	if err := json.Unmarshal([]byte(seeded), &w.creds); err != nil || w.creds.Retailer["client_id"] == "" {
		t.Fatalf("demo seed printed %q: %v", seeded, err)
	}
	w.officer = "e2e-officer"
	w.password = w.createOfficer(w.officer, "--reset")
	return w
}

// startBroker runs brokerd and waits until it is ready; it is stopped with
// SIGTERM when the test ends.
func (w *dashWorld) startBroker() error {
	cmd := exec.Command(filepath.Join(w.bin, "brokerd"))
	cmd.Dir = w.t.TempDir()
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Stdout = io.MultiWriter(w.logs, dashLogWriter{w.t})
	cmd.Stderr = io.MultiWriter(w.logs, dashLogWriter{w.t})
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the process this test started, by its handle
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it was ready: %v", err)
		default:
		}
		if resp, err := http.Get(w.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w.t.Cleanup(stop)
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return errors.New("not ready within 60 s")
}

// dashLogWriter sends the broker's log to the test log.
type dashLogWriter struct{ t *testing.T }

func (tw dashLogWriter) Write(p []byte) (int, error) {
	tw.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSim runs `wasim serve` on a free port and returns its URL.
func (w *dashWorld) startSim() string {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(w.bin, "wasim"), "serve", "--addr", "127.0.0.1:0", "--quiet")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		_ = cmd.Process.Kill() // the process this test started, by its handle
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`fake Send API on (http://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(30 * time.Second):
		w.t.Fatal("wasim serve did not start")
		return ""
	}
}

// brokerctl runs the CLI against the world and returns its stdout.
func (w *dashWorld) brokerctl(args ...string) string {
	w.t.Helper()
	out, err := w.brokerctlErr(args...)
	if err != nil {
		w.t.Fatalf("brokerctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (w *dashWorld) brokerctlErr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(w.bin, "brokerctl"), args...)
	cmd.Dir = w.t.TempDir()
	cmd.Env = append(os.Environ(), w.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// createOfficer runs `brokerctl officer create` and returns the password.
func (w *dashWorld) createOfficer(name string, flags ...string) string {
	w.t.Helper()
	out := strings.TrimSpace(w.brokerctl(append([]string{"officer", "create", "--name", name}, flags...)...))
	got, pw, ok := strings.Cut(out, " / ")
	if !ok || got != name || len(pw) < 20 {
		w.t.Fatalf("officer create printed %q, want %q / <password>", out, name)
	}
	return pw
}

// shop runs a scripted purchase with `wasim shop` and returns the order id.
func (w *dashWorld) shop(s dashShopper) string {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(w.bin, "wasim"), "shop", "--no-serve", "--sim-url", w.sim,
		"--webhook-url", w.base+"/webhooks/whatsapp", "--wa-id", s.WaID, "--name", s.Name,
		"--address", s.Address, "--timeout", "30s", "--json")
	cmd.Env = append(os.Environ(), w.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		w.t.Fatalf("wasim shop: %v\n%s", err, stderr.String())
	}
	var res struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || !strings.HasPrefix(res.OrderID, "ord_") {
		w.t.Fatalf("wasim shop printed %q: %v", stdout.String(), err)
	}
	return res.OrderID
}

// chat sends lines as the shopper through `wasim chat` (which ends at the
// end of its input), as a person typing them would.
func (w *dashWorld) chat(s dashShopper, lines ...string) {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(w.bin, "wasim"), "chat", "--no-serve", "--sim-url", w.sim,
		"--webhook-url", w.base+"/webhooks/whatsapp", "--wa-id", s.WaID, "--name", s.Name)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		w.t.Fatalf("wasim chat: %v\n%s", err, stderr.String())
	}
}

// partnerToken gets an access token for demo partner creds.
func (w *dashWorld) partnerToken(creds map[string]string) string {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.base+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(creds["client_id"], creds["client_secret"])
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	w.doJSON(req, http.StatusOK, &tok)
	return tok.AccessToken
}

func (w *dashWorld) doJSON(req *http.Request, want int, v any) {
	w.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		w.t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			w.t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, b)
		}
	}
}

// partnerTraffic makes the retailer read its orders (releases) and ask for
// marketing data the shoppers never opted in to (denials).
func (w *dashWorld) partnerTraffic() {
	w.t.Helper()
	tok := w.partnerToken(w.creds.Retailer)
	req, _ := http.NewRequest("GET", w.base+"/v1/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	var list struct {
		Orders []struct {
			OrderID     string `json:"order_id"`
			CustomerRef string `json:"customer_ref"`
		} `json:"orders"`
	}
	w.doJSON(req, http.StatusOK, &list)
	if len(list.Orders) == 0 {
		w.t.Fatal("the retailer sees no orders")
	}
	for _, o := range list.Orders {
		req, _ := http.NewRequest("GET", w.base+"/v1/orders/"+o.OrderID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w.doJSON(req, http.StatusOK, nil)
		body := fmt.Sprintf(`{"subject":%q,"purpose":"marketing","fields":["customer.ref","delivery.postal_code"]}`, o.CustomerRef)
		req, _ = http.NewRequest("POST", w.base+"/v1/data-requests", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		w.doJSON(req, http.StatusOK, nil)
	}
}

// waitIntegrated waits until the audit log holds a signed checkpoint of
// every entry appended so far.
func (w *dashWorld) waitIntegrated() {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := w.db.AuditTree().AuditStatus(context.Background())
		if err == nil && st.Pending == 0 && st.Size > 0 && st.CheckpointSize == st.Size {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatal("the audit log was not checkpointed in time")
}

// ---------------------------------------------------------------------------
// The browser test

// dashChromium returns the browser's path, installing Debian's chromium through
// scripts/chromium.sh when missing. Without it the test fails under CI and
// is skipped elsewhere.
func dashChromium(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "scripts", "chromium.sh")).Output()
	path := strings.TrimSpace(string(out))
	if err != nil || path == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("Chromium is required in CI: scripts/chromium.sh: %v", err)
		}
		t.Skipf("no Chromium (scripts/chromium.sh: %v)", err)
	}
	return path
}

// dashBrowser drives one headless Chromium tab.
type dashBrowser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	n     int
}

func newDashBrowser(t *testing.T, exe string) *dashBrowser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); acancel() })
	// Start the browser on a context without a deadline (a deadline on the
	// first run would bound the browser's whole life).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	b := &dashBrowser{t: t, ctx: ctx, shots: t.ArtifactDir()}
	t.Logf("screenshots in %s", b.shots)
	return b
}

// do runs steps with a time limit.
func (b *dashBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

func dashRun[T any](b *dashBrowser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// shot saves a full-page screenshot.
func (b *dashBrowser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// text reads an element's text.
func (b *dashBrowser) text(sel string) string {
	b.t.Helper()
	return dashRun(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (b *dashBrowser) eval(js string) string {
	b.t.Helper()
	return dashRun(b, "evaluate", chromedp.Evaluate[string](js))
}

// waitURL waits until the page's URL contains want (after a click that
// navigates) and returns it.
func (b *dashBrowser) waitURL(want string) string {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc := dashRun(b, "location", chromedp.Location())
		if strings.Contains(loc, want) {
			return loc
		}
		if time.Now().After(deadline) {
			b.shot("failed-url")
			b.t.Fatalf("the URL never contained %q (last %s)", want, loc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor reloads until the element's text contains want.
func (b *dashBrowser) waitFor(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failed-wait")
			b.t.Fatalf("%s never showed %q (last %q, %v)", sel, want, got, err)
		}
		time.Sleep(300 * time.Millisecond)
		b.do("reload", chromedp.Reload())
	}
}

func TestDashboardBrowser(t *testing.T) {
	w := newDashWorld(t)
	exe := dashChromium(t, w.root)
	order := w.shop(asha)
	w.shop(bala)
	w.partnerTraffic()
	w.waitIntegrated()
	b := newDashBrowser(t, exe)

	// Sign in: /ui sends an anonymous visitor to the sign-in page.
	b.do("open the dashboard", chromedp.Navigate(w.base+"/ui"), chromedp.WaitVisible(chromedp.ID("signin")))
	if loc := dashRun(b, "location", chromedp.Location()); !strings.HasPrefix(loc, w.base+"/ui/login") {
		t.Fatalf("/ui went to %s, want the sign-in page", loc)
	}
	b.shot("login")
	b.do("sign in",
		chromedp.SendKeys(chromedp.ID("name"), w.officer),
		chromedp.SendKeys(chromedp.ID("password"), w.password),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("new-password")))
	// The password brokerctl printed is one-time: the dashboard holds the
	// officer on the password page until they choose their own.
	if got := b.text("#password-forced"); !strings.Contains(got, "one-time password") {
		t.Errorf("password page says %q, want the one-time password notice", got)
	}
	b.shot("password")
	chosen := "my own passphrase for the desk"
	b.do("choose a password",
		chromedp.SendKeys(chromedp.ID("current-password"), w.password),
		chromedp.SendKeys(chromedp.ID("new-password"), chosen),
		chromedp.SendKeys(chromedp.ID("new-password-again"), chosen),
		chromedp.Click(chromedp.ID("change-password")),
		chromedp.WaitVisible(chromedp.ID("checkpoint-status")))
	w.password = chosen
	if got := b.text("#checkpoint-status"); !strings.Contains(got, "verified") {
		t.Errorf("overview checkpoint status %q, want verified", got)
	}
	if got := b.text("#total-released"); got == "0" {
		t.Errorf("overview shows no releases")
	}
	if got := b.text("#total-denied"); got == "0" {
		t.Errorf("overview shows no denials")
	}
	b.shot("overview")

	// The other pages: what was released, the policy, the Art. 30 record.
	b.do("data flows", chromedp.Navigate(w.base+"/ui/flows"), chromedp.WaitVisible(chromedp.ID("flows")))
	if got := b.text("#flows"); !strings.Contains(got, "Demo Fresh Mart") || !strings.Contains(got, "delivery.address") ||
		strings.Contains(got, "customer.phone") {
		t.Errorf("data flows %q: want the retailer's releases, never the phone", got)
	}
	b.shot("flows")
	b.do("policies", chromedp.Navigate(w.base+"/ui/policies"), chromedp.WaitVisible(chromedp.ID("policy-revision")))
	b.shot("policies")
	b.do("reports", chromedp.Navigate(w.base+"/ui/reports"), chromedp.WaitVisible(chromedp.ID("art30")))
	b.shot("reports")

	// Filter the audit log: the retailer's order fulfilment releases.
	retailer := "retailer:" + w.creds.Retailer["client_id"]
	b.do("open the audit log", chromedp.Navigate(w.base+"/ui/audit"), chromedp.WaitVisible(chromedp.ID("filters")),
		chromedp.SetValue(chromedp.ID("f-partner"), retailer),
		chromedp.SetValue(chromedp.ID("f-purpose"), "order_fulfilment"),
		// The retailer's view always withholds the shopper's phone and
		// name: its releases are partial.
		chromedp.SetValue(chromedp.ID("f-outcome"), "partial"),
		chromedp.Click(chromedp.ID("apply")))
	loc := b.waitURL("outcome=partial")
	b.do("filtered", chromedp.WaitVisible(chromedp.ID("entries")))
	for _, want := range []string{"partner=" + url.QueryEscape(retailer), "purpose=order_fulfilment"} {
		if !strings.Contains(loc, want) {
			t.Errorf("filtered URL %s lacks %s", loc, want)
		}
	}
	rows := b.eval(`Array.from(document.querySelectorAll("#entries tr.entry")).map(r => r.cells[2].innerText + "|" + r.cells[4].innerText + "|" + r.cells[7].innerText).join("\n")`)
	if rows == "" {
		t.Fatal("the filter shows no entries")
	}
	for _, r := range strings.Split(rows, "\n") {
		if !strings.Contains(r, "Demo Fresh Mart") || !strings.Contains(r, "order fulfilment") || !strings.HasSuffix(r, "partial") {
			t.Errorf("row %q does not match the filter", r)
		}
	}
	b.shot("audit-filtered")

	// Open an entry: its inclusion proof, verified by the broker.
	b.do("open an entry", chromedp.Click(chromedp.CSS("#entries a.entry-link")), chromedp.WaitVisible(chromedp.ID("proof")))
	b.waitFor("#proof-status", "verified ✓")
	if hashes := b.eval(`String(document.querySelectorAll("#proof-hashes li").length)`); hashes == "0" {
		t.Error("the verified proof shows no hashes")
	}
	b.shot("entry-verified")

	// Look the demo shopper up: a POST, so the number is in no URL.
	b.do("look up", chromedp.Navigate(w.base+"/ui/subjects"), chromedp.WaitVisible(chromedp.ID("wa_id")),
		chromedp.SendKeys(chromedp.ID("wa_id"), "+91 "+asha.Spaced),
		chromedp.Click(chromedp.ID("lookup")),
		chromedp.WaitVisible(chromedp.ID("pseudonym")))
	if loc := dashRun(b, "location", chromedp.Location()); strings.Contains(loc, asha.Local) || strings.Contains(loc, "wa_id") {
		t.Errorf("the number is in the URL: %s", loc)
	}
	pseudonym := b.text("#pseudonym")
	if !strings.HasPrefix(pseudonym, "sub_") {
		t.Fatalf("pseudonym %q", pseudonym)
	}
	if got := b.text("#disclosures"); !strings.Contains(got, "Demo Fresh Mart") || !strings.Contains(got, "order fulfilment") {
		t.Errorf("disclosures %q do not name the retailer and the purpose", got)
	}
	if got := b.text("#orders"); !strings.Contains(got, order) {
		t.Errorf("orders %q lack %s", got, order)
	}
	// The consent view: the artefact of the notice's acceptance, with its
	// version and language (SPEC §10).
	if got := b.text("#consent-lang"); got != "en" {
		t.Errorf("consent language %q, want en", got)
	}
	if got := b.text("#consent-notice"); len(got) != 12 {
		t.Errorf("accepted notice version %q, want a 12-digit prefix of its SHA-256", got)
	}
	arts := b.eval(`Array.from(document.querySelectorAll("#consents tr.artefact")).map(r => r.querySelector(".artefact-status").innerText + "|" + r.cells[2].innerText + "|" + r.querySelector(".artefact-lang").innerText).join("\n")`)
	if !strings.Contains(arts, "given|") || !strings.Contains(arts, "order_fulfilment") || !strings.Contains(arts, "|en") {
		t.Errorf("consent artefacts listed %q, want the notice's acceptance", arts)
	}
	b.shot("subject")

	// The restriction view: the shopper pauses their data in the chat
	// (GDPR Art. 18) and the subject page says so.
	if got := b.eval(`document.body.innerText`); strings.Contains(got, "paused by the shopper") {
		t.Fatal("the shopper shows as paused before pausing")
	}
	w.chat(asha, "pause my data")
	paused := false
	for i := 0; i < 20 && !paused; i++ {
		b.do("look up again", chromedp.Navigate(w.base+"/ui/subjects"), chromedp.WaitVisible(chromedp.ID("wa_id")),
			chromedp.SendKeys(chromedp.ID("wa_id"), "+91 "+asha.Spaced),
			chromedp.Click(chromedp.ID("lookup")),
			chromedp.WaitVisible(chromedp.ID("pseudonym")))
		paused = strings.Contains(b.eval(`document.body.innerText`), "paused by the shopper")
		if !paused {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if !paused {
		t.Error("the subject page does not show the shopper's pause")
	}
	b.shot("subject-paused")

	// Erase, through the confirmation step.
	b.do("erase", chromedp.Click(chromedp.ID("erase")), chromedp.WaitVisible(chromedp.ID("confirm-erase")))
	b.shot("erase-confirm")
	b.do("confirm", chromedp.Click(chromedp.ID("understood")), chromedp.Click(chromedp.ID("confirm-erase")),
		chromedp.WaitVisible(chromedp.ID("erased")))
	b.shot("erased")

	// The erasure is in the audit log, under the pseudonym.
	b.do("erasure in the log", chromedp.Click(chromedp.ID("erasure-audit")), chromedp.WaitVisible(chromedp.ID("filters")))
	if v := dashRun(b, "subject filter", chromedp.Evaluate[string](`document.getElementById("f-subject").value`)); v != pseudonym {
		t.Errorf("subject filter %q, want %q", v, pseudonym)
	}
	b.waitFor(`#entries tr.entry[data-action="erase"]`, "erasure")
	b.shot("erasure-in-log")

	// And the shopper is nobody now.
	b.do("look up again", chromedp.Navigate(w.base+"/ui/subjects"), chromedp.WaitVisible(chromedp.ID("wa_id")),
		chromedp.SendKeys(chromedp.ID("wa_id"), asha.WaID),
		chromedp.Click(chromedp.ID("lookup")),
		chromedp.WaitVisible(chromedp.ID("not-found")))
	b.shot("not-found")

	// Sign out.
	b.do("sign out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("signin")))
	b.do("after sign-out", chromedp.Navigate(w.base+"/ui/overview"), chromedp.WaitVisible(chromedp.ID("signin")))
	dashAssertNoPII(t, "broker log", w.logs.String(), asha, bala)
}

// ---------------------------------------------------------------------------
// HTTP-level tests

// dashOfficerClient is an HTTP client with a cookie jar that does not follow
// redirects, signed in as an officer.
type dashOfficerClient struct {
	w    *dashWorld
	c    *http.Client
	csrf string
}

func newDashClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var (
	dashReCSRFMeta  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)
	dashReLoginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// dashSignIn posts the sign-in form and returns the status.
func dashSignIn(t *testing.T, w *dashWorld, c *http.Client, name, password string) int {
	t.Helper()
	page := dashGet(t, c, w.base+"/ui/login")
	m := dashReLoginCSRF.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page")
	}
	return dashPost(t, c, w.base+"/ui/login", url.Values{"csrf": {m[1]}, "name": {name}, "password": {password}}).status
}

func (w *dashWorld) signedIn(t *testing.T) *dashOfficerClient {
	t.Helper()
	c := newDashClient(t)
	if st := dashSignIn(t, w, c, w.officer, w.password); st != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", st)
	}
	page := dashGet(t, c, w.base+"/ui/subjects")
	if page.status == http.StatusSeeOther && strings.HasPrefix(page.header.Get("Location"), "/ui/password") {
		w.choosePassword(t, c)
		page = dashGet(t, c, w.base+"/ui/subjects")
	}
	m := dashReCSRFMeta.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("signed in, but no CSRF token: %d", page.status)
	}
	return &dashOfficerClient{w: w, c: c, csrf: m[1]}
}

// choosePassword replaces the officer's one-time password on the page the
// dashboard holds them on until they do, as an officer does at the first
// sign-in.
func (w *dashWorld) choosePassword(t *testing.T, c *http.Client) {
	t.Helper()
	page := dashGet(t, c, w.base+"/ui/password")
	m := dashReCSRFMeta.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil || !strings.Contains(page.body, `id="password-forced"`) {
		t.Fatalf("password page: %d, want the one-time password form", page.status)
	}
	fresh := "chosen " + w.password
	r := dashPost(t, c, w.base+"/ui/password", url.Values{"csrf": {m[1]}, "current": {w.password},
		"password": {fresh}, "again": {fresh}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("changing the one-time password: %d\n%s", r.status, r.body)
	}
	w.password = fresh
}

// lookup looks a shopper up on the subject desk and returns the status.
func (o *dashOfficerClient) lookup(t *testing.T, s dashShopper) int {
	t.Helper()
	return dashPost(t, o.c, o.w.base+"/ui/subjects/lookup", url.Values{"csrf": {o.csrf}, "wa_id": {s.WaID}}).status
}

type dashPage struct {
	status int
	header http.Header
	body   string
}

func dashGet(t *testing.T, c *http.Client, u string) dashPage {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return dashRead(t, resp)
}

func dashPost(t *testing.T, c *http.Client, u string, form url.Values) dashPage {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	return dashRead(t, resp)
}

func dashRead(t *testing.T, resp *http.Response) dashPage {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return dashPage{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// dashAssertNoPII fails when text holds a shopper's number, name or address
// (HTML-escaped or not).
func dashAssertNoPII(t *testing.T, where, text string, shoppers ...dashShopper) {
	t.Helper()
	for _, s := range shoppers {
		for _, p := range s.pii() {
			if strings.Contains(text, p) || strings.Contains(text, html.EscapeString(p)) {
				t.Errorf("%s shows %q of shopper %s", where, p, s.Name)
			}
		}
	}
}

var dashReEntryLink = regexp.MustCompile(`href="/ui/audit/(\d+)"`)

func TestDashboardHTTP(t *testing.T) {
	w := newDashWorld(t)
	w.shop(asha)
	w.shop(bala)
	w.partnerTraffic()
	w.waitIntegrated()
	o := w.signedIn(t)

	t.Run("no page or export shows a shopper not looked up", func(t *testing.T) {
		// Every page and export an officer can reach without naming a
		// shopper: none may show any shopper's number, name or address.
		pages := []string{"/ui/overview", "/ui/overview?range=1h", "/ui/overview?range=7d", "/ui/overview?range=30d",
			"/ui/audit", "/ui/flows", "/ui/policies", "/ui/market", "/ui/subjects", "/ui/reports", "/ui/reports/audit.csv",
			"/v1/reports/processing", "/v1/audit/entries?limit=500", "/v1/audit/checkpoint"}
		audit := dashGet(t, o.c, w.base+"/ui/audit")
		for _, m := range dashReEntryLink.FindAllStringSubmatch(audit.body, -1) {
			pages = append(pages, "/ui/audit/"+m[1])
		}
		if len(pages) < 20 {
			t.Fatalf("only %d pages to check: is the audit log empty?", len(pages))
		}
		var slowest time.Duration
		var slowPage string
		for _, p := range pages {
			start := time.Now()
			r := dashGet(t, o.c, w.base+p)
			if d := time.Since(start); d > slowest {
				slowest, slowPage = d, p
			}
			if r.status != http.StatusOK {
				t.Errorf("GET %s: %d", p, r.status)
			}
			dashAssertNoPII(t, p, r.body, asha, bala)
		}
		t.Logf("%d pages checked; the slowest, %s, took %v", len(pages), slowPage, slowest)

		// The pages about Asha, asked for by number, show nothing of Bala,
		// and no more of Asha than the masked number.
		lookup := dashPost(t, o.c, w.base+"/ui/subjects/lookup", url.Values{"csrf": {o.csrf}, "wa_id": {asha.WaID}})
		if lookup.status != http.StatusOK || !strings.Contains(lookup.body, `id="disclosures"`) {
			t.Fatalf("look-up: %d", lookup.status)
		}
		dashAssertNoPII(t, "look-up of Asha", strings.ReplaceAll(lookup.body, `value="`+asha.WaID+`"`, ""), asha, bala)
		confirm := dashPost(t, o.c, w.base+"/ui/subjects/erase", url.Values{"csrf": {o.csrf}, "wa_id": {asha.WaID}})
		if confirm.status != http.StatusOK || !strings.Contains(confirm.body, `id="confirm-erase"`) {
			t.Fatalf("erase confirmation: %d", confirm.status)
		}
		dashAssertNoPII(t, "erase confirmation for Asha", strings.ReplaceAll(confirm.body, `value="`+asha.WaID+`"`, ""), asha, bala)

		// Her export holds her data, and nobody else's.
		ex := dashPost(t, o.c, w.base+"/ui/subjects/export", url.Values{"csrf": {o.csrf}, "wa_id": {asha.WaID}})
		if ex.status != http.StatusOK || !strings.HasPrefix(ex.header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("export: %d %v", ex.status, ex.header)
		}
		var doc struct {
			Subject string `json:"subject"`
			WaID    string `json:"wa_id"`
			Orders  []struct {
				Address struct {
					Address string `json:"address"`
				} `json:"address"`
			} `json:"orders"`
			Disclosures []json.RawMessage `json:"disclosures"`
		}
		if err := json.Unmarshal([]byte(ex.body), &doc); err != nil {
			t.Fatalf("export is not JSON: %v", err)
		}
		if doc.WaID != asha.WaID || len(doc.Orders) == 0 || doc.Orders[0].Address.Address != asha.Address || len(doc.Disclosures) == 0 {
			t.Errorf("export = %+v, want Asha's number, order address and disclosures", doc)
		}
		dashAssertNoPII(t, "export of Asha", ex.body, bala)

		// The officer's own actions are in the audit log, by pseudonym only.
		w.waitIntegrated()
		csv := dashGet(t, o.c, w.base+"/ui/reports/audit.csv?subject="+doc.Subject)
		for _, action := range []string{",disclosures,", ",export,"} {
			if !strings.Contains(csv.body, action) {
				t.Errorf("the audit CSV of %s lacks the officer's %s entry:\n%s", doc.Subject, action, csv.body)
			}
		}
		dashAssertNoPII(t, "audit CSV", csv.body, asha, bala)
	})

	t.Run("wrong password", func(t *testing.T) {
		c := newDashClient(t)
		if st := dashSignIn(t, w, c, w.officer, w.password+"x"); st != http.StatusUnauthorized {
			t.Errorf("wrong password: %d, want 401", st)
		}
		if r := dashGet(t, c, w.base+"/ui/overview"); r.status != http.StatusSeeOther {
			t.Errorf("after a failed sign-in the overview answered %d", r.status)
		}
	})

	t.Run("missing or wrong CSRF token", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			form url.Values
		}{
			{"missing", url.Values{"wa_id": {bala.WaID}, "confirm": {"yes"}, "reason": {"request"}}},
			{"wrong", url.Values{"csrf": {o.csrf + "x"}, "wa_id": {bala.WaID}, "confirm": {"yes"}, "reason": {"request"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{"/ui/subjects/erase", "/ui/subjects/export", "/ui/subjects/lookup"} {
					r := dashPost(t, o.c, w.base+path, tc.form)
					if r.status != http.StatusForbidden {
						t.Errorf("POST %s: %d, want 403", path, r.status)
					}
					dashAssertNoPII(t, path, r.body, asha, bala)
				}
				if st := o.lookup(t, bala); st != http.StatusOK {
					t.Errorf("Bala is gone after a forged erasure: look-up answered %d", st)
				}
			})
		}
	})

	t.Run("non-officers", func(t *testing.T) {
		tok := w.partnerToken(w.creds.Retailer)
		for _, tc := range []struct {
			name    string
			headers map[string]string
		}{
			{"no cookie", nil},
			{"partner bearer token", map[string]string{"Authorization": "Bearer " + tok}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newDashClient(t)
				for _, r := range []struct{ method, path string }{
					{"GET", "/ui/overview"}, {"GET", "/ui/audit"}, {"GET", "/ui/audit/0"}, {"GET", "/ui/flows"},
					{"GET", "/ui/reports/audit.csv"}, {"POST", "/ui/subjects/lookup"}, {"POST", "/ui/subjects/export"},
					{"POST", "/ui/subjects/erase"},
				} {
					req, _ := http.NewRequest(r.method, w.base+r.path, strings.NewReader(url.Values{"wa_id": {bala.WaID},
						"confirm": {"yes"}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					for k, v := range tc.headers {
						req.Header.Set(k, v)
					}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					p := dashRead(t, resp)
					if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/ui/login") {
						t.Errorf("%s %s: %d to %q, want a redirect to the sign-in page", r.method, r.path, p.status, p.header.Get("Location"))
					}
					if len(p.body) > 200 {
						t.Errorf("%s %s answered with a body of %d bytes", r.method, r.path, len(p.body))
					}
				}
				if st := o.lookup(t, bala); st != http.StatusOK {
					t.Errorf("Bala is gone: look-up answered %d", st)
				}
			})
		}
	})

	t.Run("officer create --reset", func(t *testing.T) {
		if _, err := w.brokerctlErr("officer", "create", "--name", w.officer); err == nil {
			t.Error("officer create of an existing name without --reset succeeded")
		}
		old := w.password
		fresh := w.createOfficer(w.officer, "--reset")
		if fresh == old {
			t.Fatal("--reset printed the same password")
		}
		// The old password and the sessions opened with it are gone.
		if r := dashGet(t, o.c, w.base+"/ui/overview"); r.status != http.StatusSeeOther {
			t.Errorf("a session from before the reset still works: %d", r.status)
		}
		c := newDashClient(t)
		if st := dashSignIn(t, w, c, w.officer, old); st != http.StatusUnauthorized {
			t.Errorf("old password: %d, want 401", st)
		}
		if st := dashSignIn(t, w, c, w.officer, fresh); st != http.StatusSeeOther {
			t.Errorf("new password: %d, want 303", st)
		}
		w.password = fresh
	})

	t.Run("officer list, disable and enable", func(t *testing.T) {
		o := w.signedIn(t) // the officer's own password from here on
		type officerRow struct {
			Name     string `json:"name"`
			OneTime  bool   `json:"one_time_password"`
			Disabled bool   `json:"disabled"`
		}
		var list []officerRow
		if err := json.Unmarshal([]byte(w.brokerctl("officer", "list", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(r officerRow) bool { return r.Name == w.officer })
		if i < 0 || list[i].OneTime || list[i].Disabled {
			t.Fatalf("officer list: %+v, want %s with their own password, enabled", list, w.officer)
		}
		w.brokerctl("officer", "disable", w.officer)
		if r := dashGet(t, o.c, w.base+"/ui/overview"); r.status != http.StatusSeeOther {
			t.Errorf("a session of a disabled officer still works: %d", r.status)
		}
		c := newDashClient(t)
		if st := dashSignIn(t, w, c, w.officer, w.password); st != http.StatusUnauthorized {
			t.Errorf("sign-in of a disabled officer: %d, want 401", st)
		}
		w.brokerctl("officer", "enable", w.officer)
		if st := dashSignIn(t, w, c, w.officer, w.password); st != http.StatusSeeOther {
			t.Errorf("sign-in after enable: %d, want 303", st)
		}
		if _, err := w.brokerctlErr("officer", "disable", "nobody"); err == nil || !strings.Contains(err.Error(), "no officer is named nobody") {
			t.Errorf("disabling an unknown officer: %v", err)
		}
	})

	t.Run("sign-ins are audited", func(t *testing.T) {
		w.waitIntegrated()
		o := w.signedIn(t)
		csv := dashGet(t, o.c, w.base+"/ui/reports/audit.csv?purpose=officer_access")
		if !strings.Contains(csv.body, ",login,") || !strings.Contains(csv.body, "wrong password") {
			t.Errorf("the audit log lacks the sign-ins and the failed one:\n%s", csv.body)
		}
	})

	dashAssertNoPII(t, "broker log", w.logs.String(), asha, bala)
}
