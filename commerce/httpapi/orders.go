package httpapi

import (
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	brokerapi "github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

func (h *handlers) listOrders(c *fiber.Ctx) error {
	f := commerce.OrderFilter{Status: c.Query("status"), Cursor: c.Query("cursor")}
	if f.Status != "" && !slices.Contains(append([]string{commerce.StatusPlaced}, commerce.PartnerStatuses...), f.Status) {
		return broker.Errorf(broker.EInvalid, "unknown status")
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return broker.Errorf(broker.EInvalid, "since must be an RFC 3339 time")
		}
		f.Since = t
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return broker.Errorf(broker.EInvalid, "limit must be 1 to 100")
		}
		f.Limit = n
	}
	if len(f.Cursor) > 200 {
		return broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	views, next, decision, err := h.Orders.PartnerOrders(c.UserContext(), brokerapi.PartnerOf(c), f)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", decision)
	if views == nil {
		views = []commerce.RetailerView{}
	}
	var nextCursor any
	if next != "" {
		nextCursor = next
	}
	return c.JSON(fiber.Map{"orders": views, "next_cursor": nextCursor})
}

func (h *handlers) getOrder(c *fiber.Ctx) error {
	return h.orderView(c, broker.PurposeOrderFulfilment)
}

func (h *handlers) getDelivery(c *fiber.Ctx) error {
	return h.orderView(c, broker.PurposeDelivery)
}

func (h *handlers) orderView(c *fiber.Ctx, purpose broker.Purpose) error {
	view, d, err := h.Orders.PartnerOrder(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"), purpose)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", d.ID)
	if d.Outcome == "denied" {
		return broker.Errorf(broker.EDenied, "release denied: %s", d.Reason)
	}
	return c.JSON(view)
}

func (h *handlers) updateStatus(c *fiber.Ctx) error {
	var body map[string]any
	if err := brokerapi.DecodeJSON(c, &body, false); err != nil {
		return err
	}
	st, ok := body["status"].(string)
	if !ok {
		return broker.Errorf(broker.EInvalid, "status is required")
	}
	delete(body, "status")
	res, err := h.Orders.UpdateStatus(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"),
		commerce.StatusUpdate{Status: st, Extra: body})
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (h *handlers) dispatchOrder(c *fiber.Ctx) error {
	var body struct {
		Logistics string `json:"logistics"`
	}
	if err := brokerapi.DecodeJSON(c, &body, true); err != nil {
		return err
	}
	res, err := h.Orders.Dispatch(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"), body.Logistics)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (h *handlers) relayMessage(c *fiber.Ctx) error {
	var body struct {
		Text string `json:"text"`
	}
	if err := brokerapi.DecodeJSON(c, &body, true); err != nil {
		return err
	}
	id, err := h.Orders.Relay(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"), body.Text)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", id)
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "decision_id": id})
}

func (h *handlers) dataRequest(c *fiber.Ctx) error {
	var body struct {
		Subject string   `json:"subject"`
		Purpose string   `json:"purpose"`
		Fields  []string `json:"fields"`
	}
	if err := brokerapi.DecodeJSON(c, &body, true); err != nil {
		return err
	}
	if body.Subject == "" || body.Purpose == "" {
		return broker.Errorf(broker.EInvalid, "subject and purpose are required")
	}
	d, err := h.Orders.DataRequest(c.UserContext(), brokerapi.PartnerOf(c), body.Subject, broker.Purpose(body.Purpose), body.Fields)
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", d.ID)
	released := d.Released
	if released == nil {
		released = broker.Record{}
	}
	denied := d.Withheld
	if denied == nil {
		denied = []broker.Withheld{}
	}
	privacy := fiber.Map{"decision_id": d.ID, "purpose": string(d.Purpose)}
	if !d.RetainUntil.IsZero() {
		privacy["retain_until"] = d.RetainUntil
	}
	return c.JSON(fiber.Map{"released": released, "denied": denied, "decision_id": d.ID, "privacy": privacy})
}

func (h *handlers) listOffers(c *fiber.Ctx) error {
	offers, err := h.Offers.OpenOffers(c.UserContext(), brokerapi.PartnerOf(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"offers": offers})
}

func (h *handlers) acceptOffer(c *fiber.Ctx) error {
	res, err := h.Offers.AcceptOffer(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}

func (h *handlers) declineOffer(c *fiber.Ctx) error {
	res, err := h.Offers.DeclineOffer(c.UserContext(), brokerapi.PartnerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set("X-Decision-Id", res.Decision)
	return c.JSON(res)
}
