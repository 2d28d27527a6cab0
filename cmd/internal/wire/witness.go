package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/audit/witness"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/commerce"
)

// RunCosigner submits each new checkpoint to the witnesses of the policy
// (BROKER_WITNESS_POLICY) and stores their cosignatures, until ctx ends.
// It runs beside the sequencer and never holds it up. m counts the
// cosignatures and the checkpoints short of their quorum (may be nil).
func (s *System) RunCosigner(ctx context.Context, m commerce.Metrics) error {
	if s.Witnesses == nil {
		<-ctx.Done()
		return nil
	}
	c := &witness.Cosigner{Store: s.DB, Policy: s.Witnesses, Log: s.Log}
	if m != nil {
		c.Inc = m.Inc
	}
	return c.Run(ctx)
}

// CosignedCheckpoint is the latest checkpoint with the witnesses'
// cosignatures it has (GET /v1/audit/checkpoint).
func (s *System) CosignedCheckpoint(ctx context.Context) (string, error) {
	note, _, err := s.ReadDB().CosignedCheckpoint(ctx, 0)
	if broker.IsNotFound(err) {
		return "", broker.Errorf(broker.ENotFound, "no checkpoint published yet")
	}
	return note, err
}

// CosignGrace is how long a fresh checkpoint may go without its quorum
// before `audit verify --policy` fails on it; until then the latest
// checkpoint that has the quorum is checked instead.
const CosignGrace = 15 * time.Second

// VerifyAuditPolicy is VerifyAudit that also requires the witness quorum
// of p (SPEC §2 `audit verify --policy`): the latest checkpoint must carry
// valid cosignatures of at least p's quorum, be signed by a log key, and
// be a prefix of the verified tree. A log that was forked or cut back and
// re-signed by the operator alone has no such checkpoint.
func (s *System) VerifyAuditPolicy(ctx context.Context, p *audit.Policy, progress func(done, total uint64)) (uint64, []byte, error) {
	note, cpSize, err := s.DB.CosignedCheckpoint(ctx, 0)
	if broker.IsNotFound(err) {
		return 0, nil, fmt.Errorf("%w: no checkpoint published yet", audit.ErrNoQuorum)
	}
	if err != nil {
		return 0, nil, err
	}
	cp, err := verifyWithAnyKey([]byte(note), s.CheckpointKeys())
	if err != nil {
		return 0, nil, err
	}
	if err := p.CheckQuorum([]byte(note)); err != nil {
		// The witnesses get a moment to cosign a fresh checkpoint; then the
		// latest one that has the quorum stands in for it.
		age, aerr := s.DB.LatestCheckpointAge(ctx)
		if aerr != nil || age > CosignGrace {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, err)
		}
		if note, cpSize, err = s.DB.CosignedCheckpoint(ctx, max(p.Quorum, 1)); err != nil {
			return 0, nil, fmt.Errorf("%w: no cosigned checkpoint (%v)", audit.ErrNoQuorum, err)
		}
		if err := p.CheckQuorum([]byte(note)); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of size %d: %w", cpSize, err)
		}
		if cp, err = verifyWithAnyKey([]byte(note), s.CheckpointKeys()); err != nil {
			return 0, nil, err
		}
	}
	size, root, err := s.VerifyAudit(ctx, progress)
	if err != nil {
		return 0, nil, err
	}
	// The tree just verified must extend the cosigned checkpoint. The proof
	// comes from the database, but it is checked against the recomputed
	// root, so it cannot lie.
	if cp.Size > size {
		return 0, nil, fmt.Errorf("%w: the cosigned checkpoint has size %d, the log only %d", audit.ErrInconsistent, cp.Size, size)
	}
	proof, err := s.DB.ConsistencyProof(ctx, cp.Size, size)
	if err != nil {
		return 0, nil, err
	}
	if err := proof.Verify(cp.Root, root); err != nil {
		return 0, nil, fmt.Errorf("the cosigned checkpoint of size %d: %w", cp.Size, err)
	}
	return size, root, nil
}

// verifyWithAnyKey verifies a checkpoint note with the first of keys that
// signed it.
func verifyWithAnyKey(note []byte, keys []audit.PublicKey) (audit.Checkpoint, error) {
	err := errors.New("no signing key to verify with")
	for _, k := range keys {
		var cp audit.Checkpoint
		if cp, err = k.VerifyCheckpoint(note); err == nil {
			return cp, nil
		}
	}
	return audit.Checkpoint{}, err
}

var _ httpapi.AuditTiles = (*auditAPI)(nil)

// Tile implements httpapi.AuditTiles.
func (a *auditAPI) Tile(ctx context.Context, level int, index uint64, width int) ([]byte, error) {
	return a.s.ReadDB().AuditTile(ctx, level, index, width)
}

// EntryBundle implements httpapi.AuditTiles.
func (a *auditAPI) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	return a.s.ReadDB().AuditEntryBundle(ctx, index, width)
}
