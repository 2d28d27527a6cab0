package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sieve-broker/sieve/cmd/internal/wire"
	"github.com/sieve-broker/sieve/policies"
)

// policy loads the policy in force (BROKER_POLICY_DIR, else the embedded
// one) without opening anything else.
func (c *cli) policy(ctx context.Context) (*policies.Engine, error) {
	if c.sys != nil {
		return c.sys.Policy, nil
	}
	if c.cfg.Policy.Dir != "" {
		return policies.Load(ctx, c.cfg.Policy.Dir)
	}
	return policies.Default(ctx)
}

// printRecord prints the Art. 30 record for a person to read; --json
// gives the same record as data.
func printRecord(w io.Writer, rec wire.ProcessingRecord) error {
	fmt.Fprintf(w, "%s\nController: %s\nPolicy revision: %s\nGenerated: %s\n\nActivities:\n",
		rec.Title, rec.Controller, rec.PolicyRevision, rec.GeneratedAt.Format(time.RFC3339))
	for _, a := range rec.Activities {
		fmt.Fprintf(w, "\n  %s: %s\n", a.Purpose, a.Description)
		fmt.Fprintf(w, "    lawful basis:    %s (%s)\n", a.LawfulBasis, a.LegalReference)
		fmt.Fprintf(w, "    data life:       %d days (each release's retain_until)\n", a.DataLifeDays)
		if len(a.Consent) > 0 {
			fmt.Fprintf(w, "    consent:         %s\n", strings.Join(a.Consent, ", "))
		}
		fmt.Fprintf(w, "    data categories: %s\n", strings.Join(a.DataCategories, ", "))
		for _, r := range a.Recipients {
			fmt.Fprintf(w, "    recipient:       %s (%s side), scopes %s\n", r.Kind, r.Side, strings.Join(r.Scopes, " "))
		}
	}
	fmt.Fprintln(w, "\nRetention:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CATEGORY\tDAYS\tBASIS")
	for _, r := range rec.Retention {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", r.Category, r.Days, r.Basis)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSecurity measures:")
	for _, m := range rec.SecurityMeasures {
		fmt.Fprintf(w, "  - %s\n", m)
	}
	if len(rec.Registered) > 0 {
		fmt.Fprintln(w, "\nRecipients (legal registry):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tKIND\tROLE\tAGREEMENT\tJURISDICTION\tBASIS\tIN SHOPPERS\tEEA SHOPPERS")
		for _, r := range rec.Registered {
			agr := r.Agreement
			if agr != "" && r.AgreementExpires != "" {
				agr += " to " + r.AgreementExpires
			}
			if !r.AgreementValid {
				agr += " (NOT VALID)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Role, dash(agr), r.Jurisdiction,
				r.TransferBasis, r.Transfers["IN"], r.Transfers["EEA"])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "\nInternational transfers: %s\n", rec.Transfers)
	return err
}
