package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The loopback addresses of the processes; --port moves them together.
var (
	brokerAddr = "127.0.0.1:18080"
	simAddr    = "127.0.0.1:18090"
	staticAddr = "127.0.0.1:18081"
)

// setPorts places brokerd at port, the static baseline at port+1 and wasim
// at port+10.
func setPorts(port int) {
	brokerAddr = "127.0.0.1:" + strconv.Itoa(port)
	staticAddr = "127.0.0.1:" + strconv.Itoa(port+1)
	simAddr = "127.0.0.1:" + strconv.Itoa(port+10)
}

// Phases of a run; --phases picks some.
const (
	phaseIngest = "ingest"
	phaseFlow   = "flow"
	phaseReads  = "reads"
	phaseFlood  = "flood"
	// phaseMarket repeats the order flow with three auto-accept stores
	// routing every order (SPEC §9), beside phase 3's one retailer.
	phaseMarket = "market"
)

// allPhases is the default: every figure of SPEC §8.
var allPhases = []string{phaseIngest, phaseFlow, phaseMarket, phaseReads, phaseFlood}

// floodGuessers is the number of parallel anonymous clients guessing
// secrets in the flood phase (issue 17).
const floodGuessers = 64

type runner struct {
	bin        string
	citusSh    string // scripts/citus.sh when the server is a Citus coordinator
	dur        time.Duration
	ingestRate float64
	flowRate   float64
	conc       int
	phases     map[string]bool

	admin   string
	dbName  string
	dbURL   string
	keyDir  string
	procs   []*exec.Cmd
	broker  *exec.Cmd
	rssMu   sync.Mutex
	rssPeak int64
	stopRSS chan struct{}
}

// Results are the figures of one run.
type Results struct {
	Machine           string     `json:"machine"`
	At                time.Time  `json:"at"`
	Ingest            WasimLoad  `json:"ingest"`
	IngestConcurrency int        `json:"ingest_concurrency"`
	PgbenchSingleTPS  float64    `json:"pgbench_single_row_tps"`
	DrainPerSec       float64    `json:"processed_messages_per_s"`
	Flow              WasimLoad  `json:"flow"`
	PartnerReads      LoadResult `json:"partner_reads"`
	StaticReads       LoadResult `json:"static_reads"`
	// ReadsUnderFlood is partner reads while 64 anonymous clients guess
	// secrets at /oauth/token; PartnerReads is its same-run baseline.
	ReadsUnderFlood *FloodResult `json:"partner_reads_under_token_flood,omitempty"`
	PeakRSSMB       float64      `json:"brokerd_peak_rss_mb"`
	Micro           Micro        `json:"micro,omitempty"`

	// MarketFlow is the order flow routed to three auto-accept stores;
	// Flow (one retailer, no routing) is its same-run baseline.
	MarketFlow *WasimLoad `json:"market_flow,omitempty"`
}

// WasimLoad is what `wasim load --json` prints.
type WasimLoad struct {
	OfferedRate    float64 `json:"offered_rate"`
	Requests       int     `json:"requests"`
	Acknowledged   int     `json:"acknowledged"`
	Failed         int     `json:"failed"`
	Skipped        int     `json:"skipped"`
	MessagesAcked  int     `json:"messages_acknowledged"`
	MessagesPerSec float64 `json:"messages_per_s"`
	LatencyMs      struct {
		P50 float64 `json:"p50"`
		P90 float64 `json:"p90"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
	Orders       int      `json:"orders"`
	OrdersPerSec float64  `json:"orders_per_s"`
	FlowErrors   []string `json:"flow_errors"`
	// MessagesPerOrder is what each order costs in chargeable messages.
	MessagesPerOrder float64 `json:"messages_per_order"`
}

func (r *runner) env() []string {
	return append(os.Environ(),
		"DATABASE_URL="+r.dbURL, "BROKER_KEY_DIR="+r.keyDir, "BROKER_ADDR="+brokerAddr,
		"BROKER_ISSUER=http://"+brokerAddr, "WHATSAPP_API_BASE=http://"+simAddr+"/v25.0",
		"WASIM_ADDR="+simAddr, "WASIM_WEBHOOK_URL=http://"+brokerAddr+"/webhooks/whatsapp",
		"GOMAXPROCS=2",
		// Capacity is measured, not the per-partner limit that protects it.
		"BROKER_PARTNER_RATE=10000000")
}

func (r *runner) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sievebench: "+format+"\n", args...)
}

func (r *runner) run(ctx context.Context) (*Results, error) {
	res := &Results{At: time.Now().UTC(), Machine: machine()}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	sim := r.spawn(filepath.Join(r.bin, "wasim"), "serve", "--quiet")
	_ = sim
	r.broker = r.spawn(filepath.Join(r.bin, "brokerd"))
	go r.sampleRSS()
	if err := waitHTTP(ctx, "http://"+brokerAddr+"/readyz", 20*time.Second); err != nil {
		return nil, fmt.Errorf("brokerd did not become ready: %w", err)
	}
	if err := waitHTTP(ctx, "http://"+simAddr+"/_sim/healthz", 10*time.Second); err != nil {
		return nil, fmt.Errorf("wasim serve did not start: %w", err)
	}

	if r.phases[phaseIngest] {
		r.log("phase 1: webhook ingest at %.0f messages/s offered, %d in flight, for %s", r.ingestRate, r.conc, r.dur)
		if err := r.wasim(ctx, &res.Ingest, "load", "--shoppers", "5000", "--rate", ftoa(r.ingestRate),
			"--duration", r.dur.String(), "--max-in-flight", strconv.Itoa(r.conc), "--no-serve",
			"--sim-url", "http://"+simAddr, "--webhook-url", "http://"+brokerAddr+"/webhooks/whatsapp", "--json"); err != nil {
			return nil, err
		}
		res.IngestConcurrency = r.conc
		r.log("waiting for the inbox to drain")
		res.DrainPerSec = r.drain(ctx, res.Ingest.MessagesAcked)

		r.log("phase 2: pgbench single-row commits, %d clients", r.conc)
		tps, err := r.pgbenchSingle(ctx)
		if err != nil {
			return nil, err
		}
		res.PgbenchSingleTPS = tps
	}

	flowRate, flowDur := r.flowRate, r.dur
	if !r.phases[phaseFlow] {
		// The reads need orders: place a few, unmeasured.
		flowRate, flowDur = 50, 3*time.Second
	}
	r.log("phase 3: full order flows at %.0f/s offered for %s", flowRate, flowDur)
	if err := r.wasim(ctx, &res.Flow, "load", "--flow", "--shoppers", "20000", "--rate", ftoa(flowRate),
		"--duration", flowDur.String(), "--max-in-flight", "2000", "--no-serve", "--sim-url", "http://"+simAddr,
		"--webhook-url", "http://"+brokerAddr+"/webhooks/whatsapp", "--timeout", "60s", "--json"); err != nil {
		return nil, err
	}
	if !r.phases[phaseFlow] {
		res.Flow = WasimLoad{}
	}
	if r.phases[phaseMarket] {
		r.log("phase 3b: the same order flows routed to three auto-accept stores, for %s", flowDur)
		if err := r.setStoreAreas(ctx, true); err != nil {
			return nil, err
		}
		var m WasimLoad
		if err := r.wasim(ctx, &m, "load", "--flow", "--shoppers", "20000", "--rate", ftoa(flowRate),
			"--duration", flowDur.String(), "--max-in-flight", "2000", "--no-serve", "--sim-url", "http://"+simAddr,
			"--webhook-url", "http://"+brokerAddr+"/webhooks/whatsapp", "--timeout", "60s", "--json"); err != nil {
			return nil, err
		}
		res.MarketFlow = &m
		if err := r.setStoreAreas(ctx, false); err != nil {
			return nil, err
		}
	}
	if !r.phases[phaseReads] && !r.phases[phaseFlood] {
		return res, nil
	}

	r.log("phase 4: partner reads, %d connections, for %s", r.conc, r.dur)
	tok, ids, err := r.retailerToken(ctx)
	if err != nil {
		return nil, err
	}
	res.PartnerReads = closedLoop(ctx, r.conc, r.dur, 5_000_000, func(i int64) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+brokerAddr+"/v1/orders/"+ids[int(i)%len(ids)], nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}, func(resp *http.Response) bool {
		return resp.StatusCode == 200 && resp.Header.Get("X-Decision-Id") != ""
	})

	if r.phases[phaseFlood] {
		r.log("phase 4b: partner reads while %d anonymous clients guess secrets at /oauth/token, for %s", floodGuessers, r.dur)
		retailerID, err := r.retailerID()
		if err != nil {
			return nil, err
		}
		f := r.readsUnderFlood(ctx, floodGuessers, retailerID, tok, ids)
		res.ReadsUnderFlood = &f
	}
	if !r.phases[phaseReads] {
		return res, nil
	}

	r.spawn(os.Args[0], "static", "--addr", staticAddr)
	if err := waitTCP(ctx, staticAddr, 10*time.Second); err != nil {
		return nil, err
	}
	res.StaticReads = closedLoop(ctx, r.conc, r.dur, 5_000_000, func(i int64) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+staticAddr+"/v1/orders/"+ids[int(i)%len(ids)], nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}, func(resp *http.Response) bool { return resp.StatusCode == 200 })

	r.rssMu.Lock()
	res.PeakRSSMB = float64(r.rssPeak) / 1024
	r.rssMu.Unlock()
	return res, nil
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
			break
		}
	}
	n, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("%s cores, %s", strings.TrimSpace(string(n)), model)
}

// setup creates the benchmark database, keys, schema and demo data.
func (r *runner) setup(ctx context.Context) error {
	r.admin = os.Getenv("SIEVE_TEST_DATABASE_URL")
	if r.admin == "" {
		r.admin = os.Getenv("DATABASE_URL")
	}
	if r.admin == "" {
		return fmt.Errorf("SIEVE_TEST_DATABASE_URL is not set (run make bench)")
	}
	u, err := url.Parse(r.admin)
	if err != nil {
		return err
	}
	r.dbName = fmt.Sprintf("sieve_bench_%d", os.Getpid())
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if r.citusSh != "" {
		// A database on Citus must exist on every node with the extension
		// and the workers registered: scripts/citus.sh makes it.
		if out, err := exec.CommandContext(ctx, r.citusSh, "setup-db", r.dbName).CombinedOutput(); err != nil {
			return fmt.Errorf("%s setup-db: %v: %s", r.citusSh, err, out)
		}
	} else if _, err := conn.Exec(ctx, "CREATE DATABASE "+r.dbName); err != nil {
		return err
	}
	u.Path = "/" + r.dbName
	r.dbURL = u.String()
	if r.keyDir, err = os.MkdirTemp("", "sievebench-keys"); err != nil {
		return err
	}
	for _, args := range [][]string{{"keys", "init"}, {"migrate"}, {"demo", "seed", "--market", "--credentials", filepath.Join(r.keyDir, "demo.json")}} {
		cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "brokerctl"), args...)
		cmd.Env = r.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("brokerctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// Flows must not run out of stock: that measures the catalog, not us.
	conn, err = pgx.Connect(ctx, r.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, "UPDATE products SET stock = 1000000"); err != nil {
		return err
	}
	// The demo's marketplace stores keep their shelves but lose their
	// areas until phase 3b: the other phases measure one retailer.
	if _, err := conn.Exec(ctx, "UPDATE store_stock SET stock = 1000000"); err != nil {
		return err
	}
	return r.setStoreAreas(ctx, false)
}

// marketStores are the demo stores phase 3b routes between: all three
// serve the simulated shoppers' 560001 and accept at once.
var marketStores = []string{"MG Road Kirana", "Indiranagar Stores", "Koramangala Mart"}

// setStoreAreas gives the demo's stores (every one with a shelf) their
// phase 3b areas, or takes every area away; brokerd notices within its
// 2 s cache of stores, waited out here.
func (r *runner) setStoreAreas(ctx context.Context, on bool) error {
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if on {
		_, err = conn.Exec(ctx, `UPDATE partners SET serves = ARRAY['560001'], auto_accept = true, lat = NULL, lon = NULL,
			radius_km = NULL WHERE name = ANY($1)`, marketStores)
	} else {
		_, err = conn.Exec(ctx, `UPDATE partners SET serves = '{}', auto_accept = false, lat = NULL, lon = NULL,
			radius_km = NULL WHERE serves <> '{}' OR radius_km IS NOT NULL`)
	}
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2500 * time.Millisecond):
	}
	return nil
}

func (r *runner) spawn(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = r.env()
	logf, _ := os.CreateTemp("", "sievebench-"+filepath.Base(name)+"-*.log")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.log("start %s: %v", name, err)
	}
	r.procs = append(r.procs, cmd)
	return cmd
}

func (r *runner) wasim(ctx context.Context, out *WasimLoad, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "wasim"), args...)
	cmd.Env = r.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("wasim %s: %v: %s", args[0], err, tail(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("wasim output: %v: %s", err, tail(stdout.String()))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 600 {
		return s[len(s)-600:]
	}
	return s
}

// drain waits (at most 3 minutes) until the inbox holds no unprocessed
// event and returns the processing rate seen meanwhile.
func (r *runner) drain(ctx context.Context, acked int) float64 {
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	start := time.Now()
	var pending, first int
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM inbox WHERE processed_at IS NULL").Scan(&first)
	for time.Since(start) < 3*time.Minute {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM inbox WHERE processed_at IS NULL").Scan(&pending); err != nil || pending == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var firstAt, lastAt time.Time
	_ = conn.QueryRow(ctx, "SELECT min(received_at), max(processed_at) FROM inbox").Scan(&firstAt, &lastAt)
	var done int
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM inbox WHERE processed_at IS NOT NULL").Scan(&done)
	if d := lastAt.Sub(firstAt).Seconds(); d > 0 {
		return float64(done) / d
	}
	return 0
}

// pgbenchSingle measures single-row INSERT commits of a 300-byte row at
// the ingest concurrency, with the real pgbench, on the same server.
func (r *runner) pgbenchSingle(ctx context.Context) (float64, error) {
	bindir, err := exec.Command("scripts/pg.sh", "bindir").Output()
	if err != nil {
		return 0, fmt.Errorf("scripts/pg.sh bindir: %w", err)
	}
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		return 0, err
	}
	_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS pgbench_single (id bigserial PRIMARY KEY, k text NOT NULL, v bytea NOT NULL)")
	conn.Close(ctx)
	if err != nil {
		return 0, err
	}
	script := filepath.Join(r.keyDir, "single.sql")
	body := "\\set k random(1, 1000000000)\nINSERT INTO pgbench_single (k, v) VALUES ('m:' || :k, decode(repeat('ab', 300), 'hex'));\n"
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(strings.TrimSpace(string(bindir)), "pgbench"), "-n", "-M", "prepared",
		"-c", strconv.Itoa(r.conc), "-j", "2", "-T", strconv.Itoa(int(r.dur.Seconds())), "-f", script, r.dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %v: %s", err, tail(string(out)))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "tps = ") {
			f := strings.Fields(l)
			return strconv.ParseFloat(f[2], 64)
		}
	}
	return 0, fmt.Errorf("pgbench printed no tps: %s", tail(string(out)))
}

// retailerID is the demo retailer's client id: the guessed-at id of the
// flood phase.
func (r *runner) retailerID() (string, error) {
	b, err := os.ReadFile(filepath.Join(r.keyDir, "demo.json"))
	if err != nil {
		return "", err
	}
	var creds struct {
		Retailer map[string]string `json:"retailer"`
	}
	if err := json.Unmarshal(b, &creds); err != nil || creds.Retailer["client_id"] == "" {
		return "", fmt.Errorf("demo credentials without the retailer's client id: %v", err)
	}
	return creds.Retailer["client_id"], nil
}

// retailerToken gets the demo retailer a token and some of its orders.
func (r *runner) retailerToken(ctx context.Context) (string, []string, error) {
	b, err := os.ReadFile(filepath.Join(r.keyDir, "demo.json"))
	if err != nil {
		return "", nil, err
	}
	var creds struct {
		Retailer map[string]string `json:"retailer"`
	}
	if err := json.Unmarshal(b, &creds); err != nil {
		return "", nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+brokerAddr+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(creds.Retailer["client_id"], creds.Retailer["client_secret"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok) //nolint:errcheck
	resp.Body.Close()
	if tok.AccessToken == "" {
		return "", nil, fmt.Errorf("no token for the demo retailer (status %d)", resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://"+brokerAddr+"/v1/orders?limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	var list struct {
		Orders []struct {
			OrderID string `json:"order_id"`
		} `json:"orders"`
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	json.Unmarshal(body, &list) //nolint:errcheck
	var ids []string
	for _, o := range list.Orders {
		ids = append(ids, o.OrderID)
	}
	if len(ids) == 0 {
		return "", nil, fmt.Errorf("the order-flow phase placed no orders for the demo retailer")
	}
	return tok.AccessToken, ids, nil
}

// sampleRSS records brokerd's peak resident set size.
func (r *runner) sampleRSS() {
	r.stopRSS = make(chan struct{})
	for {
		if r.broker == nil || r.broker.Process == nil {
			return
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.broker.Process.Pid))
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				f := strings.Fields(l)
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				r.rssMu.Lock()
				r.rssPeak = max(r.rssPeak, kb)
				r.rssMu.Unlock()
			}
		}
		select {
		case <-r.stopRSS:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *runner) cleanup() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		p := r.procs[i]
		if p.Process != nil {
			p.Process.Signal(os.Interrupt) //nolint:errcheck
			done := make(chan struct{})
			go func() { p.Wait(); close(done) }() //nolint:errcheck
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				p.Process.Kill() //nolint:errcheck
			}
		}
	}
	if r.dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		u, _ := url.Parse(r.admin)
		u.Path = "/postgres"
		if r.citusSh != "" {
			exec.CommandContext(ctx, r.citusSh, "drop-db", r.dbName).Run() //nolint:errcheck
		} else if conn, err := pgx.Connect(ctx, u.String()); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+r.dbName+" WITH (FORCE)") //nolint:errcheck
			conn.Close(ctx)
		}
	}
	if r.keyDir != "" {
		os.RemoveAll(r.keyDir)
	}
}

func waitHTTP(ctx context.Context, u string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s", u, d)
}

func waitTCP(ctx context.Context, addr string, d time.Duration) error {
	return waitHTTP(ctx, "http://"+addr+"/v1/orders/x", d)
}

// print writes the table of figures with their baselines.
func (res *Results) print(w io.Writer) {
	fmt.Fprintf(w, "\nSieve benchmarks (%s, %s)\n", res.Machine, res.At.Format(time.RFC3339))
	fmt.Fprintf(w, "%-34s %-36s %-36s %-8s %s\n", "benchmark", "figure", "same-run baseline", "ratio", "target")
	row := func(name, fig, base string, ratio float64, target string) {
		r := "-"
		if ratio > 0 {
			r = fmt.Sprintf("%.2f", ratio)
		}
		fmt.Fprintf(w, "%-34s %-36s %-36s %-8s %s\n", name, fig, base, r, target)
	}
	if m := res.Micro; m != nil {
		rel, opa := m.get("BenchmarkRelease", "ns/op"), m.get("BenchmarkOPAEval", "ns/op")
		row("release decision (in process)", fmt.Sprintf("%.0f ns/op, %.0f allocs/op", rel, m.get("BenchmarkRelease", "allocs/op")),
			fmt.Sprintf("plain OPA eval %.0f ns/op, %.0f allocs", opa, m.get("BenchmarkOPAEval", "allocs/op")), opa/nz(rel), "≥4x faster, <10000 ns")
		so, age := m.get("BenchmarkSealOpen300", "ns/op"), m.get("BenchmarkAgePerRecord300", "ns/op")
		row("seal+open 300-byte record", fmt.Sprintf("%.0f ns/op", so), fmt.Sprintf("age per record %.0f ns/op", age), age/nz(so), "≤2000 ns")
		ap, pg := m.get("BenchmarkAuditAppend", "entries/s"), m.get("BenchmarkPgbenchBaseline", "rows/s")
		row("audit append (durable)", fmt.Sprintf("%.0f entries/s", ap), fmt.Sprintf("pgbench 100-row txns %.0f rows/s", pg), ap/nz(pg), "≥50000/s, ≥0.33x")
		av, rd := m.get("BenchmarkAuditVerify", "entries/s"), m.get("BenchmarkPgbenchRead", "rows/s")
		row("audit verify", fmt.Sprintf("%.0f entries/s (%.0f entries)", av, m.get("BenchmarkAuditVerify", "entries")),
			fmt.Sprintf("pgbench reading them %.0f rows/s", rd), av/nz(rd), "≥1000000/s")
		fl := m.get("BenchmarkAuditVerifyFloor", "entries/s")
		row("  floor: streamed, only hashed", fmt.Sprintf("%.0f entries/s", fl), fmt.Sprintf("verify %.0f entries/s", av), av/nz(fl), "")
		ax := m.get("BenchmarkAuditVerifyExport", "entries/s")
		row("  offline, from an export file", fmt.Sprintf("%.0f entries/s (%.0f entries)", ax, m.get("BenchmarkAuditVerifyExport", "entries")),
			fmt.Sprintf("pgbench reading them %.0f rows/s", rd), ax/nz(rd), "≥1000000/s")
		wa, wo := m.get("BenchmarkAuditAppendWitness/with", "entries/s"), m.get("BenchmarkAuditAppendWitness/without", "entries/s")
		row("audit append+integrate, witnessed", fmt.Sprintf("%.0f entries/s", wa), fmt.Sprintf("without a witness %.0f entries/s", wo), wa/nz(wo), "≥1x (cosigning costs nothing)")
		vp := m.get("BenchmarkAuditVerifyPolicy", "entries/s")
		row("  verify with --policy", fmt.Sprintf("%.0f entries/s", vp), fmt.Sprintf("verify %.0f entries/s", av), vp/nz(av), "")
		row("audit explorer, 1M entries", fmt.Sprintf("%.1f ms/page, worst %.1f ms", m.get("BenchmarkAuditExplorer", "ms/page"), m.get("BenchmarkAuditExplorer", "worst-ms/page")), "", 0, "≤50 ms")
		if bv := m.get("BenchmarkBreachOpen", "verify_s"); bv > 0 {
			bp, ba := m.get("BenchmarkBreachOpen", "affected_partner_10d_s"), m.get("BenchmarkBreachOpen", "affected_all_30d_s")
			row("breach open: affected set, 1M", fmt.Sprintf("%.2f s one partner/10d, %.2f s all/30d", bp, ba),
				fmt.Sprintf("audit verify same log %.2f s", bv), bv/nz(ba), "")
		}
		vu, vc := m.get("BenchmarkVerify", "ns/op"), m.get("BenchmarkVerifyCached", "ns/op")
		row("JWT verify (EdDSA)", fmt.Sprintf("%.0f ns/op cached", vc), fmt.Sprintf("uncached %.0f ns/op", vu), vu/nz(vc), "")
	}
	in := res.Ingest
	row("webhook ingest (durable)", fmt.Sprintf("%.0f msg/s p50 %.1f p99 %.1f ms", in.MessagesPerSec, in.LatencyMs.P50, in.LatencyMs.P99),
		fmt.Sprintf("pgbench 1-row commits %.0f tps", res.PgbenchSingleTPS), in.MessagesPerSec/nz(res.PgbenchSingleTPS),
		fmt.Sprintf("≥10000 msg/s, p99≤20ms, ≥0.8x (offered %.0f/s, %d in flight)", in.OfferedRate, res.IngestConcurrency))
	row("  then processed (conversation)", fmt.Sprintf("%.0f msg/s", res.DrainPerSec), "", 0, "")
	row("full order flow", fmt.Sprintf("%.0f orders/s (%d orders)", res.Flow.OrdersPerSec, res.Flow.Orders), "", 0, "≥1000 orders/s")
	row("  messages per order", fmt.Sprintf("%.1f chargeable messages", res.Flow.MessagesPerOrder), "", 0, "fewer is cheaper")
	if m := res.MarketFlow; m != nil {
		row("  routed to 3 auto-accept stores", fmt.Sprintf("%.0f orders/s (%d orders)", m.OrdersPerSec, m.Orders),
			fmt.Sprintf("one retailer %.0f orders/s", res.Flow.OrdersPerSec), m.OrdersPerSec/nz(res.Flow.OrdersPerSec),
			"routing costs little (SPEC §9)")
		if len(m.FlowErrors) > 0 {
			fmt.Fprintf(w, "routed flow errors (first): %s\n", m.FlowErrors[0])
		}
	}
	pr, st := res.PartnerReads, res.StaticReads
	row("partner reads GET /v1/orders/{id}", fmt.Sprintf("%.0f req/s p99 %.1f ms", pr.PerSecond, pr.P99Ms),
		fmt.Sprintf("static handler %.0f req/s p99 %.1f ms", st.PerSecond, st.P99Ms), pr.PerSecond/nz(st.PerSecond), "≥5000 req/s, p99≤20ms")
	if f := res.ReadsUnderFlood; f != nil {
		row("  same, 64 guessing /oauth/token", fmt.Sprintf("%.0f req/s p99 %.1f ms", f.Reads.PerSecond, f.Reads.P99Ms),
			fmt.Sprintf("no flood p99 %.1f ms", pr.P99Ms), f.Reads.P99Ms/nz(pr.P99Ms),
			fmt.Sprintf("%d guesses: %d x 429, %d x 401", f.Guesses, f.Throttled, f.Refused))
	}
	row("brokerd peak RSS", fmt.Sprintf("%.0f MB", res.PeakRSSMB), "", 0, "<250 MB")
	if len(res.Flow.FlowErrors) > 0 {
		fmt.Fprintf(w, "flow errors (first): %s\n", res.Flow.FlowErrors[0])
	}
	if pr.Errors > 0 || st.Errors > 0 {
		fmt.Fprintf(w, "errors: partner reads %d, static %d\n", pr.Errors, st.Errors)
	}
	if f := res.ReadsUnderFlood; f != nil && f.Reads.Errors > 0 {
		fmt.Fprintf(w, "errors: partner reads under the token flood %d\n", f.Reads.Errors)
	}
}

func nz(f float64) float64 {
	if f == 0 {
		return 1
	}
	return f
}
