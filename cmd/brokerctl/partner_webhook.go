package main

import (
	"context"
	"fmt"

	"github.com/sieve-broker/sieve/broker/token"
)

func init() {
	register("partner update", "partner update CLIENT_ID --webhook URL | --no-webhook", cmdPartnerUpdate)
}

// cmdPartnerUpdate changes a partner's webhook URL, checked as at create:
// the partner's spec must stay valid, and the URL may not reach a
// loopback, private or link-local address BROKER_WEBHOOK_ALLOW does not
// name (nor be http in production).
func cmdPartnerUpdate(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "CLIENT_ID")
	if err != nil {
		return err
	}
	fs := flags("partner update")
	webhook := fs.String("webhook", "", "the new webhook URL")
	none := fs.Bool("no-webhook", false, "remove the webhook (the partner reads GET /v1/events instead)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if (*webhook == "") == !*none {
		return usageError{"give either --webhook URL or --no-webhook"}
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	p, err := sys.DB.GetPartner(ctx, id)
	if err != nil {
		return err
	}
	if *webhook != "" {
		spec := token.PartnerSpec{Name: p.Name, Kind: p.Kind, Scopes: p.Scopes, Store: p.Store, WebhookURL: *webhook}
		if err := spec.Validate(); err != nil {
			return err
		}
		if err := checkWebhook(ctx, c, *webhook); err != nil {
			return err
		}
	}
	if err := sys.DB.SetPartnerWebhook(ctx, id, *webhook); err != nil {
		return err
	}
	if *webhook == "" {
		fmt.Fprintf(c.stdout, "%s: webhook removed\n", id)
	} else {
		fmt.Fprintf(c.stdout, "%s: webhook updated\n", id)
	}
	return nil
}
