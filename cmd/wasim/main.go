// Command wasim simulates the WhatsApp Cloud API for Sieve: a fake Send API
// that records what the broker sends, a webhook sender that signs
// notifications exactly as Meta does, a scripted shopper, an interactive
// terminal chat and a load generator.
//
// Usage:
//
//	wasim serve                         fake Send API on WASIM_ADDR
//	wasim shop  [--wa-id N] [--name S]  scripted purchase against the broker ([--change-number N[,BSUID]] [--change-user-id BSUID] first)
//	wasim chat  [--wa-id N] [--name S]  chat with the broker in the terminal
//	wasim load  --shoppers N --rate R --duration D [--batch K] [--dup-rate p] [--ooo] [--flow] [--json]
//
// A shopper is a phone user (--wa-id), a phone user whose messages carry a
// BSUID too (--wa-id N --user-id IN.… [--parent-user-id …]), or a username
// user named by BSUID only (--username @name [--user-id IN.…]); `load`
// takes --ids phone|phone+bsuid|username|mixed. In `chat`,
// /change-number and /change-user-id send WhatsApp's identity-change
// system messages.
//
// Configuration (environment): WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN,
// WHATSAPP_PHONE_NUMBER_ID, WASIM_ADDR (default 127.0.0.1:8090) and
// WASIM_WEBHOOK_URL (default http://127.0.0.1:8080/webhooks/whatsapp).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// config is wasim's environment.
type config struct {
	AppSecret     string
	AccessToken   string
	PhoneNumberID string
	Addr          string
	WebhookURL    string
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func loadConfig() config {
	return config{
		AppSecret:     envOr("WHATSAPP_APP_SECRET", whatsapp.DevAppSecret),
		AccessToken:   envOr("WHATSAPP_ACCESS_TOKEN", whatsapp.DevAccessToken),
		PhoneNumberID: envOr("WHATSAPP_PHONE_NUMBER_ID", whatsapp.DevPhoneNumberID),
		Addr:          envOr("WASIM_ADDR", whatsapp.DevSimAddr),
		WebhookURL:    envOr("WASIM_WEBHOOK_URL", whatsapp.DevWebhookURL),
	}
}

const usage = `wasim — WhatsApp Cloud API simulator for Sieve

Usage:
  wasim serve [--addr HOST:PORT]
  wasim shop  [--wa-id 919811112222] [--user-id IN.…] [--username @name] [--name Asha] [--no-serve] [--items SKU:QTY,…] [--json]
  wasim chat  [--wa-id 919811112222] [--user-id IN.…] [--username @name] [--name Asha] [--no-serve]
  wasim load  --shoppers N --rate R --duration D [--batch K] [--dup-rate p] [--ooo] [--flow] [--ids phone|phone+bsuid|username|mixed] [--json]

Run "wasim <command> --help" for the flags of a command.

Environment: WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID,
WASIM_ADDR (default 127.0.0.1:8090), WASIM_WEBHOOK_URL (default
http://127.0.0.1:8080/webhooks/whatsapp). Point the broker at the fake Send API
with WHATSAPP_API_BASE=http://127.0.0.1:8090/v25.0.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := loadConfig()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = cmdServe(ctx, cfg, args)
	case "shop":
		err = cmdShop(ctx, cfg, args, os.Stdout)
	case "chat":
		err = cmdChat(ctx, cfg, args, os.Stdin, os.Stdout)
	case "load":
		err = cmdLoad(ctx, cfg, args, os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "wasim: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "wasim: %v\n", err)
		os.Exit(1)
	}
}

// simServer is a running fake Send API.
type simServer struct {
	store *Store
	srv   *http.Server
	url   string
	done  chan error
}

// startSim listens on addr and serves the fake Send API until ctx ends or
// stop is called.
func startSim(cfg config, addr string, logger *log.Logger) (*simServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fake Send API: %w (is another wasim serving? use --no-serve)", err)
	}
	store := NewStore()
	api := &SendAPI{Store: store, AccessToken: cfg.AccessToken, Logger: logger}
	s := &simServer{
		store: store,
		srv:   &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second},
		url:   "http://" + ln.Addr().String(),
		done:  make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *simServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

func cmdServe(ctx context.Context, cfg config, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", cfg.Addr, "listen address (WASIM_ADDR)")
	quiet := fs.Bool("quiet", false, "do not log requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := log.New(os.Stderr, "wasim: ", log.LstdFlags|log.Lmicroseconds)
	if *quiet {
		logger = nil
	}
	s, err := startSim(cfg, *addr, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wasim: fake Send API on %s (POST /{version}/{pnid}/messages; inspect GET /_sim/messages)\n", s.url)
	fmt.Fprintf(os.Stderr, "wasim: point the broker at it with WHATSAPP_API_BASE=%s/%s\n", s.url, whatsapp.DefaultAPIVersion)
	select {
	case <-ctx.Done():
		s.stop()
		return nil
	case err := <-s.done:
		return fmt.Errorf("fake Send API: %w", err)
	}
}

// shopperFlags are the flags shop and chat share.
type shopperFlags struct {
	waID, name, simURL, webhookURL, catalog string
	noServe                                 bool
	userID, parentID, username              string
}

// user is who the shopper is to WhatsApp, from --wa-id, --user-id,
// --parent-user-id and --username.
func (f *shopperFlags) user() (*User, error) {
	u, err := ParseUser(f.waID, f.userID, f.parentID, f.username)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func (f *shopperFlags) register(fs *flag.FlagSet, cfg config) {
	fs.StringVar(&f.waID, "wa-id", "919811112222", "the shopper's WhatsApp id (phone digits, or a BSUID such as IN.1410…)")
	fs.StringVar(&f.name, "name", "Asha", "the shopper's profile name")
	fs.BoolVar(&f.noServe, "no-serve", false, "use a separately running `wasim serve` instead of starting the fake Send API")
	fs.StringVar(&f.simURL, "sim-url", "http://"+cfg.Addr, "URL of the running `wasim serve` (with --no-serve)")
	fs.StringVar(&f.webhookURL, "webhook-url", cfg.WebhookURL, "the broker's webhook URL (WASIM_WEBHOOK_URL)")
	fs.StringVar(&f.catalog, "catalog", "", "catalog file (brokerctl import format) for item prices")
	fs.StringVar(&f.userID, "user-id", "", "the shopper's BSUID (CC.digits), sent with the phone as from_user_id/user_id")
	fs.StringVar(&f.parentID, "parent-user-id", "", "the shopper's parent BSUID, sent as from_parent_user_id")
	fs.StringVar(&f.username, "username", "", "be a username user: WhatsApp sends the BSUID only, never the phone (BSUID from --user-id or derived)")
}

// sim returns the SimAPI to use, starting the fake Send API unless --no-serve.
func (f *shopperFlags) sim(cfg config) (SimAPI, func(), error) {
	if f.noServe || simRunning(f.simURL) {
		// make run already serves the fake Send API: join it.
		return &SimClient{BaseURL: f.simURL}, func() {}, nil
	}
	s, err := startSim(cfg, cfg.Addr, nil)
	if err != nil {
		return nil, nil, err
	}
	return s.store, s.stop, nil
}

func (f *shopperFlags) prices() (map[string]whatsapp.Amount, error) {
	if f.catalog == "" {
		return nil, nil
	}
	return LoadCatalogPrices(f.catalog)
}

func cmdShop(ctx context.Context, cfg config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	var sf shopperFlags
	sf.register(fs, cfg)
	items := fs.String("items", "", "cart as SKU:QTY,SKU:QTY (default: the first two products offered)")
	address := fs.String("address", "", "answer the address request with this text instead of a location")
	pincode := fs.String("pincode", "", "the shopper's PIN code: picks the stores that serve the area (default 560001)")
	marketing := fs.Bool("marketing", false, "accept the marketing opt-in")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each broker step")
	noReceipts := fs.Bool("no-receipts", false, "do not send delivered/read statuses")
	asJSON := fs.Bool("json", false, "print the result as JSON (the transcript goes to stderr)")
	changeNumber := fs.String("change-number", "", "first send user_changed_number to this number (NUMBER or NUMBER,BSUID), then shop as the changed user")
	changeUserID := fs.String("change-user-id", "", "first send user_changed_user_id to this BSUID, then shop as the changed user")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cart, err := ParseCartItems(*items)
	if err != nil {
		return err
	}
	prices, err := sf.prices()
	if err != nil {
		return err
	}
	sim, stop, err := sf.sim(cfg)
	if err != nil {
		return err
	}
	defer stop()
	transcript := out
	if *asJSON {
		transcript = os.Stderr
	}
	user, err := sf.user()
	if err != nil {
		return err
	}
	ws := NewWebhookSender(sf.webhookURL, []byte(cfg.AppSecret), cfg.PhoneNumberID)
	if user, err = sendChanges(ctx, ws, *user, *changeNumber, *changeUserID, transcript); err != nil {
		return err
	}
	sh := &Shopper{
		WaID: sf.waID, User: user, Name: sf.name,
		Webhooks:       ws,
		Sim:            sim,
		Prices:         prices,
		Items:          cart,
		MarketingOptIn: *marketing,
		TextAddress:    *address,
		Pincode:        *pincode,
		StepTimeout:    *timeout,
		NoReceipts:     *noReceipts,
		Transcript:     transcript,
	}
	res, err := sh.Run(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "\norder %s paid %s (ref %s) in %s: %d broker messages, %d webhooks\n",
		res.OrderID, inr(res.Total), res.ReferenceID, res.Elapsed.Round(time.Millisecond), res.BrokerMessages, res.WebhooksSent)
	return nil
}

func cmdChat(ctx context.Context, cfg config, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var sf shopperFlags
	sf.register(fs, cfg)
	saveDir := fs.String("save-dir", ".", "where to save documents the broker sends (\"export my data\")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	prices, err := sf.prices()
	if err != nil {
		return err
	}
	sim, stop, err := sf.sim(cfg)
	if err != nil {
		return err
	}
	defer stop()
	user, err := sf.user()
	if err != nil {
		return err
	}
	c := &Chat{
		WaID: sf.waID, User: user, Name: sf.name, SaveDir: *saveDir,
		Webhooks: NewWebhookSender(sf.webhookURL, []byte(cfg.AppSecret), cfg.PhoneNumberID),
		Sim:      sim, Prices: prices, In: in, Out: out,
	}
	return c.Run(ctx)
}

func cmdLoad(ctx context.Context, cfg config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var lc LoadConfig
	fs.IntVar(&lc.Shoppers, "shoppers", 100, "number of distinct shoppers")
	fs.Float64Var(&lc.Rate, "rate", 100, "offered rate: webhook POSTs per second (with --flow: purchases started per second)")
	fs.DurationVar(&lc.Duration, "duration", 10*time.Second, "how long to offer load")
	fs.IntVar(&lc.Batch, "batch", 1, "messages per webhook POST (1-1000)")
	fs.Float64Var(&lc.DupRate, "dup-rate", 0, "probability that a POST redelivers an earlier body (0-1)")
	fs.BoolVar(&lc.OutOfOrder, "ooo", false, "mix in status POSTs with out-of-order statuses")
	fs.IntVar(&lc.MaxInFlight, "max-in-flight", 512, "bound on concurrent requests (due requests beyond it are skipped)")
	fs.IntVar(&lc.MaxRequests, "max-requests", 0, "bound on the number of requests (default rate × duration)")
	seed := fs.Uint64("seed", 0, "seed of the generated traffic (default: time-based)")
	fs.StringVar(&lc.IDs, "ids", "phone", "how shoppers are named: phone, phone+bsuid, username (BSUID only) or mixed")
	flow := fs.Bool("flow", false, "run full scripted purchases (Shopper) instead of raw webhooks; reports orders/s")
	noServe := fs.Bool("no-serve", false, "with --flow: use a running `wasim serve` instead of starting the fake Send API")
	simURL := fs.String("sim-url", "http://"+cfg.Addr, "URL of the running `wasim serve` (with --no-serve)")
	webhookURL := fs.String("webhook-url", cfg.WebhookURL, "the broker's webhook URL (loopback only)")
	timeout := fs.Duration("timeout", 30*time.Second, "with --flow: how long a shopper waits for each step")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	lc.Seed = *seed
	if lc.Seed == 0 {
		lc.Seed = uint64(time.Now().UnixNano())
	}
	ws := NewWebhookSender(*webhookURL, []byte(cfg.AppSecret), cfg.PhoneNumberID)
	var rep *LoadReport
	var err error
	if *flow {
		var sim SimAPI
		if *noServe {
			sim = &SimClient{BaseURL: *simURL}
		} else {
			s, err := startSim(cfg, cfg.Addr, nil)
			if err != nil {
				return err
			}
			defer s.stop()
			sim = s.store
		}
		rep, err = RunFlowLoad(ctx, lc, ws, sim, *timeout)
	} else {
		rep, err = RunLoad(ctx, lc, ws)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(out)
	return nil
}

// simRunning reports whether a wasim fake Send API already answers at url
// (started by make run, or by hand with wasim serve).
func simRunning(url string) bool {
	c := &http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get(strings.TrimRight(url, "/") + "/_sim/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
