package wire

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/commerce/httpapi/ui"
)

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
// new key is announced in the log (broker.Recorder.AnnounceLogKey), and for the
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
		return s.Releaser.Recorder().AnnounceLogKey(ctx, vkey)
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

// RunAuditWitness runs the dashboard's witness (ui.UI.WatchAudit) every
// few seconds until ctx ends. It needs the HTTP application built
// (System.HTTP); without the dashboard it only waits.
func (s *System) RunAuditWitness(ctx context.Context) error {
	if s.auditUI == nil {
		<-ctx.Done()
		return nil
	}
	s.auditUI.WatchAudit(ctx, auditWitnessInterval)
	return nil
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
