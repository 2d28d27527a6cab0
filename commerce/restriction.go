package commerce

import (
	"context"
	"strings"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// Reply ids of the objection question.
const (
	IDObjectMarketing = "object:marketing"
	IDObjectAnalytics = "object:analytics"
)

// Audit codes of restriction and objection (fixed lists, SPEC §5.4).
const (
	ActionRestriction = "restriction"
	ReasonPaused      = "paused"
	ReasonResumed     = "resumed"
	ReasonObjection   = "objection"
)

// restrictionCommand recognises "pause my data", "resume" and "object"
// (with an optional purpose) in a text or a reply: "pause", "resume",
// "object", "object:marketing", "object:analytics", or "".
func restrictionCommand(in Inbound) string {
	if in.Kind == InReply && (in.ReplyID == IDObjectMarketing || in.ReplyID == IDObjectAnalytics) {
		return in.ReplyID
	}
	if in.Kind != InText {
		return ""
	}
	t := strings.ToLower(strings.Join(strings.Fields(in.Text), " "))
	t = strings.Trim(t, ".!?\"' ")
	switch t {
	case "pause my data", "pause", "restrict my data", "pause processing":
		return "pause"
	case "resume", "resume my data", "unpause", "resume processing":
		return "resume"
	case "object", "i object":
		return "object"
	case "object marketing", "object to marketing", "i object to marketing":
		return IDObjectMarketing
	case "object analytics", "object to analytics", "i object to analytics":
		return IDObjectAnalytics
	}
	return ""
}

// rightsWhilePaused are the commands a paused shopper may still use: every
// right, and nothing that processes their data for another purpose.
var rightsWhilePaused = []string{"help", "my data", "delete my data", "stop"}

// restriction handles restriction (GDPR Art. 18) and objection (Art. 21)
// in the chat; ok reports that it answered. While the shopper is paused it
// answers everything but their rights with how to resume: nothing of
// theirs is processed for shopping until they do.
func (c *Conversation) restriction(ctx context.Context, sh *Shopper, s *Session, in Inbound, act Actions) ([]Reply, bool, error) {
	switch cmd := restrictionCommand(in); cmd {
	case "pause":
		if !sh.Restricted {
			if err := act.SetRestricted(ctx, true); err != nil {
				return nil, true, err
			}
			sh.Restricted = true
		}
		return []Reply{{Kind: ReplyText, Body: "Paused: from now on we keep your data but do not use or share it, " +
			"and shops and couriers can no longer see your orders. Say \"resume\" to continue shopping; " +
			"\"my data\", \"export my data\" and \"delete my data\" still work."}}, true, nil
	case "resume":
		if sh.Restricted {
			if err := act.SetRestricted(ctx, false); err != nil {
				return nil, true, err
			}
			sh.Restricted = false
		}
		return []Reply{{Kind: ReplyText, Body: "Resumed: your data is used again for your orders. " +
			"Say \"pause my data\" to pause it again."}}, true, nil
	case "object":
		return []Reply{{Kind: ReplyButtons, Body: "Which use of your data do you object to? We stop it at once.",
			Buttons: []Button{{ID: IDObjectMarketing, Title: "Marketing"}, {ID: IDObjectAnalytics, Title: "Analytics"}}}}, true, nil
	case IDObjectMarketing, IDObjectAnalytics:
		purpose := strings.TrimPrefix(cmd, "object:")
		next := sh.Consent
		if purpose == "marketing" {
			next.Marketing = false
		} else {
			next.Analytics = false
		}
		if err := act.Object(ctx, next, purpose); err != nil {
			return nil, true, err
		}
		sh.Consent = next
		return []Reply{{Kind: ReplyText, Body: "Noted: your objection is recorded and your data is no longer used for " +
			purpose + ". Your orders are not affected."}}, true, nil // {purpose} in commerce/i18n
	}
	if sh.Restricted && in.Kind != InPayment {
		cmd := command(in)
		for _, ok := range rightsWhilePaused {
			if cmd == ok {
				return nil, false, nil
			}
		}
		if in.Kind == InText && isExportCommand(in.Text) {
			return nil, false, nil
		}
		return []Reply{{Kind: ReplyText, Body: "Your data is paused, so we are not processing it. Say \"resume\" to " +
			"continue shopping, or \"my data\", \"export my data\", \"delete my data\"."}}, true, nil
	}
	return nil, false, nil
}

// isExportCommand reports whether text asks for the shopper's export.
func isExportCommand(text string) bool {
	t := strings.Trim(strings.ToLower(strings.Join(strings.Fields(text), " ")), ".!?\"' ")
	return t == "export my data" || t == "export" || t == "download my data"
}

// SetRestricted pauses or resumes the shopper's processing and audits it.
func (a *actions) SetRestricted(ctx context.Context, on bool) error {
	if err := a.s.Subjects.SetRestricted(ctx, a.subject, on); err != nil {
		return err
	}
	reason := ReasonResumed
	if on {
		reason = ReasonPaused
	}
	a.s.inc("sieve_restrictions_total", reason)
	if err := a.s.record(ctx, broker.Event{Actor: "shopper:chat", Action: ActionRestriction,
		Subject: a.subject, Outcome: audit.OutcomeDone,
		Reason: reason}); err != nil {
		return err
	}
	// Every partner that already holds the shopper's data is told to stop
	// processing it (GDPR Art. 19, SPEC §5.12): processing.restricted.
	if on && a.s.notices != nil {
		if _, err := a.s.notices.NotifyRestricted(ctx, a.subject); err != nil {
			return err
		}
	}
	return nil
}

// Object records the consent left after an objection to purpose and
// audits it as a consent entry with reason objection.
func (a *actions) Object(ctx context.Context, c broker.Consent, purpose string) error {
	prev := a.prev // the consent last stored, loaded with the turn
	if err := a.s.Subjects.SetConsent(ctx, a.subject, c); err != nil {
		return err
	}
	a.prev = c
	if err := a.s.record(ctx, broker.Event{Actor: "shopper:chat", Action: "consent", Purpose: broker.Purpose(purpose),
		Subject: a.subject, Outcome: audit.OutcomeDone,
		Reason: ReasonObjection}); err != nil {
		return err
	}
	// Recipients of the purpose objected to are told, as for "stop".
	return a.s.notifyWithdrawal(ctx, a.subject, prev, c)
}
