package wire

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce/httpapi/ui"
)

// ActionLogKeyAnnounced is the audit action that publishes a new log key in
// the log itself, before the key signs anything: its resource is the new
// key's note verifier key (no personal data), and the checkpoint that first
// covers it is signed by the previous key too.
const ActionLogKeyAnnounced = "log.key_announced"

// LoadLogKeys loads the audit log's checkpoint keys from
// <keyDir>/log. A deployment whose checkpoints were signed with the JWT
// signing key adopts that key as its first log key (see
// keydir.LoadAdopting), so monitors that pinned it keep verifying.
func LoadLogKeys(keyDir string, create bool) (*keydir.Ring, error) {
	if keyDir == "" {
		return nil, errors.New("log keys: no key directory (set BROKER_KEY_DIR)")
	}
	return keydir.LoadAdopting(filepath.Join(keyDir, keydir.LogSubdir), create, filepath.Join(keyDir, token.SigningSubdir))
}

// CheckpointKeys are the public keys that may have signed the audit log's
// checkpoints: every log key, current, previous and retired, named by the
// log's origin. They come from the key directory, never from the database.
func (s *System) CheckpointKeys() []audit.PublicKey {
	var keys []audit.PublicKey
	for _, k := range s.LogKeys.Keys() {
		keys = append(keys, audit.PublicKey{Name: s.Origin, Key: k.Public})
	}
	return keys
}

// logSigners names the keys that sign checkpoints now; the sequencer
// restarts when it changes (a rotation, or the end of a handover).
func (s *System) logSigners() string {
	var ids []string
	for _, k := range s.LogKeys.Signers() {
		ids = append(ids, k.ID)
	}
	return strings.Join(ids, " ")
}

// RotateLogKey makes a new log key current. Before it signs anything, the
// new key is announced in the log (ActionLogKeyAnnounced), and for the
// handover period (BROKER_LOG_KEY_HANDOVER) the previous key co-signs every
// checkpoint, that one included: a monitor that pinned the previous key
// verifies the announcement and can pin the new key from the log itself.
// When the announcement cannot be written nothing changes (fail closed).
func (s *System) RotateLogKey(ctx context.Context) (keydir.Key, error) {
	return s.LogKeys.Rotate(s.Config.Keys.LogKeyHandover, func(k keydir.Key) error {
		vkey, err := audit.VerifierKey(s.Origin, k.Public)
		if err != nil {
			return err
		}
		actor := broker.Party{Kind: broker.KindSystem, ID: "keys"}
		if _, err := s.Releaser.Recorder().Record(ctx, broker.Event{Actor: actor.Actor(),
			Action: ActionLogKeyAnnounced, Purpose: broker.PurposeLogIntegrity, Resource: vkey, Outcome: audit.OutcomeDone,
			Reason: "rotation"}); err != nil {
			return fmt.Errorf("announce the new log key in the audit log: %w", err)
		}
		return nil
	})
}

// TrustedCheckpointPath is where brokerd keeps the last checkpoint it
// verified: BROKER_TRUSTED_CHECKPOINT, else <BROKER_KEY_DIR>/trusted-checkpoint.
func (s *System) TrustedCheckpointPath() string {
	if s.Config.Keys.TrustedCheckpoint != "" {
		return s.Config.Keys.TrustedCheckpoint
	}
	return filepath.Join(s.Config.Keys.Dir, "trusted-checkpoint")
}

// auditWitnessInterval is how often brokerd verifies the latest checkpoint
// against the trusted one on its own (the dashboard checks on every view).
const auditWitnessInterval = 10 * time.Second

// RunAuditWitness verifies the log's latest checkpoint at once and then
// every few seconds until ctx ends, with the dashboard's witness: the
// trusted checkpoint file and the metric
// sieve_audit_trusted_checkpoint_mismatch stay current without an officer
// looking. It needs the HTTP application built (System.HTTP).
func (s *System) RunAuditWitness(ctx context.Context) error {
	if s.auditUI == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(auditWitnessInterval)
	defer t.Stop()
	for {
		st := s.auditUI.CheckAudit(ctx)
		if !st.OK && ctx.Err() == nil {
			s.Log.Error("audit log verification failed", "mismatch", st.Mismatch, "size", st.Checkpoint.Size,
				"trusted_size", st.PrevSize)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// withTrust wires the dashboard's witness to the trusted checkpoint file
// and, when reg is set, to the mismatch gauge.
func (s *System) withTrust(d *ui.Deps, reg *prometheus.Registry) {
	d.Trusted = keydir.TrustFile{Path: s.TrustedCheckpointPath()}
	if reg == nil {
		return
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sieve_audit_trusted_checkpoint_mismatch",
		Help: "1 when the stored audit log is not an append-only extension of the last checkpoint verified (kept outside the database), else 0."})
	if err := reg.Register(g); err != nil {
		s.Log.Warn("metrics: audit trust gauge", "err", err)
		return
	}
	d.OnCheck = func(st ui.CheckStatus) {
		if st.Mismatch {
			g.Set(1)
		} else if st.OK {
			g.Set(0)
		}
	}
}
