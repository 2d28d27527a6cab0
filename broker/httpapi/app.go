package httpapi

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/valyala/fasthttp"

	"github.com/sieve-broker/sieve/broker"
)

// Body limits per route family (SPEC §4).
const (
	WebhookBodyLimit = 3 << 20
	TokenBodyLimit   = 64 << 10
	DefaultBodyLimit = 1 << 20
	// MaxAuthorization caps the Authorization header: longer is a 401.
	MaxAuthorization = 8 << 10
)

// Pinger answers whether the database is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Authenticator turns a bearer token into the partner it was issued to and
// the scopes it carries. Any failure is an EUnauthorized error.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (broker.Partner, []broker.Scope, error)
}

// OAuthFunc runs the token endpoint: it gets the form, the Basic
// credentials (if any) and the client's address (ClientIP, for the failure
// throttle) and returns the status, extra headers and JSON body.
type OAuthFunc func(ctx context.Context, form map[string][]string, basicUser, basicPass string, hasBasic bool, clientAddr string) (int, map[string]string, []byte)

// WebhookReceiver is the WhatsApp Cloud API inbound side.
type WebhookReceiver interface {
	// VerifyToken compares the handshake token in constant time.
	VerifyToken(token string) bool
	// Receive checks the signature over the raw body, decodes it and stores
	// every event durably before returning (EUnauthorized for a bad
	// signature, EInvalid for a bad payload: nothing stored then).
	Receive(ctx context.Context, body []byte, signature string) error
}

// Config tunes the HTTP server.
type Config struct {
	Issuer       string
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// TrustedProxies are the proxies in front whose X-Forwarded-For is
	// believed (BROKER_TRUSTED_PROXIES); see Server.ClientIP.
	TrustedProxies Proxies
	// PartnerRate is the sustained requests per second per partner, and
	// PartnerBurst the bucket size; 0 disables limiting.
	PartnerRate  float64
	PartnerBurst int
	// MetricsToken, when set, is the bearer token GET /metrics requires
	// (BROKER_METRICS_TOKEN); unset, /metrics is open, for a port that
	// only the scraper reaches.
	MetricsToken string
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 15 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 90 * time.Second
	}
	if c.PartnerRate == 0 {
		c.PartnerRate = 200
	}
	if c.PartnerBurst == 0 {
		c.PartnerBurst = int(2 * c.PartnerRate)
	}
}

// Deps are the parts the routes use. Nil parts disable their routes.
type Deps struct {
	Log      *slog.Logger
	DB       Pinger
	Auth     Authenticator
	OAuth    OAuthFunc
	JWKS     func() []byte
	WhatsApp WebhookReceiver
	Breaches BreachAPI
	Audit    AuditAPI
	Reports  Reports
	Officers OfficerAuth
	// Routes mount the routes of the domains served beside the broker's
	// own (commerce/httpapi: the partner orders API and the rights desk),
	// with the Server's Partner, Compliance, OfficerAction and DecodeJSON.
	// They run in order, before UI.
	Routes     []func(app *fiber.App, s *Server)
	UI         func(app *fiber.App, s *Server)
	OpenAPI    []byte
	Metrics    *Metrics
	StartedAt  time.Time
	ExtraReady func(ctx context.Context) error
	// Privacy returns the full privacy notice page in a language (GET
	// /privacy/{lang}); false when there is none.
	Privacy func(lang string) ([]byte, bool)
}

// Server is the HTTP application.
type Server struct {
	App  *fiber.App
	cfg  Config
	deps Deps
	lim  *limiter
	// endpoints ("METHOD /pattern") and patterns are the route table,
	// indexed once for the metrics' route labels.
	endpoints map[string]bool
	patterns  []endpoint
}

// New builds the application and its routes.
func New(cfg Config, d Deps) *Server {
	cfg.SetDefaults()
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	app := fiber.New(fiber.Config{
		Immutable:             true,
		BodyLimit:             WebhookBodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ReadBufferSize:        128 << 10, // headers up to 128 KB reach us, so an oversized token is a 401
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(d.Log),
		AppName:               "sieve",
		ServerHeader:          "",
		// Give the read buffers of idle keep-alive connections back: with
		// many shoppers' webhooks and partners polling, idle connections
		// otherwise hold 128 KB each.
		ReduceMemoryUsage: true,
		// Believe X-Forwarded-Proto and -Host only from our own proxies
		// (without the check Fiber believes them from anyone). No
		// ProxyHeader: Fiber would take the leftmost X-Forwarded-For hop,
		// which the client writes; ClientIP walks it from the right.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          prefixStrings(cfg.TrustedProxies),
	})
	// Fiber answers a method it does not know with a plain-text 400 before
	// any middleware runs; answer it in the JSON error shape instead.
	inner := app.Server().Handler
	app.Server().Handler = func(ctx *fasthttp.RequestCtx) {
		if !slices.Contains(fiber.DefaultMethods, string(ctx.Method())) {
			d.Metrics.requests.WithLabelValues(unmatchedRoute, "OTHER", "400").Inc()
			ctx.Response.Header.SetContentType(fiber.MIMEApplicationJSON)
			ctx.Response.Header.Set(fiber.HeaderCacheControl, "no-store")
			ctx.SetStatusCode(fiber.StatusBadRequest)
			ctx.SetBodyString(`{"error":{"code":"` + broker.EInvalid + `","message":"unknown HTTP method"}}`)
			return
		}
		inner(ctx)
	}
	s := &Server{App: app, cfg: cfg, deps: d, lim: newLimiter(cfg.PartnerRate, cfg.PartnerBurst)}
	app.Use(s.observe) // outermost: it counts what recover and the error handler make of a request
	app.Use(recover.New())
	app.Use(s.bodyLimits)
	s.routes()
	s.indexRoutes()
	return s
}

// bodyLimits applies the per-route body limits (the server-wide limit is
// the webhook's 3 MB).
func (s *Server) bodyLimits(c *fiber.Ctx) error {
	limit := DefaultBodyLimit
	p := c.Path()
	switch {
	case p == "/webhooks/whatsapp":
		limit = WebhookBodyLimit
	case p == "/oauth/token":
		limit = TokenBodyLimit
	}
	if len(c.Request().Body()) > limit || c.Request().Header.ContentLength() > limit {
		if p == "/oauth/token" {
			return oauthError(c, fiber.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return broker.Errorf(broker.ETooLarge, "request body over %d bytes", limit)
	}
	// Fiber's c.Body() inflates gzip, deflate and br bodies without bound,
	// after the limits above saw only the compressed size: a small bomb
	// would be parsed as megabytes. No client of ours compresses, so a
	// compressed body is refused (the webhook has its own check, and reads
	// the raw bytes its signature covers).
	if compressed(c) {
		if p == "/oauth/token" {
			return oauthError(c, fiber.StatusUnsupportedMediaType, "invalid_request", "compressed bodies are not accepted")
		}
		return broker.Errorf(broker.EUnsupported, "compressed bodies are not accepted")
	}
	return c.Next()
}

// compressed reports a body with any Content-Encoding but identity, in any
// of the request's Content-Encoding headers (Fiber decodes by the last).
func compressed(c *fiber.Ctx) bool {
	if len(c.Request().Body()) == 0 {
		return false
	}
	found := false
	c.Request().Header.VisitAll(func(k, v []byte) {
		if strings.EqualFold(string(k), fiber.HeaderContentEncoding) && !strings.EqualFold(strings.TrimSpace(string(v)), "identity") {
			found = true
		}
	})
	return found
}

func (s *Server) routes() {
	app := s.App
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.ready)
	app.Get("/metrics", s.metricsAuth, s.deps.Metrics.Handler())
	openapi := ServedOpenAPI(s.deps.OpenAPI, s.cfg.Issuer)
	app.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openapi)
	})
	if s.deps.WhatsApp != nil {
		app.Get("/webhooks/whatsapp", s.webhookVerify)
		app.Post("/webhooks/whatsapp", s.webhookReceive)
	}
	if s.deps.OAuth != nil {
		app.Post("/oauth/token", s.oauthToken)
	}
	if s.deps.JWKS != nil {
		app.Get("/.well-known/jwks.json", func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, "application/jwk-set+json")
			c.Set(fiber.HeaderCacheControl, "public, max-age=300")
			return c.Send(s.deps.JWKS())
		})
	}
	s.complianceRoutes()
	s.privacyRoutes()
	for _, mount := range s.deps.Routes {
		mount(app, s)
	}
	if s.deps.UI != nil {
		s.deps.UI(app, s)
	}
	// Everything else: a JSON 404, or 405 when the path exists with
	// another method.
	app.Use(s.fallback)
}

// fallback answers unknown routes: 405 with Allow when the path is known
// for other methods, else 404.
func (s *Server) fallback(c *fiber.Ctx) error {
	var allow []string
	for _, r := range s.App.GetRoutes(true) {
		if r.Method == fiber.MethodHead || r.Path == "/" || strings.Contains(r.Path, "*") && r.Path != c.Path() {
			continue
		}
		if matchPath(r.Path, c.Path()) && r.Method != c.Method() {
			allow = append(allow, r.Method)
		}
	}
	if len(allow) > 0 {
		c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
		return broker.Errorf(broker.EMethod, "method %s not allowed here", c.Method())
	}
	return fiber.ErrNotFound
}

// matchPath matches a route pattern with :params against a path.
func matchPath(pattern, path string) bool {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], ":") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func (s *Server) ready(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if s.deps.DB != nil {
		if err := s.deps.DB.Ping(ctx); err != nil {
			return broker.Errorf(broker.EUnavailable, "database unreachable")
		}
	}
	if s.deps.ExtraReady != nil {
		if err := s.deps.ExtraReady(ctx); err != nil {
			return broker.Errorf(broker.EUnavailable, "not ready")
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// Listen serves on addr until Shutdown.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown. Every connection must send its first
// request within ReadTimeout: fasthttp starts ReadTimeout only at a
// request's first byte (and IdleTimeout only after a first request), so a
// connection that never sends a byte would otherwise hold its descriptor
// for ever.
func (s *Server) Serve(ln net.Listener) error {
	return s.App.Listener(firstByteDeadline{Listener: ln, d: s.cfg.ReadTimeout})
}

// firstByteDeadline sets a read deadline on each accepted connection;
// fasthttp replaces it with its own deadlines once a request starts.
type firstByteDeadline struct {
	net.Listener
	d time.Duration
}

// Accept returns the next connection with its first-byte deadline set. A
// connection whose deadline cannot be set is closed and skipped: an error
// from Accept would stop the server.
func (l firstByteDeadline) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.d <= 0 {
			return c, err
		}
		if err := c.SetReadDeadline(time.Now().Add(l.d)); err != nil {
			c.Close() //nolint:errcheck // a connection we cannot bound is dropped
			continue
		}
		return c, nil
	}
}

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.App.ShutdownWithContext(ctx) }
