package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

func init() {
	register("breach open", "breach open --from T --to T [--partner NAME] [--category C] --summary-code "+
		strings.Join(commerce.BreachSummaryCodes, "|"), cmdBreachOpen)
	register("breach report", "breach report ID --format json|html", cmdBreachReport)
	register("breach notify", "breach notify ID", cmdBreachNotify)
}

// cmdBreachOpen verifies the audit log, computes who and what the window
// touched, and records the breach (and the moment of awareness).
func cmdBreachOpen(ctx context.Context, c *cli, args []string) error {
	fs := flags("breach open")
	from := fs.String("from", "", "start of the window (RFC 3339)")
	to := fs.String("to", "", "end of the window (RFC 3339)")
	partner := fs.String("partner", "", "the partner's name or client id")
	category := fs.String("category", "", "a data category of the policy data (identity, addresses, orders, …)")
	summary := fs.String("summary-code", "", "what happened: "+strings.Join(commerce.BreachSummaryCodes, ", "))
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	var f commerce.BreachFilter
	var err error
	if f.From, err = time.Parse(time.RFC3339, *from); err != nil {
		return usageError{"--from must be an RFC 3339 time"}
	}
	if f.To, err = time.Parse(time.RFC3339, *to); err != nil {
		return usageError{"--to must be an RFC 3339 time"}
	}
	if *summary == "" {
		return usageError{"--summary-code is required"}
	}
	f.Category = *category
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	if *partner != "" {
		ps, err := sys.DB.Partners().ListPartners(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.ID == *partner || p.Name == *partner {
				if f.Partner != "" && f.Partner != p.ID {
					return usageError{"several partners are named " + *partner + "; give the client id"}
				}
				f.Partner = p.ID
			}
		}
		if f.Partner == "" {
			return usageError{"no partner named " + *partner}
		}
	}
	b, err := sys.Breaches.Open(ctx, f, *summary, operator)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, b)
	}
	fmt.Fprintf(c.stdout, "%s opened at %s; 72-hour report due %s\n", b.ID, b.AwareAt.Format(time.RFC3339),
		b.BoardDue.Format(time.RFC3339))
	fmt.Fprintf(c.stdout, "affected shoppers: %d\nreleases: %d\ncategories: %s\n", b.Affected, b.Releases,
		strings.Join(b.Categories, ", "))
	for _, r := range b.Recipients {
		fmt.Fprintf(c.stdout, "recipient: %s %s (%s): %d releases, %d shoppers\n", r.Party, r.Name, r.Kind, r.Releases, r.Subjects)
	}
	_, err = fmt.Fprintf(c.stdout, "computed from the audit log verified at size %d\n", b.LogSize)
	return err
}

func cmdBreachReport(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "ID")
	if err != nil {
		return err
	}
	fs := flags("breach report")
	format := fs.String("format", "json", "json or html")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if *format != "json" && *format != "html" {
		return usageError{"--format must be json or html"}
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	b, err := sys.Breaches.Get(ctx, id)
	if err != nil {
		return err
	}
	rep := sys.Breaches.Report(b, time.Now())
	if *format == "json" {
		return printJSON(c.stdout, rep)
	}
	page, err := rep.HTML()
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(page)
	return err
}

// cmdBreachNotify queues the Rule 7(1) notice to every affected shopper
// not yet told; brokerd's sender delivers them and the report tracks them.
func cmdBreachNotify(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "ID")
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{"unexpected argument " + rest[0]}
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	n, err := sys.Breaches.Notify(ctx, id, operator)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %d notices queued\n", id, n)
	return err
}
