package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sieve-broker/sieve/broker/token"
)

func init() {
	register("partner update", "partner update CLIENT_ID [--webhook URL | --no-webhook] [--role R] [--agreement REF] [--agreement-expires YYYY-MM-DD] [--jurisdiction CC] [--transfer-basis B] [--serves \"560001 …\"] [--location LAT,LON] [--radius-km R] [--self-delivery[=false]] [--auto-accept[=false]]", cmdPartnerUpdate)
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
	reg := addRegistryFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if *webhook != "" && *none {
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
	change, changed, err := reg.change(p.Kind)
	if err != nil {
		return err
	}
	if *webhook == "" && !*none {
		if len(changed) == 0 {
			return usageError{"nothing to change: give --webhook URL, --no-webhook or a registry flag (--role, --serves, …)"}
		}
		actor, err := c.actor()
		if err != nil {
			return err
		}
		if err := applyRegistry(ctx, sys.DB, sys.Releaser.Audit(), actor, id, change, changed); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: updated %s\n", id, strings.Join(changed, ", "))
		return nil
	}
	if len(changed) > 0 {
		actor, err := c.actor()
		if err != nil {
			return err
		}
		if err := applyRegistry(ctx, sys.DB, sys.Releaser.Audit(), actor, id, change, changed); err != nil {
			return err
		}
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
