package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

func init() {
	register("audit prove", "audit prove --index N [--policy P] [--out F]", cmdAuditProve)
	register("audit check-receipt", "audit check-receipt --file F --key PUB [--policy P] [--receipt INDEX-HASH]", cmdAuditCheckReceipt)
}

// cmdAuditProve writes a receipt (SPEC §10): the inclusion proof of entry
// N against the latest checkpoint that carries the witness quorum (of
// --policy, else of BROKER_WITNESS_POLICY; without either, the latest
// checkpoint).
func cmdAuditProve(ctx context.Context, c *cli, args []string) error {
	fs := flags("audit prove")
	index := fs.Int64("index", -1, "the audit index of the entry (the number of a receipt in \"my data\")")
	policyFile := fs.String("policy", "", "witness policy (default: BROKER_WITNESS_POLICY)")
	out := fs.String("out", "", "write the receipt to this file instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *index < 0 {
		return usageError{"--index N is required"}
	}
	sys, err := c.system(ctx)
	if err != nil {
		return err
	}
	policy := sys.Witnesses
	if *policyFile != "" {
		if policy, err = audit.LoadPolicy(*policyFile); err != nil {
			return err
		}
	}
	need := 0
	if policy != nil {
		need = max(policy.Quorum, 1)
	}
	note, size, err := sys.DB.AuditTree().CosignedCheckpoint(ctx, need)
	if broker.IsNotFound(err) {
		return fmt.Errorf("no checkpoint with %d cosignature(s) yet", need)
	}
	if err != nil {
		return err
	}
	if policy != nil {
		if err := policy.CheckQuorum([]byte(note)); err != nil {
			return fmt.Errorf("the latest cosigned checkpoint (size %d): %w", size, err)
		}
	}
	if uint64(*index) >= size {
		return fmt.Errorf("entry %d is not under a cosigned checkpoint yet (its size is %d); try again in a few seconds", *index, size)
	}
	p, err := sys.DB.AuditTree().InclusionProof(ctx, uint64(*index), size)
	if err != nil {
		return err
	}
	r := audit.Receipt{Format: audit.ReceiptFormat, Index: p.Index, LeafHash: p.LeafHash, Checkpoint: note, Proof: p.Hashes}
	if r.Proof == nil {
		r.Proof = [][]byte{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out != "" {
		return os.WriteFile(*out, b, 0o644)
	}
	_, err = c.stdout.Write(b)
	return err
}

// cmdAuditCheckReceipt verifies a receipt offline, with only the log's
// public key and the witness policy.
func cmdAuditCheckReceipt(ctx context.Context, c *cli, args []string) error {
	fs := flags("audit check-receipt")
	file := fs.String("file", "", "the receipt file (from audit prove)")
	key := fs.String("key", "", "the log's public key: verifier key, PEM, hex/base64, or a file holding one")
	policyFile := fs.String("policy", "", "witness policy whose quorum the checkpoint must carry")
	short := fs.String("receipt", "", "the short receipt shown in \"my data\" (INDEX-HASH), to match")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *key == "" {
		return usageError{"--file and --key are required"}
	}
	pub, err := audit.LoadPublicKey(*key)
	if err != nil {
		return err
	}
	var policy *audit.Policy
	if *policyFile != "" {
		if policy, err = audit.LoadPolicy(*policyFile); err != nil {
			return err
		}
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, audit.MaxReceiptSize+1))
	if err != nil {
		return err
	}
	r, err := audit.ParseReceipt(b)
	if err != nil {
		return exitError{code: 1, err: fmt.Errorf("receipt check FAILED: %w", err)}
	}
	cp, err := r.Verify([]audit.PublicKey{pub}, policy, *short)
	if err != nil {
		return exitError{code: 1, err: fmt.Errorf("receipt check FAILED: %w", err)}
	}
	fmt.Fprintf(c.stdout, "ok %s in tree size %d\n", r.Short(), cp.Size)
	return nil
}
