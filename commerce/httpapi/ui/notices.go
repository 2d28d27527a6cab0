package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// partnerNotices is one partner's outstanding acknowledgements.
type partnerNotices struct {
	Partner, Label       string
	Outstanding, Overdue int
	Rows                 []noticeView
}

type noticeView struct {
	commerce.Notice
	Overdue bool
	Left    time.Duration // until the deadline; negative when overdue
}

type noticesBody struct {
	Configured bool
	Partners   []partnerNotices
	Overdue    int
	Total      int
	Holds      []commerce.HeldCategory
	Warnings   []commerce.PendingErasure
}

// listLimit bounds each list of the notices page.
const listLimit = 1000

// notices lists the outstanding and overdue acknowledgements per partner:
// an overdue partner gets no release until it acknowledges.
func (u subjectPages) notices(c *fiber.Ctx) error {
	ctx := c.UserContext()
	body := noticesBody{Configured: u.d.Notices != nil}
	if body.Configured {
		rows, err := u.d.Notices(ctx, listLimit)
		if err != nil {
			return err
		}
		now := u.d.Now()
		names := u.actorNames(ctx)
		labels := map[string]string{}
		for actor, name := range names {
			labels[actor[len(kindOf(actor))+1:]] = name + " (" + kindOf(actor) + ")"
		}
		by := map[string]*partnerNotices{}
		for _, r := range rows {
			p := by[r.Partner]
			if p == nil {
				label := labels[r.Partner]
				if label == "" {
					label = r.Partner
				}
				p = &partnerNotices{Partner: r.Partner, Label: label}
				by[r.Partner] = p
			}
			v := noticeView{Notice: r, Left: r.Deadline.Sub(now)}
			v.Overdue = v.Left < 0
			p.Outstanding++
			body.Total++
			if v.Overdue {
				p.Overdue++
				body.Overdue++
			}
			p.Rows = append(p.Rows, v)
		}
		for _, p := range by {
			body.Partners = append(body.Partners, *p)
		}
		sort.Slice(body.Partners, func(i, j int) bool {
			a, b := body.Partners[i], body.Partners[j]
			if a.Overdue != b.Overdue {
				return a.Overdue > b.Overdue
			}
			return a.Label < b.Label
		})
	}
	if u.d.Holds != nil {
		var err error
		if body.Holds, err = u.d.Holds(ctx, listLimit); err != nil {
			return err
		}
	}
	if u.d.Warnings != nil {
		var err error
		if body.Warnings, err = u.d.Warnings(ctx, listLimit); err != nil {
			return err
		}
	}
	d := u.data(c, "notices", "Recipient notices")
	d.Body = body
	return u.render(c, "notices", d)
}

type heldBody struct {
	Invoice  commerce.Invoice
	Decision string
}

// releaseHeld is the officer's approved release of a held invoice, for
// purpose legal_obligation only; the answer names its audit entry.
func (u subjectPages) releaseHeld(c *fiber.Ctx) error {
	if u.d.ReleaseHeld == nil {
		return broker.Errorf(broker.ENotFound, "holds are not configured")
	}
	cur, _ := u.current(c)
	inv, dec, err := u.d.ReleaseHeld(c.UserContext(), cur.party(), strings.TrimSpace(c.FormValue("order_id")),
		c.FormValue("purpose"))
	if err != nil {
		return err
	}
	d := u.data(c, "notices", "Held invoice "+inv.OrderID)
	d.Body = heldBody{Invoice: inv, Decision: dec}
	return u.render(c, "held", d)
}

// correct is an officer-initiated correction of a shopper's address (GDPR
// Art. 16, DPDP §12): the open orders are re-sealed, nothing is released,
// every recipient of the old address gets subject.corrected. The address
// itself never reaches the audit log.
func (u subjectPages) correct(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	row, wa, ok, err := u.resolve(c, cur, "correct")
	if !ok {
		return err
	}
	addr := strings.TrimSpace(c.FormValue("address"))
	if n := utf8.RuneCountInString(addr); n < 10 || n > 300 || !utf8.ValidString(addr) || commerce.PostalCodeOf(addr) == "" {
		return broker.Errorf(broker.EInvalid, "Enter the full corrected address with its 6-digit PIN code.")
	}
	ctx := c.UserContext()
	orders, told, err := u.d.Rights.Service.CorrectAddress(ctx, row.ID, commerce.Location{Address: addr}, cur.party())
	if err != nil {
		return err
	}
	body, err := u.subjectPage(ctx, row, wa)
	if err != nil {
		return err
	}
	body.Corrected = fmt.Sprintf("Address corrected on %d open order(s); %d recipient(s) of the old address told.", orders, told)
	d := u.data(c, "subjects", "Subject "+body.Pseudonym)
	d.Body = body
	return u.render(c, "subject", d)
}
