package httpapi

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	brokerapi "github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

// listEvents serves GET /v1/events?cursor=&limit=: the caller's recipient
// notices, oldest first, for partners without a webhook (any partner
// token).
func (h *handlers) listEvents(c *fiber.Ctx) error {
	if h.Notices == nil {
		return broker.Errorf(broker.EUnavailable, "recipient notices are not configured")
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > 100 {
			return broker.Errorf(broker.EInvalid, "limit must be 1 to 100")
		}
		limit = l
	}
	cursor := c.Query("cursor")
	if len(cursor) > 32 {
		return broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	events, next, err := h.Notices.Events(c.UserContext(), brokerapi.PartnerOf(c), cursor, limit)
	if err != nil {
		return err
	}
	if events == nil {
		events = []json.RawMessage{}
	}
	var nextCursor any
	if next != "" {
		nextCursor = next
	}
	return c.JSON(fiber.Map{"events": events, "next_cursor": nextCursor})
}

// postAck serves POST /v1/acks: a partner acknowledges one of its recipient
// notices, signed when it registered an ack key.
func (h *handlers) postAck(c *fiber.Ctx) error {
	if h.Notices == nil {
		return broker.Errorf(broker.EUnavailable, "recipient notices are not configured")
	}
	var a commerce.Ack
	if err := brokerapi.DecodeJSON(c, &a, true); err != nil {
		return err
	}
	res, err := h.Notices.Acknowledge(c.UserContext(), brokerapi.PartnerOf(c), a)
	if err != nil {
		return err
	}
	if res.DecisionID != "" {
		c.Set("X-Decision-Id", res.DecisionID)
	}
	return c.JSON(res)
}
