package ui

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// The nomination page: an officer looks a nomination up by the reference
// the nominee was given and records the shopper's death or incapacity,
// after which the nominee's access or erasure request can be answered
// (brokerctl nominee access|erase). No number is shown or unsealed here.

func (u deskPages) registerNominations(app *fiber.App) {
	if u.d.Nominees == nil {
		return
	}
	u.route(app, fiber.MethodGet, "/ui/nominations", u.officer(u.nomination))
	u.route(app, fiber.MethodPost, "/ui/nominations/event", u.officer(u.nominationEvent))
}

type nominationBody struct {
	ID        string
	Found     bool
	N         commerce.Nomination
	Pseudonym string
	Events    []option
}

func (u deskPages) nominationPage(c *fiber.Ctx, id string) error {
	body := nominationBody{ID: id}
	for _, e := range commerce.NominationEvents {
		body.Events = append(body.Events, option{Value: e, Label: e})
	}
	if id != "" {
		if !strings.HasPrefix(id, "nom_") || len(id) > 64 {
			return broker.Errorf(broker.EInvalid, "A nomination reference starts with nom_.")
		}
		n, err := u.d.Nominees.Get(c.UserContext(), id)
		if err != nil && !broker.IsNotFound(err) {
			return err
		}
		if err == nil {
			body.Found, body.N = true, n
			body.Pseudonym = u.d.Rights.Service.Releaser.Pseudonyms().Audit(n.Subject)
		}
	}
	d := u.data(c, "grievances", "Nomination")
	d.Body = body
	return u.render(c, "nomination", d)
}

func (u deskPages) nomination(c *fiber.Ctx) error { return u.nominationPage(c, c.Query("id")) }

func (u deskPages) nominationEvent(c *fiber.Ctx) error {
	id := c.FormValue("id")
	if !strings.HasPrefix(id, "nom_") || len(id) > 64 {
		return broker.Errorf(broker.ENotFound, "There is no such nomination.")
	}
	err := u.d.Nominees.RecordEvent(c.UserContext(), id, c.FormValue("event"), u.officerParty(c))
	if broker.IsNotFound(err) {
		return broker.Errorf(broker.ENotFound, "There is no such nomination.")
	}
	if err != nil {
		return err
	}
	return c.Redirect("/ui/nominations?id="+id, fiber.StatusSeeOther)
}
