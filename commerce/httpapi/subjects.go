package httpapi

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	brokerapi "github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

// subjectBody names a shopper by wa_id or by user_id (a BSUID).
type subjectBody struct {
	WaID    string `json:"wa_id"`
	UserID  string `json:"user_id"` // a BSUID, instead of wa_id
	Confirm bool   `json:"confirm"`
	Reason  string `json:"reason"`
}

// subject resolves the shopper by wa_id or by user_id: exactly one of
// them. An unknown one is a fixed not-found that names nothing.
func (h *handlers) subject(c *fiber.Ctx, b subjectBody) (commerce.SubjectRow, error) {
	row, err := h.Subjects.Resolve(c.UserContext(), b.WaID, b.UserID)
	if broker.IsNotFound(err) {
		return row, broker.Errorf(broker.ENotFound, "no shopper with that identifier")
	}
	return row, err
}

// bodySubject reads a JSON body naming a shopper and resolves them.
func (h *handlers) bodySubject(c *fiber.Ctx) (commerce.SubjectRow, error) {
	var b subjectBody
	if err := brokerapi.DecodeJSON(c, &b, true); err != nil {
		return commerce.SubjectRow{}, err
	}
	return h.subject(c, b)
}

func (h *handlers) disclosures(c *fiber.Ctx) error {
	var b subjectBody
	if c.Method() == fiber.MethodPost {
		if err := brokerapi.DecodeJSON(c, &b, true); err != nil {
			return err
		}
	} else {
		b.WaID, b.UserID = c.Query("wa_id"), c.Query("user_id")
	}
	row, err := h.subject(c, b)
	if err != nil {
		return err
	}
	ds, err := h.Subjects.Disclosures(c.UserContext(), row.ID)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []commerce.Disclosure{} // the documented shape is a list, never null
	}
	id, err := h.s.OfficerAction(c, "disclosures", row.ID, "access_request")
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.JSON(fiber.Map{"subject": h.Pseudonyms.Audit(row.ID), "disclosures": ds})
}

func (h *handlers) subjectExport(c *fiber.Ctx) error {
	row, err := h.bodySubject(c)
	if err != nil {
		return err
	}
	// The export is a release to the caller through the pipeline: its
	// entry is the answer's decision and the shopper's disclosures list it.
	ex, d, err := h.Subjects.ReleaseExport(c.UserContext(), row.ID, brokerapi.ActorOf(c))
	if d.ID != "" {
		c.Set("X-Decision-Id", d.ID)
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="subject-export.json"`)
	return c.JSON(ex)
}

func (h *handlers) subjectErase(c *fiber.Ctx) error {
	var b subjectBody
	if err := brokerapi.DecodeJSON(c, &b, true); err != nil {
		return err
	}
	if !b.Confirm {
		return broker.Errorf(broker.EInvalid, "erasure needs \"confirm\": true")
	}
	// The reason is a code from a fixed list (commerce.EraseReasons),
	// never text: it goes into the immutable log.
	reason := b.Reason
	if reason == "" {
		reason = commerce.EraseRequest
	}
	if !commerce.ValidEraseReason(reason) {
		return broker.Errorf(broker.EInvalid, "reason must be one of %s", strings.Join(commerce.EraseReasons, ", "))
	}
	row, err := h.subject(c, b)
	if err != nil {
		return err
	}
	if err := h.Subjects.Erase(c.UserContext(), row.ID, brokerapi.ActorOf(c), reason); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"status": "erased", "subject": h.Pseudonyms.Audit(row.ID)})
}

// subjectConsents answers POST /v1/subjects/consents {"wa_id"} with the
// shopper's consent artefacts (SPEC §10), itself an audited access.
func (h *handlers) subjectConsents(c *fiber.Ctx) error {
	row, err := h.bodySubject(c)
	if err != nil {
		return err
	}
	ex, err := h.Consents.ConsentsOf(c.UserContext(), row.ID)
	if err != nil {
		return err
	}
	id, err := h.s.OfficerAction(c, "consents", row.ID, "access_request")
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.JSON(ex)
}

// grievances lists tickets (?status=open|overdue|resolved) with the desk's
// SLA report; texts stay sealed (an officer reads one in /ui, audited).
func (h *handlers) grievances(c *fiber.Ctx) error {
	ctx := c.UserContext()
	gs, err := h.Grievances.List(ctx, c.Query("status"), 1000)
	if err != nil {
		return err
	}
	sla, err := h.Grievances.SLA(ctx)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"grievances": gs, "sla": sla})
}
