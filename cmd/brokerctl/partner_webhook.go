package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/sieve-broker/sieve/broker/token"
)

func init() {
	register("partner update", "partner update CLIENT_ID [--webhook URL | --no-webhook] [--role R] [--agreement REF] [--agreement-expires YYYY-MM-DD] [--jurisdiction CC] [--transfer-basis B] [--serves \"560001 …\"] [--location LAT,LON] [--radius-km R] [--self-delivery[=false]] [--auto-accept[=false]] [--ack-key BASE64 | --no-ack-key]", cmdPartnerUpdate)
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
	ackKeyB64 := fs.String("ack-key", "", "Ed25519 public key (base64, 32 bytes) that must sign the partner's acknowledgements")
	noAckKey := fs.Bool("no-ack-key", false, "remove the ack key (unsigned acknowledgements are accepted again)")
	reg := addRegistryFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	ackChange := *ackKeyB64 != "" || *noAckKey
	if *ackKeyB64 != "" && *noAckKey {
		return usageError{"give either --ack-key BASE64 or --no-ack-key"}
	}
	webhookChange := *webhook != "" || *none
	if *webhook != "" && *none {
		return usageError{"give either --webhook URL or --no-webhook"}
	}
	ackKey, err := parseAckKey(*ackKeyB64)
	if err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	p, err := sys.DB.Partners().GetPartner(ctx, id)
	if err != nil {
		return err
	}
	change, changed, err := reg.change(p.Kind)
	if err != nil {
		return err
	}
	if !webhookChange && !ackChange {
		if len(changed) == 0 {
			return usageError{"nothing to change: give --webhook URL, --no-webhook, --ack-key, --no-ack-key or a registry flag (--role, --serves, …)"}
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
	if ackChange {
		if err := sys.Stores.Notices.SetPartnerAckKey(ctx, id, ackKey); err != nil {
			return err
		}
		if ackKey == nil {
			fmt.Fprintf(c.stdout, "%s: ack key removed\n", id)
		} else {
			fmt.Fprintf(c.stdout, "%s: ack key set: acknowledgements must now be signed\n", id)
		}
	}
	if !webhookChange {
		return nil
	}
	if err := sys.DB.Partners().SetPartnerWebhook(ctx, id, *webhook); err != nil {
		return err
	}
	if *webhook == "" {
		fmt.Fprintf(c.stdout, "%s: webhook removed\n", id)
	} else {
		fmt.Fprintf(c.stdout, "%s: webhook updated\n", id)
	}
	return nil
}

// parseAckKey decodes an --ack-key: a base64 (standard alphabet, padding
// optional) Ed25519 public key of 32 bytes. "" is no key.
func parseAckKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, usageError{"--ack-key must be a base64 Ed25519 public key of 32 bytes"}
	}
	return key, nil
}
