package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sieve-broker/sieve/commerce"
)

func init() {
	register("grievance list", "grievance list [--open|--status open|overdue|resolved] [--json]", cmdGrievanceList)
	register("grievance resolve", "grievance resolve ID --outcome "+strings.Join(commerce.GrievanceOutcomes, "|"), cmdGrievanceResolve)
}

// cmdGrievanceList lists tickets with their SLA countdowns; the texts stay
// sealed (an officer reads one in /ui, audited).
func cmdGrievanceList(ctx context.Context, c *cli, args []string) error {
	fs := flags("grievance list")
	open := fs.Bool("open", false, "only unresolved tickets")
	status := fs.String("status", "", "open, overdue or resolved")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	if *open {
		if *status != "" {
			return usageError{"give --open or --status, not both"}
		}
		*status = commerce.GrievanceOpen
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	gs, err := sys.Desk.List(ctx, *status, 1000)
	if err != nil {
		return err
	}
	sla, err := sys.Desk.SLA(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]any{"grievances": gs, "sla": sla})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tOPENED\tRESOLVE BY\tLEFT\tESCALATED\tOUTCOME")
	now := time.Now()
	for _, g := range gs {
		left := "-"
		if g.ResolvedAt == nil {
			left = g.ResolveDue.Sub(now).Round(time.Hour).String()
		}
		esc := "-"
		if g.EscalatedAt != nil {
			esc = g.EscalatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Status, g.OpenedAt.Format(time.RFC3339),
			g.ResolveDue.Format(time.RFC3339), left, esc, g.Outcome)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "\n%d tickets: %d open (%d overdue), %d resolved, %.0f%% of them in time\n",
		sla.Total, sla.Open, sla.Overdue, sla.Resolved, 100*sla.ShareInTime)
	return err
}

// cmdGrievanceResolve closes a ticket with an outcome code; the shopper is
// told the outcome in the chat (brokerd's sender delivers it).
func cmdGrievanceResolve(ctx context.Context, c *cli, args []string) error {
	id, rest, err := oneArg(args, "ID")
	if err != nil {
		return err
	}
	fs := flags("grievance resolve")
	outcome := fs.String("outcome", "", "one of "+strings.Join(commerce.GrievanceOutcomes, ", "))
	if err := parse(fs, rest); err != nil {
		return err
	}
	if !commerce.ValidGrievanceOutcome(*outcome) {
		return usageError{"--outcome must be one of " + strings.Join(commerce.GrievanceOutcomes, ", ")}
	}
	operator, sys, err := c.actorSystem(ctx)
	if err != nil {
		return err
	}
	g, err := sys.Desk.Resolve(ctx, id, *outcome, operator)
	if err != nil {
		return err
	}
	inTime := "in time"
	if !g.InTime() {
		inTime = "late"
	}
	_, err = fmt.Fprintf(c.stdout, "resolved %s: %s (%s); the shopper is told in the chat\n", g.ID, g.Outcome, inTime)
	return err
}
