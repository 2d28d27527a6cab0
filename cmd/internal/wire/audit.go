package wire

import (
	"context"
	"errors"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/broker/postgres"
)

// sequencerConfig signs checkpoints with the current log key and, during a
// handover, the previous one.
func (s *System) sequencerConfig() postgres.SequencerConfig {
	signers := s.LogKeys.Signers()
	cfg := postgres.SequencerConfig{Key: signers[0].Private, Origin: s.Origin,
		OnError: func(err error) { s.Log.Warn("audit sequencer", "err", err) }}
	for _, k := range signers[1:] {
		cfg.CoSigners = append(cfg.CoSigners, k.Private)
	}
	return cfg
}

// RunAuditSequencer integrates audit entries and publishes checkpoints
// until ctx ends. It restarts with the new keys when the log key is
// rotated (by brokerctl, in another process) or a handover ends; it also
// picks up JWT key rotations.
func (s *System) RunAuditSequencer(ctx context.Context) error {
	keys := func() string {
		_ = s.SignKeys.Reload() // JWT keys: nothing to restart
		_ = s.LogKeys.Reload()  // a failed reload keeps the keys in force
		return s.logSigners()
	}
	return s.DB.Audit().RunAuditSequencerRestarting(ctx, s.sequencerConfig, keys, 5*time.Second)
}

// IntegrateAudit integrates pending entries and publishes a checkpoint now
// (brokerctl audit checkpoint, tests).
func (s *System) IntegrateAudit(ctx context.Context) (string, error) {
	cfg := s.sequencerConfig()
	for {
		n, err := s.DB.Audit().IntegrateAudit(ctx, cfg)
		if err != nil {
			return "", err
		}
		if n == 0 {
			break
		}
	}
	return s.DB.Audit().PublishCheckpoint(ctx, cfg)
}

// CurrentCheckpointKey is the key officers pin to verify exports offline:
// the current log key.
func (s *System) CurrentCheckpointKey() audit.PublicKey {
	return audit.PublicKey{Name: s.Origin, Key: s.LogKeys.Current().Public}
}

// VerifyAudit recomputes the tree from the database and checks it against
// the signed checkpoints, with every signing key in the keyring (after a
// rotation older checkpoints carry the previous key's signature). The keys
// come from the key directory, never from the database being checked.
func (s *System) VerifyAudit(ctx context.Context, progress func(done, total uint64)) (uint64, []byte, error) {
	keys := s.CheckpointKeys()
	if len(keys) == 0 {
		return 0, nil, errors.New("no signing key to verify with")
	}
	return s.DB.AuditReports().VerifyAuditKeys(ctx, keys, progress)
}

// RecordOfficerAction appends an audit entry for an officer's own action
// (exports, erasures through the desk, logins).
func (s *System) RecordOfficerAction(ctx context.Context, actor broker.Party, action, subject, reason string) error {
	_, err := s.Releaser.Recorder().Record(ctx, broker.Event{Actor: actor.Actor(), Action: action,
		Purpose: broker.PurposeDataSubjectRequest, Subject: subject, Resource: "subject", Outcome: audit.OutcomeDone,
		Reason: reason})
	return err
}

// auditAPI adapts the store to the HTTP layer.
type auditAPI struct{ s *System }

var _ httpapi.AuditAPI = (*auditAPI)(nil)

func (a *auditAPI) Checkpoint(ctx context.Context) (string, error) {
	return a.s.CosignedCheckpoint(ctx)
}

func (a *auditAPI) Inclusion(ctx context.Context, index, size uint64) (any, error) {
	return a.s.ReadDB().AuditTree().InclusionProof(ctx, index, size)
}

func (a *auditAPI) Consistency(ctx context.Context, from, to uint64) (any, error) {
	return a.s.ReadDB().AuditTree().ConsistencyProof(ctx, from, to)
}

func (a *auditAPI) Entries(ctx context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	return a.s.ReadDB().AuditReports().AuditEntries(ctx, f, cursor, limit)
}

func (a *auditAPI) Record(ctx context.Context, ev broker.Event) error {
	_, err := a.s.Releaser.Recorder().Record(ctx, ev)
	return err
}
