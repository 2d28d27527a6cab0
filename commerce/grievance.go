package commerce

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The statutory grievance timers (Consumer Protection (E-Commerce) Rules
// 2020, r.4(5)): acknowledge within 48 hours, redress within one month.
// DPDP Rule 14(3) allows a published period of up to 90 days, so the
// consumer rules are the binding bound; a deployment may be quicker, never
// slower.
const (
	MaxGrievanceAck     = 48 * time.Hour
	MaxGrievanceResolve = 30 * 24 * time.Hour
)

// DefaultDPOContact is the development grievance officer contact.
const DefaultDPOContact = "Grievance Officer, privacy@sieve.example, +91 80 0000 0000"

// Grievance outcomes: a fixed list of codes, because the outcome goes into
// the immutable log and to the shopper; never free text.
const (
	OutcomeInFavour      = "resolved_in_favour"    // the complaint was upheld and remedied
	OutcomeExplained     = "resolved_explained"    // no fault found; the shopper was given the reasons
	OutcomePartly        = "resolved_partly"       // partly upheld
	OutcomeOutOfScope    = "rejected_out_of_scope" // not about this store's processing or sales
	OutcomeDuplicate     = "rejected_duplicate"    // the same matter is already a ticket
	OutcomeReferredBoard = "referred_to_board"     // the shopper was referred to the Data Protection Board
	OutcomeWithdrawn     = "withdrawn"             // the shopper withdrew it
)

// GrievanceOutcomes lists the outcome codes.
var GrievanceOutcomes = []string{OutcomeInFavour, OutcomeExplained, OutcomePartly, OutcomeOutOfScope,
	OutcomeDuplicate, OutcomeReferredBoard, OutcomeWithdrawn}

// outcomeWords is what the shopper is told for each outcome.
var outcomeWords = map[string]string{
	OutcomeInFavour:      "upheld: we agree with you and have put it right",
	OutcomeExplained:     "answered: we looked into it and found no fault; the grievance officer can explain why",
	OutcomePartly:        "partly upheld: we have put right what was wrong",
	OutcomeOutOfScope:    "closed: it is not about this store's orders or your data here",
	OutcomeDuplicate:     "closed: the same matter is handled in another of your complaints",
	OutcomeReferredBoard: "referred: you may take it to the Data Protection Board of India",
	OutcomeWithdrawn:     "closed at your request",
}

// Grievance desk filters (GET /v1/grievances?status=, /ui/grievances).
const (
	GrievanceOpen     = "open"
	GrievanceOverdue  = "overdue"
	GrievanceResolved = "resolved"
)

// Grievance is a complaint ticket. Its text is sealed at rest and only
// opened for the officer who reads the ticket.
type Grievance struct {
	ID             string     `json:"id"`
	Subject        string     `json:"-"`
	Pseudonym      string     `json:"subject"` // the audit pseudonym
	Store          string     `json:"-"`
	Text           string     `json:"text,omitempty"`
	OpenedAt       time.Time  `json:"opened_at"`
	AckDue         time.Time  `json:"acknowledge_by"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	ResolveDue     time.Time  `json:"resolve_by"`
	EscalatedAt    *time.Time `json:"escalated_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	Outcome        string     `json:"outcome,omitempty"`
	ResolvedBy     string     `json:"resolved_by,omitempty"`
	Status         string     `json:"status"` // open | overdue | resolved
	Sealed         []byte     `json:"-"`
}

// status computes the desk status at now.
func (g *Grievance) status(now time.Time) string {
	switch {
	case g.ResolvedAt != nil:
		return GrievanceResolved
	case now.After(g.ResolveDue):
		return GrievanceOverdue
	}
	return GrievanceOpen
}

// InTime reports whether a resolved ticket was resolved by its deadline.
func (g *Grievance) InTime() bool { return g.ResolvedAt != nil && !g.ResolvedAt.After(g.ResolveDue) }

// GrievanceStore is the persistence of the desk; its methods join the
// transaction carried by ctx.
type GrievanceStore interface {
	broker.Transactor
	InsertGrievance(ctx context.Context, g Grievance) error
	GetGrievance(ctx context.Context, id string) (Grievance, error)
	// ListGrievances returns tickets, newest first: status "" for all,
	// open (unresolved), overdue (unresolved past resolve_by at now) or
	// resolved.
	ListGrievances(ctx context.Context, status string, now time.Time, limit int) ([]Grievance, error)
	// ResolveGrievance records the outcome; false when the ticket is
	// already resolved.
	ResolveGrievance(ctx context.Context, id, outcome, by string, at time.Time) (bool, error)
	// GrievanceCounts counts the tickets for the SLA report at now (the
	// counts only: total, open, overdue, escalated, resolved, in time).
	GrievanceCounts(ctx context.Context, now time.Time) (SLAReport, error)
	// EscalateOverdue marks unresolved tickets past resolve_by at now, not
	// yet escalated, as escalated, and returns them.
	EscalateOverdue(ctx context.Context, now time.Time, limit int) ([]Grievance, error)
}

// SLAReport is how the desk keeps its deadlines: the share of tickets
// resolved in time.
type SLAReport struct {
	Total          int     `json:"total"`
	Open           int     `json:"open"`
	Overdue        int     `json:"overdue"`
	Escalated      int     `json:"escalated"`
	Resolved       int     `json:"resolved"`
	ResolvedInTime int     `json:"resolved_in_time"`
	ShareInTime    float64 `json:"share_resolved_in_time"` // of resolved tickets; 1 when none
	AckHours       float64 `json:"acknowledge_within_hours"`
	ResolveDays    float64 `json:"resolve_within_days"`
}

// Desk is the grievance desk: tickets from the chat, their statutory
// timers, escalation and resolution, every step an audit entry.
type Desk struct {
	Service *Service
	Store   GrievanceStore
	// Contact is the grievance officer / DPO contact (SIEVE_DPO_CONTACT).
	Contact string
	// AckWithin and ResolveWithin are the desk's timers; zero means the
	// statutory maximum, and a longer one is never used (the configuration
	// refuses it; the desk clamps it).
	AckWithin, ResolveWithin time.Duration
	// Now is the clock (tests inject one); nil is time.Now.
	Now func() time.Time
}

func (d *Desk) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Desk) timers() (time.Duration, time.Duration) {
	ack, res := d.AckWithin, d.ResolveWithin
	if ack <= 0 || ack > MaxGrievanceAck {
		ack = MaxGrievanceAck
	}
	if res <= 0 || res > MaxGrievanceResolve {
		res = MaxGrievanceResolve
	}
	return ack, res
}

func (d *Desk) contact() string {
	if d.Contact == "" {
		return DefaultDPOContact
	}
	return d.Contact
}

// record appends a desk audit entry: codes only, the subject as its
// pseudonym, the ticket id as the resource (it holds no personal data).
func (d *Desk) record(ctx context.Context, actor, action, subject, resource, reason string, at time.Time) error {
	s := d.Service
	return s.record(ctx, broker.Event{Time: at, Actor: actor,
		Action: action, Purpose: broker.PurposeGrievance, Subject: subject, Resource: resource,
		Outcome: audit.OutcomeDone, Reason: reason})
}

// MaxGrievanceText bounds a complaint's text.
const MaxGrievanceText = 4000

// Open opens a ticket for the shopper's complaint text, seals the text,
// acknowledges it at once (the reply it returns is the acknowledgement) and
// audits both steps. It joins the transaction in ctx.
func (d *Desk) Open(ctx context.Context, subject, store, text string) (Grievance, Reply, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Grievance{}, Reply{}, broker.Errorf(broker.EInvalid, "a complaint needs its text")
	}
	if r := []rune(text); len(r) > MaxGrievanceText {
		text = string(r[:MaxGrievanceText])
	}
	now := d.now().UTC()
	ack, res := d.timers()
	g := Grievance{ID: broker.NewID("grv"), Subject: subject, Store: store, OpenedAt: now, AckDue: now.Add(ack),
		ResolveDue: now.Add(res), AcknowledgedAt: &now}
	sealed, err := d.Service.Sealer.Seal(ctx, subject, broker.Binding{Table: "grievances", Column: "sealed", RowID: g.ID}, []byte(text))
	if err != nil {
		return Grievance{}, Reply{}, err
	}
	g.Sealed = sealed
	if err := d.Store.InsertGrievance(ctx, g); err != nil {
		return Grievance{}, Reply{}, err
	}
	actor := broker.Party{ID: "chat", Kind: broker.KindShopper}.Actor()
	if err := d.record(ctx, actor, "grievance_open", subject, g.ID, "opened", now); err != nil {
		return Grievance{}, Reply{}, err
	}
	if err := d.record(ctx, "broker:desk", "grievance_acknowledge", subject, g.ID, "acknowledged_automatically", now); err != nil {
		return Grievance{}, Reply{}, err
	}
	body := fmt.Sprintf("We have received your complaint. Your ticket is %s.\n\n"+
		"Acknowledged now; we will resolve it by %s at the latest, and tell you the outcome here.\n\n"+
		"Grievance officer: %s. If you are not satisfied, you may complain to the Data Protection Board of India.",
		g.ID, g.ResolveDue.In(ist).Format("2 Jan 2006, 3:04 pm IST"), d.contact())
	return g, Reply{Kind: ReplyText, Body: body}, nil
}

// List returns tickets by desk status ("" for all), with their status at
// the desk's clock; texts stay sealed.
func (d *Desk) List(ctx context.Context, status string, limit int) ([]Grievance, error) {
	switch status {
	case "", GrievanceOpen, GrievanceOverdue, GrievanceResolved:
	default:
		return nil, broker.Errorf(broker.EInvalid, "status must be open, overdue or resolved")
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	now := d.now()
	gs, err := d.Store.ListGrievances(ctx, status, now, limit)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		d.finish(&gs[i], now)
	}
	return gs, nil
}

func (d *Desk) finish(g *Grievance, now time.Time) {
	g.Status = g.status(now)
	g.Pseudonym = d.Service.Releaser.Pseudonyms().Audit(g.Subject)
}

// Read opens one ticket with its text for the officer, and audits the
// reading (the text is personal data).
func (d *Desk) Read(ctx context.Context, id string, actor broker.Party) (Grievance, error) {
	g, err := d.Store.GetGrievance(ctx, id)
	if err != nil {
		return g, err
	}
	d.finish(&g, d.now())
	if g.Sealed != nil {
		b, err := d.Service.Sealer.Open(ctx, g.Subject, broker.Binding{Table: "grievances", Column: "sealed", RowID: g.ID}, g.Sealed)
		if err == nil {
			g.Text = string(b)
		} else if !broker.IsNotFound(err) {
			return g, err
		}
	}
	if err := d.record(ctx, actor.Actor(), "grievance_read", g.Subject, g.ID, "officer_review", d.now()); err != nil {
		return g, err
	}
	return g, nil
}

// ValidGrievanceOutcome reports whether code is an outcome code.
func ValidGrievanceOutcome(code string) bool { return slices.Contains(GrievanceOutcomes, code) }

// Resolve closes a ticket with an outcome code, audits it and tells the
// shopper the outcome in the chat (as a template outside the 24-hour
// window). An unknown outcome is EInvalid, an unknown ticket ENotFound, a
// ticket already resolved EConflict; none of them changes anything.
func (d *Desk) Resolve(ctx context.Context, id, outcome string, actor broker.Party) (Grievance, error) {
	if !ValidGrievanceOutcome(outcome) {
		return Grievance{}, broker.Errorf(broker.EInvalid, "outcome must be one of %s", strings.Join(GrievanceOutcomes, ", "))
	}
	var g Grievance
	err := d.Store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if g, err = d.Store.GetGrievance(ctx, id); err != nil {
			return err
		}
		now := d.now().UTC()
		ok, err := d.Store.ResolveGrievance(ctx, id, outcome, actor.Actor(), now)
		if err != nil {
			return err
		}
		if !ok {
			return broker.Errorf(broker.EConflict, "grievance %s is already resolved", id)
		}
		g.ResolvedAt, g.Outcome, g.ResolvedBy = &now, outcome, actor.Actor()
		if err := d.record(ctx, actor.Actor(), "grievance_resolve", g.Subject, g.ID, outcome, now); err != nil {
			return err
		}
		body := fmt.Sprintf("Your complaint %s is %s.\n\nQuestions: %s.", g.ID, outcomeWords[outcome], d.contact())
		err = d.Service.SendToShopper(ctx, g.Subject, g.Store, Reply{Kind: ReplyText, Body: body, Template: "grievance_update"})
		if broker.IsNotFound(err) {
			return nil // the shopper has been erased: nobody to tell
		}
		return err
	})
	if err != nil {
		return Grievance{}, err
	}
	d.finish(&g, d.now())
	return g, nil
}

// Escalate marks every overdue ticket not yet escalated, each with an audit
// entry; the sweeper calls it periodically. It returns how many it marked.
func (d *Desk) Escalate(ctx context.Context) (int, error) {
	n := 0
	for {
		var batch []Grievance
		err := d.Store.InTx(ctx, func(ctx context.Context) error {
			var err error
			now := d.now().UTC()
			if batch, err = d.Store.EscalateOverdue(ctx, now, 200); err != nil {
				return err
			}
			for _, g := range batch {
				if err := d.record(ctx, "broker:desk", "grievance_escalate", g.Subject, g.ID, "resolution_overdue", now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(batch)
		if len(batch) < 200 {
			return n, nil
		}
	}
}

// SLA computes the desk's SLA report over every ticket, counted in the
// database (one row back, however many tickets).
func (d *Desk) SLA(ctx context.Context) (SLAReport, error) {
	r, err := d.Store.GrievanceCounts(ctx, d.now())
	if err != nil {
		return SLAReport{}, err
	}
	ack, res := d.timers()
	r.AckHours, r.ResolveDays, r.ShareInTime = ack.Hours(), res.Hours()/24, 1
	if r.Resolved > 0 {
		r.ShareInTime = float64(r.ResolvedInTime) / float64(r.Resolved)
	}
	return r, nil
}

// GrievanceActions is what the conversation needs for `complaint`; the
// service's actions implement it when a desk is configured.
type GrievanceActions interface {
	// OpenGrievance opens a ticket for the text and returns the
	// acknowledgement to send.
	OpenGrievance(ctx context.Context, text string) (Reply, error)
}

// OpenGrievance implements GrievanceActions.
func (a *actions) OpenGrievance(ctx context.Context, text string) (Reply, error) {
	if a.s.desk == nil {
		return Reply{}, broker.Errorf(broker.EUnavailable, "no grievance desk")
	}
	_, r, err := a.s.desk.Open(ctx, a.subject, a.store, text)
	return r, err
}

// StateComplaint waits for the text of a complaint after `complaint`.
const StateComplaint = "complaint"

// complaint handles `complaint` (with its text after the word, or in the
// next message) and the message that completes it; ok is false when the
// event is none of these.
func (c *Conversation) complaint(ctx context.Context, s *Session, in Inbound, act Actions) ([]Reply, bool, error) {
	text := ""
	switch {
	case s.State == StateComplaint:
		s.State, s.Return = s.Return, ""
		if in.Kind != InText || command(in) == "cancel" {
			return []Reply{{Kind: ReplyText, Body: "No complaint was filed. Say \"complaint\" when you want to."}}, true, nil
		}
		text = in.Text
	case in.Kind == InText:
		word, rest := complaintWord(in.Text)
		if !word {
			return nil, false, nil
		}
		if rest == "" {
			s.Return, s.State = s.State, StateComplaint
			return []Reply{{Kind: ReplyText, Body: "Please describe your complaint in one message. " +
				"Say \"cancel\" to stop."}}, true, nil
		}
		text = rest
	default:
		return nil, false, nil
	}
	ga, ok := act.(GrievanceActions)
	if !ok {
		return nil, true, broker.Errorf(broker.EUnavailable, "no grievance desk")
	}
	r, err := ga.OpenGrievance(ctx, text)
	if err != nil {
		return nil, true, err
	}
	return []Reply{r}, true, nil
}

// complaintWord recognises "complaint" (or "complain", "grievance") as the
// first word of a message, and returns the text after it.
func complaintWord(text string) (bool, string) {
	t := strings.TrimSpace(text)
	first, rest, _ := strings.Cut(t, " ")
	if i := strings.IndexAny(first, ":,.-"); i > 0 {
		first, rest = first[:i], first[i+1:]+" "+rest
	}
	switch strings.ToLower(first) {
	case "complaint", "complain", "grievance":
		return true, strings.TrimSpace(rest)
	}
	return false, ""
}
