package commerce

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Breach summary codes: what happened, from a fixed list (it goes into the
// immutable log and the Board intimation; the narrative stays outside).
var BreachSummaryCodes = []string{"unauthorised_access", "credential_compromise", "misdirected_release",
	"partner_compromise", "insider_misuse", "software_defect", "lost_device", "ransomware", "other"}

// breachNature describes each summary code in the reports and notices.
var breachNature = map[string]string{
	"unauthorised_access":   "unauthorised access to personal data held by a recipient",
	"credential_compromise": "a recipient's access credentials were compromised",
	"misdirected_release":   "personal data was released to the wrong recipient",
	"partner_compromise":    "a partner that received personal data was compromised",
	"insider_misuse":        "personal data was misused by someone with authorised access",
	"software_defect":       "a software defect exposed personal data",
	"lost_device":           "a device holding personal data was lost or stolen",
	"ransomware":            "personal data was encrypted or taken by ransomware",
	"other":                 "a personal data breach",
}

// BreachBoardWindow is the time the full report to the Board is due after
// awareness (DPDP Rules 2025, Rule 7(2)(b); GDPR Art. 33(1)).
const BreachBoardWindow = 72 * time.Hour

// fallbackCategories name the data category of a released field when the
// workbench is given no policy data (the policy data's field categories,
// which the Art. 30 record and the retention periods use, are the source).
var fallbackCategories = []struct{ prefix, category string }{
	{"customer.consent", "consent_records"}, {"customer.", "identity"}, {"delivery.address", "addresses"},
	{"delivery.postal_code", "addresses"}, {"delivery.location", "addresses"}, {"chat", "chat"},
	{"note_to_customer", "chat"},
}

// FieldCategory maps a released field name to its data category without
// policy data: identity, addresses, consent_records, chat, else orders.
func FieldCategory(field string) string {
	for _, c := range fallbackCategories {
		if strings.HasPrefix(field, c.prefix) {
			return c.category
		}
	}
	return "orders"
}

// categorize maps a field to its category: the policy data's when known.
func (w *Workbench) categorize(field string) string {
	if w.Categorize != nil {
		if c, ok := w.Categorize(field); ok {
			return c
		}
	}
	return FieldCategory(field)
}

// Categories lists the data categories a breach may be narrowed to.
func (w *Workbench) Categories() []string {
	out := slices.Clone(w.CategoryNames)
	for _, c := range fallbackCategories {
		out = append(out, c.category)
	}
	out = append(out, "orders")
	slices.Sort(out)
	return slices.Compact(out)
}

// BreachFilter selects the releases a breach touched.
type BreachFilter struct {
	From, To time.Time
	Partner  string // a partner id; "" for every recipient
	Category string // a data category; "" for every one
	// Actor is the partner's audit actor (kind:id), set by Open from
	// Partner, so the scan uses the log's actor index.
	Actor string
}

// ReleaseGroup is what the log says of one (subject, recipient, released
// fields) combination in a window: how many releases.
type ReleaseGroup = broker.ReleaseGroup

// BreachRecipient is one recipient the breach touched.
type BreachRecipient struct {
	Party    string `json:"party"`
	Name     string `json:"name,omitempty"`
	Kind     string `json:"kind"`
	Releases int    `json:"releases"`
	Subjects int    `json:"subjects"`
}

// BreachScope is who and what a breach touched, computed from the log.
type BreachScope struct {
	Subjects   []string          `json:"-"` // audit pseudonyms, sorted
	Releases   int               `json:"releases"`
	Categories []string          `json:"categories"`
	Recipients []BreachRecipient `json:"recipients"`
}

// unreadableFields stands for a release whose field list did not parse.
const unreadableFields = "\x00unreadable"

// ScopeOf aggregates release groups into a breach scope, keeping only the
// releases of the filter's category; categorize names each field's
// category (nil: FieldCategory).
func ScopeOf(groups []ReleaseGroup, category string, categorize func(string) string) BreachScope {
	if categorize == nil {
		categorize = FieldCategory
	}
	fields := map[string][]string{}
	subjects := map[string]bool{}
	cats := map[string]bool{}
	type rec struct {
		n    int
		subs map[string]bool
	}
	recs := map[string]*rec{}
	var sc BreachScope
	for _, g := range groups {
		fs, ok := fields[g.Released]
		if !ok {
			if err := json.Unmarshal([]byte(g.Released), &fs); err != nil || fs == nil {
				// Fail towards telling: a release whose fields cannot be
				// read counts as touching every category.
				fs = []string{unreadableFields}
			}
			fields[g.Released] = fs
		}
		var gcats []string
		for _, f := range fs {
			c := categorize(f)
			if f == unreadableFields {
				c = category
				if c == "" {
					c = "unknown"
				}
			}
			if !slices.Contains(gcats, c) {
				gcats = append(gcats, c)
			}
		}
		if len(gcats) == 0 || (category != "" && !slices.Contains(gcats, category)) {
			continue
		}
		for _, c := range gcats {
			if category == "" || c == category {
				cats[c] = true
			}
		}
		subjects[g.Subject] = true
		sc.Releases += g.Count
		r := recs[g.Actor]
		if r == nil {
			r = &rec{subs: map[string]bool{}}
			recs[g.Actor] = r
		}
		r.n += g.Count
		r.subs[g.Subject] = true
	}
	for s := range subjects {
		sc.Subjects = append(sc.Subjects, s)
	}
	sort.Strings(sc.Subjects)
	for c := range cats {
		sc.Categories = append(sc.Categories, c)
	}
	sort.Strings(sc.Categories)
	sc.Recipients = []BreachRecipient{}
	for a, r := range recs {
		kind, _, _ := strings.Cut(a, ":")
		sc.Recipients = append(sc.Recipients, BreachRecipient{Party: a, Kind: kind, Releases: r.n, Subjects: len(r.subs)})
	}
	sort.Slice(sc.Recipients, func(i, j int) bool { return sc.Recipients[i].Party < sc.Recipients[j].Party })
	return sc
}

// Breach is a recorded breach.
type Breach struct {
	ID       string    `json:"id"`
	AwareAt  time.Time `json:"aware_at"`
	BoardDue time.Time `json:"board_report_due"`
	// HoursLeft until the 72-hour report is due when the breach was read
	// (negative: overdue).
	HoursLeft   float64           `json:"hours_left"`
	From        time.Time         `json:"window_from"`
	To          time.Time         `json:"window_to"`
	Partner     string            `json:"partner,omitempty"`
	Category    string            `json:"category,omitempty"`
	SummaryCode string            `json:"summary_code"`
	OpenedBy    string            `json:"opened_by"`
	LogSize     uint64            `json:"verified_log_size"`
	Affected    int               `json:"affected_subjects"`
	Releases    int               `json:"releases"`
	Categories  []string          `json:"categories"`
	Recipients  []BreachRecipient `json:"recipients"`
	NotifiedAt  *time.Time        `json:"notified_at"`
	Notices     map[string]int    `json:"notices"` // delivery status -> count
}

// BreachNotice is an affected shopper's notice row.
type BreachNotice struct {
	Pseudonym string
	SubjectID string
	Ref       string
	Status    string
}

// BreachStore is the persistence of the workbench.
type BreachStore interface {
	broker.Transactor
	// ReleaseGroups reads the releases (released or partial entries with
	// a subject) in the window among the first size entries of the log,
	// optionally to one partner, grouped.
	ReleaseGroups(ctx context.Context, f BreachFilter, size uint64) ([]ReleaseGroup, error)
	InsertBreach(ctx context.Context, b Breach, subjects []string) error
	GetBreach(ctx context.Context, id string) (Breach, error)
	ListBreaches(ctx context.Context) ([]Breach, error)
	// PendingBreachNotices claims up to limit affected shoppers not yet
	// notified, locked for the transaction in ctx (others skip them).
	PendingBreachNotices(ctx context.Context, id string, limit int) ([]BreachNotice, error)
	SetBreachNotice(ctx context.Context, id string, n BreachNotice) error
	MarkBreachNotified(ctx context.Context, id string, at time.Time) error
	// BreachNoticeStatuses counts the notices by delivery status (the
	// WhatsApp status when one came back, else the outbox's or ours).
	BreachNoticeStatuses(ctx context.Context, id string) (map[string]int, error)
	// SubjectIDs lists every shopper not erased, for resolving pseudonyms.
	SubjectIDs(ctx context.Context) ([]string, error)
}

// Workbench is the breach workbench (SPEC §11).
type Workbench struct {
	Service *Service
	Store   BreachStore
	// Verify verifies the audit log and returns its verified size; the
	// workbench computes nothing from a log that fails it.
	Verify  func(ctx context.Context) (uint64, error)
	Contact string
	// PhoneNumberID is the business number notices are sent from.
	PhoneNumberID string
	// Categorize names a field's data category from the policy data, and
	// CategoryNames are the policy data's categories; without them the
	// workbench falls back to FieldCategory.
	Categorize    func(field string) (string, bool)
	CategoryNames []string
	Now           func() time.Time
}

func (w *Workbench) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Workbench) record(ctx context.Context, actor, action, subject, resource, outcome, reason string) error {
	s := w.Service
	return s.record(ctx, broker.Event{Time: w.now(), Actor: actor,
		Action: action, Purpose: broker.PurposeBreachNotification, SubjectPseudonym: subject, Resource: resource,
		Outcome: outcome, Reason: reason})
}

// ErrLogUnverified is returned when the audit log fails verification: the
// workbench refuses to compute who was affected from a log it cannot trust.
var ErrLogUnverified = broker.Errorf(broker.EConflict, "the audit log failed verification; breach not opened")

// Open verifies the log, computes the breach's scope from it and records
// the breach and the moment of awareness (an audit entry). A failing
// verification is refused (ErrLogUnverified), and that refusal is audited.
func (w *Workbench) Open(ctx context.Context, f BreachFilter, summary string, actor broker.Party) (Breach, error) {
	if !slices.Contains(BreachSummaryCodes, summary) {
		return Breach{}, broker.Errorf(broker.EInvalid, "summary code must be one of %s", strings.Join(BreachSummaryCodes, ", "))
	}
	if f.From.IsZero() || f.To.IsZero() || !f.From.Before(f.To) {
		return Breach{}, broker.Errorf(broker.EInvalid, "the window needs --from before --to")
	}
	if f.Category != "" && !slices.Contains(w.Categories(), f.Category) {
		return Breach{}, broker.Errorf(broker.EInvalid, "category must be one of %s", strings.Join(w.Categories(), ", "))
	}
	if f.Partner != "" {
		p, err := w.Service.Partners.GetPartner(ctx, f.Partner)
		if broker.IsNotFound(err) {
			return Breach{}, broker.Errorf(broker.EInvalid, "no partner %s", f.Partner)
		}
		if err != nil {
			return Breach{}, err
		}
		f.Actor = PartnerParty(p).Actor()
	}
	aware := w.now().UTC()
	size, err := w.Verify(ctx)
	if err != nil {
		if rerr := w.record(ctx, actor.Actor(), "breach_open", "", "breach", audit.OutcomeFailed, "audit_verify_failed"); rerr != nil {
			return Breach{}, rerr
		}
		return Breach{}, ErrLogUnverified
	}
	groups, err := w.Store.ReleaseGroups(ctx, f, size)
	if err != nil {
		return Breach{}, err
	}
	sc := ScopeOf(groups, f.Category, w.categorize)
	for i := range sc.Recipients {
		if _, id, ok := strings.Cut(sc.Recipients[i].Party, ":"); ok {
			if p, err := w.Service.Partners.GetPartner(ctx, id); err == nil {
				sc.Recipients[i].Name = p.Name
			}
		}
	}
	b := Breach{ID: broker.NewID("brc"), AwareAt: aware, From: f.From.UTC(),
		To: f.To.UTC(), Partner: f.Partner, Category: f.Category, SummaryCode: summary, OpenedBy: actor.Actor(),
		LogSize: size, Affected: len(sc.Subjects), Releases: sc.Releases, Categories: sc.Categories,
		Recipients: sc.Recipients}
	w.due(&b)
	if b.Categories == nil {
		b.Categories = []string{}
	}
	err = w.Store.InTx(ctx, func(ctx context.Context) error {
		if err := w.Store.InsertBreach(ctx, b, sc.Subjects); err != nil {
			return err
		}
		return w.record(ctx, actor.Actor(), "breach_open", "", b.ID, audit.OutcomeDone, summary)
	})
	return b, err
}

// Get reads a breach with its notice statuses.
func (w *Workbench) Get(ctx context.Context, id string) (Breach, error) {
	b, err := w.Store.GetBreach(ctx, id)
	if err != nil {
		return b, err
	}
	w.due(&b)
	if b.Notices, err = w.Store.BreachNoticeStatuses(ctx, id); err != nil {
		return b, err
	}
	return b, nil
}

// due sets the breach's 72-hour report deadline and the hours left until it.
func (w *Workbench) due(b *Breach) {
	b.BoardDue = b.AwareAt.Add(BreachBoardWindow)
	b.HoursLeft = b.BoardDue.Sub(w.now()).Hours()
}

// List lists the breaches, newest first, with their notice statuses.
func (w *Workbench) List(ctx context.Context) ([]Breach, error) {
	bs, err := w.Store.ListBreaches(ctx)
	if err != nil {
		return nil, err
	}
	for i := range bs {
		w.due(&bs[i])
		if bs[i].Notices, err = w.Store.BreachNoticeStatuses(ctx, bs[i].ID); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// NoticeText is the Rule 7(1) notice to an affected shopper: nature,
// extent, timing and location; likely consequences; mitigation; what they
// can do; a contact.
func (w *Workbench) NoticeText(b Breach) string {
	contact := w.Contact
	if contact == "" {
		contact = DefaultDPOContact
	}
	cats := strings.Join(b.Categories, ", ")
	if cats == "" {
		cats = "order details"
	}
	return fmt.Sprintf("Important notice about your data (ref %s).\n\n"+
		"What happened: %s, between %s and %s (IST); we learned of it on %s.\n"+
		"What was involved: your %s, as shared with a partner to fulfil your orders. Your phone number and chat were not shared.\n"+
		"What it may mean: someone may use these details to contact you or pose as the store.\n"+
		"What we have done: we stopped the affected access, told the partner to secure and delete the data, and reported it to the Data Protection Board.\n"+
		"What you can do: ignore calls or messages asking for payment or OTPs in the store's name; say \"my data\" here to see who holds your data, or \"delete my data\".\n"+
		"Contact: %s.",
		b.ID, breachNature[b.SummaryCode], b.From.In(ist).Format("2 Jan 2006 15:04"), b.To.In(ist).Format("2 Jan 2006 15:04"),
		b.AwareAt.In(ist).Format("2 Jan 2006 15:04"), cats, contact)
}

// Notify sends every affected shopper not yet notified the Rule 7(1)
// notice through the breach_notice template (a text inside the 24-hour
// window), one audit entry each; shoppers erased since are marked
// unreachable. It returns how many notices it queued.
func (w *Workbench) Notify(ctx context.Context, id string, actor broker.Party) (int, error) {
	b, err := w.Store.GetBreach(ctx, id)
	if err != nil {
		return 0, err
	}
	ids, err := w.Store.SubjectIDs(ctx)
	if err != nil {
		return 0, err
	}
	ps := w.Service.Releaser.Pseudonyms()
	byPseudo := make(map[string]string, len(ids))
	for _, sid := range ids {
		byPseudo[ps.Audit(sid)] = sid
	}
	body := w.NoticeText(b)
	queued := 0
	for {
		// Each batch is claimed in its transaction (rows locked, others
		// skip them), so two officers notifying at once send nobody two.
		n := 0
		err := w.Store.InTx(ctx, func(ctx context.Context) error {
			pending, err := w.Store.PendingBreachNotices(ctx, id, 200)
			if err != nil {
				return err
			}
			n = len(pending)
			for _, nt := range pending {
				nt.SubjectID = byPseudo[nt.Pseudonym]
				nt.Status = "unreachable"
				if nt.SubjectID != "" {
					ref, err := w.send(ctx, nt.SubjectID, body)
					if err != nil {
						return err
					}
					if ref != "" {
						nt.Ref, nt.Status = ref, "queued"
					}
				}
				if err := w.Store.SetBreachNotice(ctx, id, nt); err != nil {
					return err
				}
				reason := "notice_queued"
				if nt.Status != "queued" {
					reason = "subject_unreachable"
				} else {
					queued++
				}
				if err := w.record(ctx, actor.Actor(), "breach_notice", nt.Pseudonym, b.ID, audit.OutcomeDone, reason); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return queued, err
		}
		if n == 0 {
			break
		}
	}
	if err := w.Store.MarkBreachNotified(ctx, id, w.now().UTC()); err != nil {
		return queued, err
	}
	w.Service.WakeSender()
	return queued, nil
}

// send queues the notice to a shopper and returns its outbox ref; "" when
// the shopper has no address any more.
func (w *Workbench) send(ctx context.Context, subject, body string) (string, error) {
	s := w.Service
	row, err := s.Subjects.GetSubject(ctx, subject)
	if broker.IsNotFound(err) || (err == nil && row.Erased) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	ident, err := s.identity(ctx, row)
	if err != nil {
		return "", err
	}
	item, err := s.sealReply(ctx, subject, w.PhoneNumberID, ident.Address(), Reply{Kind: ReplyText, Body: body, Template: "breach_notice"}, false)
	if err != nil || item.Sealed == nil {
		return "", err
	}
	if _, err := s.Outbox.Enqueue(ctx, item); err != nil {
		return "", err
	}
	return item.Ref, nil
}
