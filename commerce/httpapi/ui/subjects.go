package ui

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// The subject desk. The shopper's number arrives in a POST body, is turned
// into the blind index by commerce.Rights and then forgotten: it is never
// stored, logged, put in a URL or written to the audit log (which names the
// shopper by pseudonym). The only pages that show it — masked — are the
// ones about that shopper, answering the officer who typed it.

type deskBody struct {
	Error    string
	NotFound bool
}

func (u subjectPages) desk(c *fiber.Ctx) error {
	d := u.data(c, "subjects", "Subject desk")
	d.Body = deskBody{}
	return u.render(c, "desk", d)
}

// subjectBody is the page about one shopper.
type subjectBody struct {
	WaID        string // as typed, for the hidden fields of the follow-up forms
	Masked      string
	Pseudonym   string
	Consent     broker.Consent
	CreatedAt   time.Time
	LastSeen    time.Time
	Orders      []commerce.OrderRow
	Open        int // orders an erasure would cancel
	Disclosures []discRow
	Decision    string
	AuditLink   string
	Reasons     []option // erasure grounds, on the confirmation page
	Corrected   string   // the outcome of an officer's correction
	// Consents: the shopper's language, accepted notice version and
	// consent artefacts (SPEC §10), oldest first.
	Consents *commerce.ConsentExport
	// Restricted: the shopper paused processing ("pause my data").
	Restricted bool
}

type discRow struct {
	commerce.Disclosure
	Label string
}

// maskNumber shows a number's country code and last three digits only.
func maskNumber(wa string) string {
	d := commerce.NormalizeWaID(wa)
	if len(d) < 8 {
		return "•••"
	}
	cc := 2
	if strings.HasPrefix(d, "1") || strings.HasPrefix(d, "7") {
		cc = 1
	}
	return "+" + d[:cc] + " " + strings.Repeat("•", len(d)-cc-3) + d[len(d)-3:]
}

// resolve finds the shopper of the posted number. A number nobody has is
// audited as a failed look-up (without the number) and shown as such.
func (u subjectPages) resolve(c *fiber.Ctx, cur *current, action string) (commerce.SubjectRow, string, bool, error) {
	if u.d.Rights == nil {
		return commerce.SubjectRow{}, "", false, broker.Errorf(broker.ENotFound, "The subject desk is not configured.")
	}
	wa := strings.TrimSpace(formValue(c, "wa_id"))
	if wa == "" || len(wa) > 32 || !utf8.ValidString(wa) || commerce.NormalizeWaID(wa) == "" {
		d := u.data(c, "subjects", "Subject desk")
		d.Body = deskBody{Error: "Enter the shopper's WhatsApp number with its country code, starting with + and the country code (+91 for India)."}
		return commerce.SubjectRow{}, "", false, u.renderStatus(c, fiber.StatusBadRequest, "desk", d)
	}
	ctx := c.UserContext()
	row, err := u.d.Rights.ResolveWaID(ctx, wa)
	if broker.IsNotFound(err) {
		if _, err := u.record(ctx, "officer:"+cur.officer.ID, action, purposeDSR, "", "subject", audit.OutcomeFailed,
			"no shopper with the number given"); err != nil {
			return row, "", false, err
		}
		d := u.data(c, "subjects", "Subject desk")
		d.Body = deskBody{NotFound: true}
		return row, "", false, u.renderStatus(c, fiber.StatusNotFound, "desk", d)
	}
	if err != nil {
		return row, "", false, err
	}
	return row, wa, true, nil
}

func (u *UI) pseudonym(subject string) string {
	return u.d.Rights.Service.Releaser.Pseudonyms().Audit(subject)
}

// subjectPage gathers what the pages about one shopper show: no personal
// data beyond the masked number (orders are listed by id, status, total).
func (u subjectPages) subjectPage(ctx context.Context, row commerce.SubjectRow, wa string) (subjectBody, error) {
	pseudo := u.pseudonym(row.ID)
	b := subjectBody{WaID: wa, Masked: maskNumber(wa), Pseudonym: pseudo, Consent: row.Consent, CreatedAt: row.CreatedAt,
		LastSeen: row.LastInteraction, AuditLink: "/ui/audit" + query("subject", pseudo)}
	b.Restricted = row.Restricted
	orders, err := u.d.Rights.Service.Orders.OrdersOfSubject(ctx, row.ID)
	if err != nil {
		return b, err
	}
	for _, o := range orders {
		if o.Erased {
			continue
		}
		o.Sealed, o.Lines, o.Address = nil, nil, commerce.Location{}
		b.Orders = append(b.Orders, o)
		if o.Status != commerce.StatusDelivered && o.Status != commerce.StatusCancelled && o.Status != commerce.StatusPendingPayment {
			b.Open++
		}
	}
	if svc := u.d.Rights.Service; svc.Consents != nil {
		ex, err := svc.ConsentsOf(ctx, row.ID)
		if err != nil {
			return b, err
		}
		b.Consents = &ex
	}
	ds, err := u.d.Rights.Disclosures(ctx, row.ID)
	if err != nil {
		return b, err
	}
	for _, d := range ds {
		label := d.Name
		if label == "" {
			label = actorLabel(d.Party, nil)
		} else {
			label += " (" + kindOf(d.Party) + ")"
		}
		b.Disclosures = append(b.Disclosures, discRow{Disclosure: d, Label: label})
	}
	return b, nil
}

// lookup answers an access request (GDPR Art. 15, DPDP §11): every
// disclosure of the shopper's data. The look-up is audited before the page
// is shown.
func (u subjectPages) lookup(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	row, wa, ok, err := u.resolve(c, cur, "disclosures")
	if !ok {
		return err
	}
	ctx := c.UserContext()
	body, err := u.subjectPage(ctx, row, wa)
	if err != nil {
		return err
	}
	if body.Decision, err = u.record(ctx, "officer:"+cur.officer.ID, "disclosures", purposeDSR, body.Pseudonym, "subject",
		audit.OutcomeDone, "access request (GDPR Art. 15, DPDP §11) via the dashboard"); err != nil {
		return err
	}
	d := u.data(c, "subjects", "Subject "+body.Pseudonym)
	d.Body = body
	return u.render(c, "subject", d)
}

// export answers a portability request (GDPR Art. 20): everything held
// about the shopper as a JSON download.
func (u subjectPages) export(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	row, _, ok, err := u.resolve(c, cur, "export")
	if !ok {
		return err
	}
	ctx := c.UserContext()
	// A release to the officer through the pipeline: audited, and listed
	// in the shopper's disclosures.
	ex, dec, err := u.d.Rights.ReleaseExport(ctx, row.ID, cur.party())
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(ex, "", "  ")
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", dec.ID)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="subject-`+ex.Subject+`.json"`)
	return c.Send(append(b, '\n'))
}

// eraseReasons are the grounds an officer can give for an erasure. A fixed
// list rather than free text: the reason goes into the audit log, which
// must never hold personal data an officer might type.
var eraseReasons = map[string]string{
	"request":    "the shopper asked for erasure",
	"withdrawal": "the shopper withdrew consent and no other ground applies",
	"objection":  "the shopper objected to the processing",
	"unlawful":   "the data was processed unlawfully",
	"authority":  "ordered by a supervisory authority or court",
}

// eraseReasonOptions orders eraseReasons for the form.
var eraseReasonOptions = []option{
	{"request", "The shopper asked for erasure"},
	{"withdrawal", "Consent withdrawn, no other ground"},
	{"objection", "The shopper objected to the processing"},
	{"unlawful", "Processed unlawfully"},
	{"authority", "Ordered by an authority or court"},
}

type erasedBody struct {
	Pseudonym string
	Cancelled int
	AuditLink string
}

// erase answers an erasure request (GDPR Art. 17) in two steps: without
// confirm=yes it shows what will happen and asks; with it, commerce.Rights
// crypto-shreds the shopper and appends the signed erasure entry.
func (u subjectPages) erase(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	row, wa, ok, err := u.resolve(c, cur, "erase")
	if !ok {
		return err
	}
	ctx := c.UserContext()
	if formValue(c, "confirm") != "yes" {
		body, err := u.subjectPage(ctx, row, wa)
		if err != nil {
			return err
		}
		body.Reasons = eraseReasonOptions
		d := u.data(c, "subjects", "Erase "+body.Pseudonym+"?")
		d.Body = body
		return u.render(c, "erase", d)
	}
	body, err := u.subjectPage(ctx, row, wa)
	if err != nil {
		return err
	}
	// The audit reason is a code (commerce.EraseReasons); the form's
	// "authority" is the code legal_order.
	reason := commerce.EraseRequest
	if r := formValue(c, "reason"); eraseReasons[r] != "" {
		reason = r
		if r == "authority" {
			reason = commerce.EraseLegalOrder
		}
	}
	if err := u.d.Rights.Erase(ctx, row.ID, cur.party(), reason); err != nil {
		return err
	}
	d := u.data(c, "subjects", "Erased")
	d.Body = erasedBody{Pseudonym: body.Pseudonym, Cancelled: body.Open, AuditLink: body.AuditLink}
	return u.render(c, "erased", d)
}
