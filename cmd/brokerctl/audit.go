package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

func init() {
	register("audit verify", "audit verify [--trusted F] [--policy P] [--quiet] | --file F --key PUB[,PUB…|DIR] [--key …] [--policy P]", cmdAuditVerify)
	register("audit checkpoint", "audit checkpoint", cmdAuditCheckpoint)
	register("audit export", "audit export [--subject S] [--partner P] [--purpose P] [--outcome O] [--from T] [--to T] --format jsonl|csv [--out F|-] [--force]", cmdAuditExport)
	register("audit key", "audit key [--all]", cmdAuditKey)
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
	var keyArgs []string
	fs.Func("key", "checkpoint public key(s): a verifier key, PEM, hex/base64, a file of keys, or a key directory; repeat or separate with commas to give current and retired keys", func(v string) error {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keyArgs = append(keyArgs, k)
			}
		}
		return nil
	})
	trusted := fs.String("trusted", "", "a checkpoint saved earlier (brokerctl audit checkpoint > F): fail unless the stored log extends it")
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
	if *file != "" || len(keyArgs) > 0 {
		if *file == "" || len(keyArgs) == 0 {
			return usageError{"--file and --key go together"}
		}
		if *trusted != "" {
			return usageError{"--trusted checks the database's log; it does not go with --file"}
		}
		var keys audit.KeySet
		for _, a := range keyArgs {
			ks, err := audit.LoadPublicKeys(a)
			if err != nil {
				return err
			}
			keys = append(keys, ks...)
		}
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		var size uint64
		var root []byte
		if policy != nil {
			size, root, err = audit.VerifyExportPolicy(f, keys, policy, prog)
		} else {
			size, root, err = audit.VerifyExport(f, keys, prog)
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
	var tcp audit.Checkpoint
	if *trusted != "" {
		// Read and check it first: a bad file fails before a long verify.
		if tcp, err = readTrustedCheckpoint(*trusted, audit.KeySet(sys.CheckpointKeys())); err != nil {
			return exitError{code: 1, err: err}
		}
	}
	var size uint64
	var root []byte
	if policy != nil {
		size, root, err = sys.VerifyAuditPolicy(ctx, policy, prog)
	} else {
		size, root, err = sys.VerifyAudit(ctx, prog)
	}
	if err != nil {
		// Name the key directory: a wrong BROKER_KEY_DIR (another clone's
		// keys) looks exactly like a forged checkpoint.
		dir, _ := filepath.Abs(c.cfg.Keys.Dir)
		ee := verifyFailed(err).(exitError)
		ee.err = fmt.Errorf("%w (checkpoint keys from %s)", ee.err, dir)
		return ee
	}
	if *trusted != "" {
		if err := extendsTrusted(ctx, sys, tcp, size, root); err != nil {
			return exitError{code: 1, err: fmt.Errorf("audit log verification FAILED against the trusted checkpoint %s: %w", *trusted, err)}
		}
		fmt.Fprintf(c.stderr, "the log extends the trusted checkpoint of %d entries\n", tcp.Size)
	}
	fmt.Fprintf(c.stdout, "ok %d %s\n", size, hex.EncodeToString(root))
	return nil
}

// readTrustedCheckpoint reads a checkpoint note saved outside the database
// and verifies it with the log's keys, current and retired.
func readTrustedCheckpoint(path string, keys audit.KeySet) (audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("trusted checkpoint: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, audit.MaxCheckpointSize+1))
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("trusted checkpoint: %w", err)
	}
	cp, err := keys.VerifyCheckpoint(b)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("trusted checkpoint %s does not verify with the log's keys (current or retired): %w", path, err)
	}
	return cp, nil
}

// extendsTrusted proves that the verified tree (size, root) is an
// append-only extension of the trusted checkpoint: the proof's hashes come
// from the database, but they are checked against the trusted root and
// the root just recomputed from the entries, so altered nodes only make it
// fail.
func extendsTrusted(ctx context.Context, sys *wire.System, tcp audit.Checkpoint, size uint64, root []byte) error {
	switch {
	case tcp.Origin != sys.Origin:
		return fmt.Errorf("it is a checkpoint of the log %q, not %q", tcp.Origin, sys.Origin)
	case tcp.Size > size:
		return fmt.Errorf("the stored log has %d entries, fewer than the trusted checkpoint's %d: it was cut back (an older backup restored, or its tail deleted)", size, tcp.Size)
	case tcp.Size == size:
		if !bytes.Equal(tcp.Root, root) {
			return fmt.Errorf("the stored log of %d entries has another root than the trusted checkpoint of the same size: it was forked or rewritten", size)
		}
		return nil
	case tcp.Size == 0:
		return nil
	}
	p, err := sys.DB.AuditTree().ConsistencyProof(ctx, tcp.Size, size)
	if err != nil {
		return fmt.Errorf("consistency proof %d→%d: %w", tcp.Size, size, err)
	}
	if err := p.Verify(tcp.Root, root); err != nil {
		return fmt.Errorf("the stored log is not an append-only extension of the trusted checkpoint of %d entries (forked or rewritten): %v", tcp.Size, err)
	}
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
	fs := flags("audit key")
	all := fs.Bool("all", false, "every log key, current first, then previous and retired ones: a key file for verify --key")
	if err := parse(fs, args); err != nil {
		return err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	if !*all {
		fmt.Fprintln(c.stdout, sys.CurrentCheckpointKey().String())
		return nil
	}
	for _, k := range sys.CheckpointKeys() {
		fmt.Fprintln(c.stdout, k.String())
	}
	return nil
}

func cmdAuditExport(ctx context.Context, c *cli, args []string) error {
	fs := flags("audit export")
	var f broker.AuditFilter
	fs.StringVar(&f.Subject, "subject", "", "subject pseudonym (sub_…)")
	fs.StringVar(&f.Actor, "partner", "", "actor, e.g. retailer:cli_…")
	fs.StringVar(&f.Purpose, "purpose", "", "purpose")
	fs.StringVar(&f.Outcome, "outcome", "", "outcome")
	from := fs.String("from", "", "RFC 3339 time (inclusive)")
	to := fs.String("to", "", "RFC 3339 time (exclusive)")
	format := fs.String("format", "jsonl", "jsonl (verifiable offline when unfiltered) or csv")
	out := fs.String("out", "", "write to this new file instead of stdout (- is stdout)")
	force := fs.Bool("force", false, "let --out replace an existing file (never through a symbolic link)")
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
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	if *out == "" || *out == "-" {
		return db.AuditReports().ExportAudit(ctx, c.stdout, f, *format)
	}
	file, err := createExport(*out, *force)
	if err != nil {
		return err
	}
	err = db.AuditReports().ExportAudit(ctx, file, f, *format)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}
