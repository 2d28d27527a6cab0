package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sieve-broker/sieve/commerce"
)

func init() {
	register("nominee event", "nominee event NOM_ID --event "+strings.Join(commerce.NominationEvents, "|"), cmdNomineeEvent)
	register("nominee access", "nominee access NOM_ID --nominee-wa N", cmdNomineeAccess)
	register("nominee erase", "nominee erase NOM_ID --nominee-wa N", cmdNomineeErase)
}

// cmdNomineeEvent records the shopper's death or incapacity, after the
// officer has seen the evidence: from then on the nominee may act.
func cmdNomineeEvent(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "NOM_ID")
	if err != nil {
		return err
	}
	fs := flags("nominee event")
	event := fs.String("event", "", "one of "+strings.Join(commerce.NominationEvents, ", "))
	if err := parse(fs, rest); err != nil {
		return err
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	if err := sys.Nominees.RecordEvent(ctx, id, *event, operator); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %s recorded; the nominee may now ask for access or erasure\n", id, *event)
	return err
}

func nomineeFlags(name string, args []string) (string, string, error) {
	id, rest, err := oneArg(args, "NOM_ID")
	if err != nil {
		return "", "", err
	}
	fs := flags(name)
	wa := fs.String("nominee-wa", "", "the number the request came from")
	if err := parse(fs, rest); err != nil {
		return "", "", err
	}
	if *wa == "" {
		return "", "", usageError{"--nominee-wa is required"}
	}
	return id, *wa, nil
}

// cmdNomineeAccess answers a nominee's access request: the shopper's export,
// released to the operator through the pipeline.
func cmdNomineeAccess(ctx context.Context, c *cli, args []string) error {
	id, wa, err := nomineeFlags("nominee access", args)
	if err != nil {
		return err
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	ex, err := sys.Nominees.Access(ctx, id, wa, operator)
	if err != nil {
		return err
	}
	return printJSON(c.stdout, ex)
}

// cmdNomineeErase answers a nominee's erasure request.
func cmdNomineeErase(ctx context.Context, c *cli, args []string) error {
	id, wa, err := nomineeFlags("nominee erase", args)
	if err != nil {
		return err
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	if err := sys.Nominees.Erase(ctx, id, wa, operator); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s: the shopper is erased at the nominee's request\n", id)
	return err
}
