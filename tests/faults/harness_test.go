package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// ---------------------------------------------------------------------------
// Time budgets

// budget returns d, shortened so that it ends well before the test's own
// deadline (go test -timeout), so a wait that runs out reports what it was
// waiting for instead of the whole binary panicking.
func budget(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 20*time.Second; left < d {
			d = max(left, time.Second)
		}
	}
	return d
}

// waitFor polls cond every interval until it reports done or timeout
// (bounded by the test's deadline) passes; then it fails the test with
// what, and the last state cond described.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(budget(t, timeout))
	last := ""
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, time.Since(start).Round(time.Millisecond), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Environment

// cleanEnv is the test's environment without anything that configures the
// broker, the simulator or the test database, so that only what a test
// sets reaches the processes it starts.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BROKER_"), strings.HasPrefix(k, "WHATSAPP_"), strings.HasPrefix(k, "WASIM_"),
			strings.HasPrefix(k, "SIEVE_"), k == "DATABASE_URL":
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		"BROKER_ENV=development",
		"WHATSAPP_APP_SECRET="+whatsapp.DevAppSecret,
		"WHATSAPP_VERIFY_TOKEN="+whatsapp.DevVerifyToken,
		"WHATSAPP_ACCESS_TOKEN="+whatsapp.DevAccessToken,
		"WHATSAPP_PHONE_NUMBER_ID="+whatsapp.DevPhoneNumberID,
	)
}

// ---------------------------------------------------------------------------
// Processes

// tailBuffer keeps the last max bytes written to it (a process's log).
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - b.max; over > 0 {
		b.b = append([]byte(nil), b.b[over:]...)
	}
	return len(p), nil
}

// lastLines returns up to n last lines.
func (b *tailBuffer) lastLines(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(b.b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// proc is a process the test started; it is only ever signalled through
// its own handle.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *tailBuffer
	exited chan struct{}
	err    error // valid once exited is closed
}

// startProc starts bin with args and env; its output is kept for the
// failure report. The process is killed when the test ends if it is still
// running.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &tailBuffer{max: 512 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, bin), args...)
	p.cmd.Env = env
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill() // our own child, by its handle
			<-p.exited
		}
		if t.Failed() {
			t.Logf("--- last lines of %s (pid %d) ---\n%s", name, p.cmd.Process.Pid, p.log.lastLines(40))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && p.running() {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(budget(t, 30*time.Second)):
		t.Fatalf("%s survived SIGKILL", p.name)
	}
}

// terminate sends SIGTERM and checks the process exits 0 within 10 s
// (SPEC §4: brokerd exits 0 within 10 s of SIGTERM).
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(budget(t, 30*time.Second)):
		t.Fatalf("%s did not exit within 30 s of SIGTERM", p.name)
	}
	took := time.Since(start)
	if p.err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, p.err)
	}
	if took > 10*time.Second {
		t.Errorf("%s took %s to exit after SIGTERM, want at most 10 s", p.name, took.Round(time.Millisecond))
	}
}

// ---------------------------------------------------------------------------
// The world: one database, one key directory, the fake Send API, brokers

// world is what the brokers of one test share.
type world struct {
	t       *testing.T
	dbURL   string
	keys    string // BROKER_KEY_DIR
	issuer  string // BROKER_ISSUER, the same for every broker (one audit origin)
	sim     string // wasim serve: the fake Send API that records what was accepted
	apiBase string // WHATSAPP_API_BASE as the brokers see it
}

// newWorld starts `wasim serve` and prepares a key directory; apiBase is
// where the brokers send (the simulator itself when empty).
func newWorld(t *testing.T, dbURL string) *world {
	t.Helper()
	requireBinaries(t)
	w := &world{t: t, dbURL: dbURL, keys: t.TempDir(), issuer: "http://" + pgtest.FreeAddr(t)}
	w.sim = startSim(t)
	w.apiBase = w.sim + "/" + whatsapp.DefaultAPIVersion
	return w
}

// env is the configuration of a broker or brokerctl in this world.
func (w *world) env(addr string) []string {
	env := append(cleanEnv(),
		"DATABASE_URL="+w.dbURL,
		"BROKER_KEY_DIR="+w.keys,
		"BROKER_ISSUER="+w.issuer,
		"WHATSAPP_API_BASE="+w.apiBase,
		"BROKER_WEBHOOK_ALLOW=127.0.0.0/8", // the partners' hook servers listen on loopback
		"BROKER_PAYMENT_LOOKUP=on",         // confirm captures with wasim's lookup, as production does
	)
	if addr != "" {
		env = append(env, "BROKER_ADDR="+addr)
	}
	return env
}

// brokerd is one running broker process.
type brokerd struct {
	*proc
	addr string
	url  string
}

// startBroker starts brokerd on addr (a free port when empty) and waits
// until /readyz answers 200.
func (w *world) startBroker(name, addr string) *brokerd {
	t := w.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		a := addr
		if a == "" {
			a = pgtest.FreeAddr(t)
		}
		b := w.launchBroker(name, a)
		err := b.waitReady(t, 90*time.Second)
		if err == nil {
			return b
		}
		if addr != "" || attempt == 3 || !strings.Contains(b.log.lastLines(5), "address already in use") {
			t.Fatalf("%s: %v", name, err)
		}
		// The free port was taken between our probe and brokerd's bind.
	}
}

// launchBroker starts brokerd on addr without waiting for it.
func (w *world) launchBroker(name, addr string) *brokerd {
	w.t.Helper()
	b := &brokerd{addr: addr, url: "http://" + addr}
	b.proc = startProc(w.t, name, w.env(addr), "brokerd")
	return b
}

// waitReady polls /readyz until 200, the process exits, or timeout.
func (b *brokerd) waitReady(t *testing.T, timeout time.Duration) error {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(budget(t, timeout))
	for time.Now().Before(deadline) {
		if !b.running() {
			return fmt.Errorf("exited before it was ready (%v): %s", b.err, b.log.lastLines(5))
		}
		if resp, err := client.Get(b.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s", timeout)
}

// startSim runs `wasim serve` on a free port and returns its URL.
func startSim(t *testing.T) string {
	t.Helper()
	env := append(cleanEnv(), "WASIM_ADDR=127.0.0.1:0")
	p := startProc(t, "wasim serve", env, "wasim", "serve", "--addr", "127.0.0.1:0", "--quiet")
	re := regexp.MustCompile(`fake Send API on (http://127\.0\.0\.1:\d+)`)
	var u string
	waitFor(t, "wasim serve to listen", 30*time.Second, func() (bool, string) {
		if m := re.FindStringSubmatch(p.log.lastLines(10)); m != nil {
			u = m[1]
			return true, ""
		}
		if !p.running() {
			t.Fatalf("wasim serve exited: %v: %s", p.err, p.log.lastLines(10))
		}
		return false, p.log.lastLines(3)
	})
	return u
}

// brokerctl runs the CLI in this world and returns its stdout; a non-zero
// exit fails the test.
func (w *world) brokerctl(args ...string) string {
	w.t.Helper()
	out, errOut, err := w.brokerctlErr(args...)
	if err != nil {
		w.t.Fatalf("brokerctl %s: %v: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (w *world) brokerctlErr(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget(w.t, 2*time.Minute))
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "brokerctl"), args...)
	cmd.Env = w.env("")
	cmd.Dir = w.t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

var verifyOK = regexp.MustCompile(`^ok (\d+) ([0-9a-f]{64})\n$`)

// auditVerify runs `brokerctl audit verify` and returns the verified size.
func (w *world) auditVerify() uint64 {
	w.t.Helper()
	out, errOut, err := w.brokerctlErr("audit", "verify", "--quiet")
	m := verifyOK.FindStringSubmatch(out)
	if err != nil || m == nil {
		w.t.Fatalf("brokerctl audit verify: %v: stdout %q, stderr %q; want \"ok <size> <root>\"", err, out, errOut)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// seedRetailer imports the demo catalog and creates the retailer of the
// dev store with webhooks to hook; it returns the client credentials.
func (w *world) seedRetailer(hook string) (clientID, secret string) {
	w.t.Helper()
	w.brokerctl("catalog", "import", "--demo")
	args := []string{"partner", "create", "--name", "Fault Mart", "--kind", "retailer",
		"--scopes", "orders:read orders:write", "--store", whatsapp.DevPhoneNumberID, "--json"}
	if hook != "" {
		args = append(args, "--webhook", hook)
	}
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := w.brokerctl(args...)
	if err := json.Unmarshal([]byte(out), &creds); err != nil || creds.ClientID == "" || creds.ClientSecret == "" {
		w.t.Fatalf("partner create printed %q: %v", out, err)
	}
	return creds.ClientID, creds.ClientSecret
}

// ---------------------------------------------------------------------------
// wasim as a client

// loadReport is the part of `wasim load --json` the tests read.
type loadReport struct {
	Requests      int            `json:"requests"`
	Acknowledged  int            `json:"acknowledged"`
	Failed        int            `json:"failed"`
	Duplicates    int            `json:"duplicates"`
	MessagesAcked int            `json:"messages_acknowledged"`
	Orders        int            `json:"orders"`
	FlowErrors    []string       `json:"flow_errors"`
	StatusCodes   map[string]int `json:"status_codes"`
	LatencyMs     struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
}

// wasimLoad runs `wasim load` with args (plus --json) in the background;
// wait returns its report.
func (w *world) wasimLoad(args ...string) (wait func() loadReport) {
	t := w.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget(t, 4*time.Minute))
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "wasim"), append([]string{"load", "--json"}, args...)...)
	cmd.Env = append(cleanEnv(), "WASIM_ADDR=127.0.0.1:0")
	cmd.Dir = t.TempDir()
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("wasim load: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	return func() loadReport {
		t.Helper()
		err := <-done
		cancel()
		var rep loadReport
		if err != nil || json.Unmarshal(stdout.Bytes(), &rep) != nil {
			t.Fatalf("wasim load %s: %v\nstdout %s\nstderr %s", strings.Join(args, " "), err, stdout.String(), stderr.lastLines(10))
		}
		return rep
	}
}

// wasimShop runs one scripted purchase with `wasim shop` and returns the
// order id.
func (w *world) wasimShop(webhookURL, waID string, stepTimeout time.Duration) string {
	t := w.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget(t, 3*time.Minute))
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "wasim"), "shop", "--no-serve", "--sim-url", w.sim,
		"--webhook-url", webhookURL, "--wa-id", waID, "--name", "Fault Shopper", "--timeout", stepTimeout.String(), "--json")
	cmd.Env = append(cleanEnv(), "WASIM_ADDR=127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wasim shop: %v\n%s", err, lastN(stderr.String(), 20))
	}
	var res struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || !strings.HasPrefix(res.OrderID, "ord_") {
		t.Fatalf("wasim shop printed %q: %v", stdout.String(), err)
	}
	return res.OrderID
}

func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// simRecord is one message the fake Send API accepted.
type simRecord struct {
	Seq             int64           `json:"seq"`
	Time            time.Time       `json:"time"`
	To              string          `json:"to"`
	Type            string          `json:"type"`
	InteractiveType string          `json:"interactive_type"`
	MessageID       string          `json:"message_id"`
	Body            json.RawMessage `json:"body"`
}

// isPrivacyNotice reports whether the message is the privacy notice: the
// button message offering consent:accept.
func (r simRecord) isPrivacyNotice() bool {
	if r.Type != "interactive" || r.InteractiveType != "button" {
		return false
	}
	var m struct {
		Interactive struct {
			Action struct {
				Buttons []struct {
					Reply struct {
						ID string `json:"id"`
					} `json:"reply"`
				} `json:"buttons"`
			} `json:"action"`
		} `json:"interactive"`
	}
	if json.Unmarshal(r.Body, &m) != nil {
		return false
	}
	for _, b := range m.Interactive.Action.Buttons {
		if b.Reply.ID == "consent:accept" {
			return true
		}
	}
	return false
}

// simRecords returns everything the fake Send API accepted (mark-as-read
// requests excluded), in order.
func (w *world) simRecords() []simRecord {
	t := w.t
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var all []simRecord
	var after int64
	for range 1000 { // bounded: 10 000 records a page
		resp, err := client.Get(fmt.Sprintf("%s/_sim/messages?after=%d&limit=10000", w.sim, after))
		if err != nil {
			t.Fatalf("GET /_sim/messages: %v", err)
		}
		var page []simRecord
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /_sim/messages: HTTP %d: %v", resp.StatusCode, err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Type != "mark_read" {
				all = append(all, r)
			}
		}
		after = page[len(page)-1].Seq
	}
	return all
}

// ---------------------------------------------------------------------------
// Webhooks from the test itself

// hiMessage is a text "Hi" from waID with a fresh message id.
func hiMessage(waID string, n int) whatsapp.Message {
	// A fresh id in Meta's real format (it holds waID's number).
	return whatsapp.Message{From: waID, ID: whatsapp.NewInboundWAMID(waID),
		Timestamp: whatsapp.Timestamp(time.Now().Unix()), Type: whatsapp.TypeText, Text: &whatsapp.Text{Body: "Hi"}}
}

// postMessages signs a notification carrying msgs and POSTs it once to
// url; it returns the HTTP status (0 on a network error) and the latency.
func postMessages(url string, msgs ...whatsapp.Message) (int, time.Duration, error) {
	var contacts []whatsapp.Contact
	seen := map[string]bool{}
	for _, m := range msgs {
		if !seen[m.From] {
			seen[m.From] = true
			contacts = append(contacts, whatsapp.Contact{WaID: m.From, Profile: whatsapp.Profile{Name: "Fault " + m.From[len(m.From)-4:]}})
		}
	}
	n := whatsapp.NewNotification(whatsapp.DevWABAID, whatsapp.Metadata{DisplayPhoneNumber: whatsapp.DevDisplayPhoneNumber,
		PhoneNumberID: whatsapp.DevPhoneNumberID}, contacts, msgs, nil)
	body, err := n.Marshal()
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(whatsapp.SignatureHeader, whatsapp.Sign([]byte(whatsapp.DevAppSecret), body))
	start := time.Now()
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// ---------------------------------------------------------------------------
// /proc

// cpuTime returns the user+system CPU time the process has used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/stat: %v", pid, err)
	}
	// The command name may hold spaces; the fields we want follow the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		t.Fatalf("unexpected /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		t.Fatalf("unexpected /proc/%d/stat: %q", pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	const clkTck = 100 // USER_HZ: fixed at 100 for /proc on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}
