package wire

import (
	"context"
	"errors"

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
	c := &witness.Cosigner{Store: s.DB.AuditTree(), Policy: s.Witnesses, Log: s.Log}
	if m != nil {
		c.Inc = m.Inc
	}
	return c.Run(ctx)
}

// CosignedCheckpoint is the latest checkpoint with the witnesses'
// cosignatures it has (GET /v1/audit/checkpoint).
func (s *System) CosignedCheckpoint(ctx context.Context) (string, error) {
	note, _, err := s.ReadDB().AuditTree().CosignedCheckpoint(ctx, 0)
	if broker.IsNotFound(err) {
		return "", broker.Errorf(broker.ENotFound, "no checkpoint published yet")
	}
	return note, err
}

// VerifyAuditPolicy is VerifyAudit that also requires the witness quorum
// of p (SPEC §2 `audit verify --policy`; see postgres.VerifyAuditPolicy),
// with every checkpoint key of the key directory.
func (s *System) VerifyAuditPolicy(ctx context.Context, p *audit.Policy, progress func(done, total uint64)) (uint64, []byte, error) {
	keys := s.CheckpointKeys()
	if len(keys) == 0 {
		return 0, nil, errors.New("no signing key to verify with")
	}
	return s.DB.AuditReports().VerifyAuditPolicy(ctx, keys, p, progress)
}

var _ httpapi.AuditTiles = (*auditAPI)(nil)

// Tile implements httpapi.AuditTiles.
func (a *auditAPI) Tile(ctx context.Context, level int, index uint64, width int) ([]byte, error) {
	return a.s.ReadDB().AuditTree().AuditTile(ctx, level, index, width)
}

// EntryBundle implements httpapi.AuditTiles.
func (a *auditAPI) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	return a.s.ReadDB().AuditTree().AuditEntryBundle(ctx, index, width)
}
