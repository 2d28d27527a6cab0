package ui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/csv"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/transparency-dev/merkle/compact"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/policies"
)

// The fakes below stand in for the PostgreSQL stores, whose own tests run
// against a real database (broker/postgres); tests/e2e runs the dashboard
// over the real ones. The audit fake is a real RFC 6962 tree with real
// signed checkpoints, so proofs verify (or fail) for real.

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// plainPasswords is a cheap Passwords for tests: the hash is the password
// with a prefix (argon2id itself is tested in broker/token).
type plainPasswords struct{}

func (plainPasswords) Hash(pw string) (string, error) { return "plain:" + pw, nil }
func (plainPasswords) Check(hash, pw string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte("plain:"+pw)) == 1
}

// memStore is an in-memory OfficerStore.
type memStore struct {
	mu       sync.Mutex
	officers map[string]broker.Officer        // by name
	sessions map[string]broker.OfficerSession // by string(idHash)
	failures map[string]struct {
		n    int
		last time.Time // the run's last failure
	}
}

func newMemStore() *memStore {
	return &memStore{officers: map[string]broker.Officer{}, sessions: map[string]broker.OfficerSession{},
		failures: map[string]struct {
			n    int
			last time.Time
		}{}}
}

func (m *memStore) OfficerByName(_ context.Context, name string) (broker.Officer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.officers[name]
	if !ok {
		return broker.Officer{}, broker.ErrNotFound
	}
	return o, nil
}

func (m *memStore) CreateSession(_ context.Context, s broker.OfficerSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[string(s.IDHash)] = s
	return nil
}

func (m *memStore) Session(_ context.Context, idHash []byte) (broker.OfficerSession, broker.Officer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[string(idHash)]
	if !ok {
		return broker.OfficerSession{}, broker.Officer{}, broker.ErrNotFound
	}
	for _, o := range m.officers {
		if o.ID == s.OfficerID {
			return s, o, nil
		}
	}
	return broker.OfficerSession{}, broker.Officer{}, broker.ErrNotFound
}

func (m *memStore) TouchSession(_ context.Context, idHash []byte, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[string(idHash)]; ok && at.After(s.LastSeen) {
		s.LastSeen = at
		m.sessions[string(idHash)] = s
	}
	return nil
}

func (m *memStore) ChangePassword(_ context.Context, officerID, passwordHash string, keep []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, o := range m.officers {
		if o.ID == officerID {
			o.PasswordHash, o.PasswordTemporary = passwordHash, false
			m.officers[name] = o
			for k, s := range m.sessions {
				if s.OfficerID == officerID && k != string(keep) {
					delete(m.sessions, k)
				}
			}
			return nil
		}
	}
	return broker.ErrNotFound
}

func (m *memStore) DeleteSession(_ context.Context, idHash []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, string(idHash))
	return nil
}

func (m *memStore) Prune(_ context.Context, now, idleSince, failuresSince time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if !now.Before(s.ExpiresAt) || !s.LastSeen.After(idleSince) {
			delete(m.sessions, k)
		}
	}
	for k, f := range m.failures {
		if !f.last.After(failuresSince) {
			delete(m.failures, k)
		}
	}
	return nil
}

func (m *memStore) LoginFailures(_ context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failures[string(key)]
	if !ok || !f.last.After(now.Add(-window)) {
		return 0, time.Time{}, nil
	}
	return f.n, f.last, nil
}

func (m *memStore) RecordLoginFailure(_ context.Context, key []byte, now time.Time, window time.Duration) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failures[string(key)]
	if !ok || !f.last.After(now.Add(-window)) {
		f.n, f.last = 0, now
	}
	f.n++
	if now.After(f.last) {
		f.last = now
	}
	m.failures[string(key)] = f
	return f.n, f.last, nil
}

func (m *memStore) ClearLoginFailures(_ context.Context, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failures, string(key))
	return nil
}

func (m *memStore) sessionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// memLog is an in-memory audit log: a real Merkle tree, signed checkpoints
// published on demand, and knobs to misbehave.
type memLog struct {
	mu      sync.Mutex
	key     ed25519.PrivateKey
	origin  string
	entries []audit.Entry
	hashes  [][]byte // leaf hashes
	notes   map[uint64]string
	latest  uint64 // size of the latest checkpoint; 0 with no note is "none yet"
	// lie, when set, makes Checkpoint return this note instead.
	lie string
	// badLeaf makes Inclusion report another leaf hash for that index.
	badLeaf map[uint64]bool
	counts  []broker.AuditCount
	flows   []broker.ReleasedCell
	// lastFilter is the filter of the last Entries or ExportCSV call.
	lastFilter broker.AuditFilter
}

func newMemLog(t *testing.T) *memLog {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &memLog{key: key, origin: "broker.test", notes: map[uint64]string{}, badLeaf: map[uint64]bool{}}
}

func (l *memLog) publicKeys() []audit.PublicKey {
	return []audit.PublicKey{{Name: l.origin, Key: l.key.Public().(ed25519.PublicKey)}}
}

// root computes the root of the first size leaves.
func (l *memLog) root(size uint64) []byte {
	tr := audit.NewTree()
	for _, h := range l.hashes[:size] {
		if err := tr.Append(h, nil); err != nil {
			panic(err)
		}
	}
	return tr.Root()
}

// publish signs a checkpoint of the current tree.
func (l *memLog) publish(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	size := uint64(len(l.hashes))
	note, err := audit.SignCheckpoint(l.key, l.origin, size, l.root(size))
	if err != nil {
		t.Fatal(err)
	}
	l.notes[size], l.latest = string(note), size
}

// add appends entries directly (as the broker's releases would).
func (l *memLog) add(es ...audit.Entry) {
	for _, e := range es {
		_ = l.Append(context.Background(), e)
	}
}

// Record builds the entry with the broker's Recorder, as the real log does.
func (l *memLog) Record(ctx context.Context, ev broker.Event) error {
	_, err := broker.NewRecorder(l, nil, nil).Record(ctx, ev)
	return err
}

// Append implements broker.AuditAppender.
func (l *memLog) Append(_ context.Context, e audit.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Index = uint64(len(l.entries))
	e.Normalize()
	leaf, err := e.Canonical()
	if err != nil {
		return err
	}
	l.entries = append(l.entries, e)
	l.hashes = append(l.hashes, audit.LeafHash(leaf))
	return nil
}

func (l *memLog) matching(f broker.AuditFilter) []audit.Entry {
	var out []audit.Entry
	for _, e := range l.entries {
		if (f.Subject == "" || e.Subject == f.Subject) && (f.Actor == "" || e.Actor == f.Actor) &&
			(f.Purpose == "" || e.Purpose == f.Purpose) && (f.Outcome == "" || e.Outcome == f.Outcome) &&
			(f.Action == "" || e.Action == f.Action) && (f.From.IsZero() || !e.Time.Before(f.From)) &&
			(f.To.IsZero() || e.Time.Before(f.To)) {
			out = append(out, e)
		}
	}
	return out
}

func (l *memLog) Entries(_ context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastFilter = f
	all := l.matching(f)
	before := uint64(len(l.entries))
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", broker.Errorf(broker.EInvalid, "invalid cursor")
		}
		before = n
	}
	var out []audit.Entry
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Index >= before {
			continue
		}
		if len(out) == limit {
			return out, strconv.FormatUint(out[len(out)-1].Index, 10), nil
		}
		out = append(out, all[i])
	}
	return out, "", nil
}

func (l *memLog) Entry(_ context.Context, index uint64) (audit.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index >= uint64(len(l.entries)) {
		return audit.Entry{}, broker.ErrNotFound
	}
	return l.entries[index], nil
}

func (l *memLog) Checkpoint(context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lie != "" {
		return l.lie, nil
	}
	note, ok := l.notes[l.latest]
	if !ok {
		return "", broker.ErrNotFound
	}
	return note, nil
}

// nodes reads subtree hashes from the leaf hashes.
type nodes struct{ hashes [][]byte }

func (n nodes) ReadNodes(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		lo, hi := id.Coverage()
		tr := audit.NewTree()
		for _, h := range n.hashes[lo:hi] {
			if err := tr.Append(h, nil); err != nil {
				return nil, err
			}
		}
		out[i] = tr.Root()
	}
	return out, nil
}

func (l *memLog) Inclusion(ctx context.Context, index, size uint64) (audit.InclusionProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hashes, err := audit.BuildInclusion(ctx, nodes{l.hashes[:size]}, index, size)
	if err != nil {
		return audit.InclusionProof{}, broker.Errorf(broker.EInvalid, "bad range")
	}
	lh := bytes.Clone(l.hashes[index])
	if l.badLeaf[index] {
		lh[0] ^= 0xff
	}
	return audit.InclusionProof{Index: index, Size: size, LeafHash: lh, Hashes: hashes}, nil
}

func (l *memLog) Consistency(ctx context.Context, from, to uint64) (audit.ConsistencyProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hashes, err := audit.BuildConsistency(ctx, nodes{l.hashes[:to]}, from, to)
	if err != nil {
		return audit.ConsistencyProof{}, broker.Errorf(broker.EInvalid, "bad range")
	}
	return audit.ConsistencyProof{From: from, To: to, Hashes: hashes}, nil
}

func (l *memLog) Counts(context.Context, time.Time, time.Time, time.Duration) ([]broker.AuditCount, error) {
	return l.counts, nil
}

func (l *memLog) Flows(context.Context) ([]broker.ReleasedCell, error) { return l.flows, nil }

func (l *memLog) ExportCSV(_ context.Context, w io.Writer, f broker.AuditFilter) error {
	l.mu.Lock()
	l.lastFilter = f
	rows := l.matching(f)
	l.mu.Unlock()
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"index", "actor", "action", "subject", "outcome"})
	for _, e := range rows {
		_ = cw.Write([]string{strconv.FormatUint(e.Index, 10), e.Actor, e.Action, e.Subject, e.Outcome})
	}
	cw.Flush()
	return cw.Error()
}

func (l *memLog) actions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		out = append(out, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	return out
}

func (l *memLog) last() audit.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[len(l.entries)-1]
}

// apiLog adapts memLog to httpapi.AuditAPI, so the JSON compliance API can
// be exercised with officers' sessions.
type apiLog struct{ *memLog }

func (a apiLog) Inclusion(ctx context.Context, index, size uint64) (any, error) {
	return a.memLog.Inclusion(ctx, index, size)
}

func (a apiLog) Consistency(ctx context.Context, from, to uint64) (any, error) {
	return a.memLog.Consistency(ctx, from, to)
}

// partners is a PartnerStore with fixed partners; only listing is used.
type partners struct{ broker.PartnerStore }

func (partners) ListPartners(context.Context) ([]broker.Partner, error) {
	return []broker.Partner{
		{ID: "cli_fresh", Name: "Fresh Mart", Kind: broker.KindRetailer},
		{ID: "cli_couriers", Name: "Quick Couriers", Kind: broker.KindLogistics},
	}, nil
}

// harness is a dashboard over fakes, served by the real httpapi app.
type harness struct {
	t     *testing.T
	ui    *UI
	app   *fiber.App
	store *memStore
	log   *memLog
	clock *clock
}

const (
	testOfficer  = "asha"
	testPassword = "correct horse battery staple"
)

func newHarness(t *testing.T, tweak ...func(*Deps)) *harness {
	t.Helper()
	h := &harness{t: t, store: newMemStore(), log: newMemLog(t),
		clock: &clock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}}
	h.store.officers[testOfficer] = broker.Officer{ID: "off_asha", Name: testOfficer, PasswordHash: "plain:" + testPassword}
	h.store.officers["ravi"] = broker.Officer{ID: "off_ravi", Name: "ravi", PasswordHash: "plain:" + testPassword, Disabled: true}
	d := Deps{Officers: h.store, Passwords: plainPasswords{}, Audit: h.log, CheckpointKeys: h.log.publicKeys,
		Partners: partners{}, Now: h.clock.Now, Policy: testPolicy, StoreName: "Test Store",
		Processing: func(context.Context) policies.ProcessingRecord { return testRecord() }}
	for _, f := range tweak {
		f(&d)
	}
	h.ui = New(d)
	srv := httpapi.New(httpapi.Config{}, httpapi.Deps{UI: h.ui.Register, Officers: h.ui, Audit: apiLog{h.log},
		Log: d.Log})
	h.app = srv.App
	return h
}

func testPolicy() policies.View {
	return policies.View{Revision: "rev123",
		Purposes: []policies.PurposeView{{Name: "order_fulfilment", Description: "Fulfil the order.", LawfulBasis: "contract",
			Consent: []string{"notice"}, Grants: []policies.GrantView{{Kind: "retailer", Scopes: []string{"orders:read"},
				Fields: map[string]string{"order.id": "keep", "customer.ref": "pseudonym"}}}}},
		PartyKinds: []policies.PartyKindView{{Kind: "retailer", Side: "retail", Description: "The store."}},
		Transforms: []policies.Described{{Name: "keep", Description: "As is."}},
		Fields: []policies.FieldView{{Name: "order.id", Record: "order", Category: "orders"},
			{Name: "customer.ref", Record: "order", Category: "identity"},
			{Name: "customer.phone", Record: "order", Category: "identity", Description: "The phone number."}},
		Retention: []policies.RetentionRow{{Category: "identity", Days: 1095, Basis: "DPDP"}},
	}
}

func testRecord() policies.ProcessingRecord {
	return policies.ProcessingRecord{Title: "Record of processing activities", Controller: "Test Store",
		PolicyRevision: "rev123", Activities: []policies.ProcessingPurpose{{Purpose: "order_fulfilment", LawfulBasis: "contract",
			Recipients: []policies.Recipient{{Kind: "retailer", Side: "retail", Fields: map[string]string{"order.id": "keep"}}}}},
		Retention: []policies.RetentionRow{{Category: "identity", Days: 1095}}, SecurityMeasures: []string{"sealed at rest"}}
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// do sends a request with the given cookies and headers.
func (h *harness) do(method, target string, form url.Values, cookies []*http.Cookie, headers map[string]string) response {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// loginForm fetches the sign-in page and returns its double-submit token
// and cookie.
func (h *harness) loginForm() (string, *http.Cookie) {
	h.t.Helper()
	r := h.do("GET", "/ui/login", nil, nil, nil)
	ck := r.cookie(loginCookie)
	if r.status != 200 || ck == nil {
		h.t.Fatalf("GET /ui/login: %d, cookie %v", r.status, ck)
	}
	return ck.Value, ck
}

// login signs in and returns the session cookie and CSRF token.
func (h *harness) login(name, password string) (*http.Cookie, string) {
	h.t.Helper()
	tok, ck := h.loginForm()
	r := h.do("POST", "/ui/login", url.Values{"csrf": {tok}, "name": {name}, "password": {password}},
		[]*http.Cookie{ck}, nil)
	sess := r.cookie(SessionCookie)
	if r.status != fiber.StatusSeeOther || sess == nil || sess.Value == "" {
		h.t.Fatalf("login: status %d, session cookie %v\n%s", r.status, sess, r.body)
	}
	page := h.do("GET", "/ui/subjects", nil, []*http.Cookie{sess}, nil)
	return sess, csrfOf(h.t, page.body)
}

// csrfOf extracts the CSRF token from a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	const marker = `<meta name="csrf-token" content="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}
