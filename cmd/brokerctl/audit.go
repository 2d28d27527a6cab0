package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker/postgres"
)

func init() {
	register("audit verify", "audit verify [--file F --key PUB] [--policy P]", cmdAuditVerify)
	register("audit checkpoint", "audit checkpoint", cmdAuditCheckpoint)
	register("audit export", "audit export [--subject S] [--partner P] [--purpose P] [--from T] [--to T] --format jsonl|csv [--out F]", cmdAuditExport)
	register("audit key", "audit key", cmdAuditKey)
}

// uprogress adapts a progress bar to uint64 counters.
func uprogress(w io.Writer, label string) func(done, total uint64) {
	p := progress(w, label)
	last := time.Time{}
	return func(done, total uint64) {
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		p(int64(done), int64(total))
	}
}

func verifyFailed(err error) error {
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return exitError{code: 1, err: fmt.Errorf("audit log verification FAILED at entry %d: %s", ve.Index, ve.Reason)}
	}
	return exitError{code: 1, err: fmt.Errorf("audit log verification FAILED: %w", err)}
}

func cmdAuditVerify(ctx context.Context, c *cli, args []string) error {
	fs := flags("audit verify")
	file := fs.String("file", "", "an export (jsonl) to verify offline, without the database")
	key := fs.String("key", "", "the checkpoint public key: verifier key, PEM, hex/base64, or a file holding one")
	quiet := fs.Bool("quiet", false, "no progress bar")
	policyFile := fs.String("policy", "", "a witness policy: the checkpoint relied on must carry its quorum of cosignatures")
	if err := parse(fs, args); err != nil {
		return err
	}
	var policy *audit.Policy
	if *policyFile != "" {
		var err error
		if policy, err = audit.LoadPolicy(*policyFile); err != nil {
			return err
		}
	}
	prog := uprogress(c.stderr, "verify")
	if *quiet {
		prog = nil
	}
	if *file != "" || *key != "" {
		if *file == "" || *key == "" {
			return usageError{"--file and --key go together"}
		}
		pub, err := audit.LoadPublicKey(*key)
		if err != nil {
			return err
		}
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		var size uint64
		var root []byte
		if policy != nil {
			size, root, err = audit.VerifyExportPolicy(f, pub, policy, prog)
		} else {
			size, root, err = audit.VerifyExport(f, pub, prog)
		}
		if err != nil {
			return verifyFailed(err)
		}
		fmt.Fprintf(c.stdout, "ok %d %s\n", size, hex.EncodeToString(root))
		return nil
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	var size uint64
	var root []byte
	if policy != nil {
		size, root, err = sys.VerifyAuditPolicy(ctx, policy, prog)
	} else {
		size, root, err = sys.VerifyAudit(ctx, prog)
	}
	if err != nil {
		return verifyFailed(err)
	}
	fmt.Fprintf(c.stdout, "ok %d %s\n", size, hex.EncodeToString(root))
	return nil
}

func cmdAuditCheckpoint(ctx context.Context, c *cli, args []string) error {
	if err := parse(flags("audit checkpoint"), args); err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	note, err := sys.IntegrateAudit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, note)
	return nil
}

func cmdAuditKey(ctx context.Context, c *cli, args []string) error {
	if err := parse(flags("audit key"), args); err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, sys.CurrentCheckpointKey().String())
	return nil
}

func cmdAuditExport(ctx context.Context, c *cli, args []string) error {
	fs := flags("audit export")
	var f postgres.AuditFilter
	fs.StringVar(&f.Subject, "subject", "", "subject pseudonym (sub_…)")
	fs.StringVar(&f.Actor, "partner", "", "actor, e.g. retailer:cli_…")
	fs.StringVar(&f.Purpose, "purpose", "", "purpose")
	fs.StringVar(&f.Outcome, "outcome", "", "outcome")
	from := fs.String("from", "", "RFC 3339 time (inclusive)")
	to := fs.String("to", "", "RFC 3339 time (exclusive)")
	format := fs.String("format", "jsonl", "jsonl (verifiable offline when unfiltered) or csv")
	out := fs.String("out", "", "write to this file instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, p := range []struct {
		s   string
		dst *time.Time
	}{{*from, &f.From}, {*to, &f.To}} {
		if p.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.s)
		if err != nil {
			return usageError{"times are RFC 3339, e.g. 2026-11-21T00:00:00Z"}
		}
		*p.dst = t
	}
	if *format != "jsonl" && *format != "csv" {
		return usageError{"--format is jsonl or csv"}
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	w := c.stdout
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	if err := sys.DB.ExportAudit(ctx, w, f, *format); err != nil {
		return err
	}
	return nil
}
