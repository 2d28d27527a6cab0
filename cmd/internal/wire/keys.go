package wire

import (
	"cmp"
	"context"
	"time"

	"github.com/sieve-broker/sieve/broker/seal"
)

// KeyRotation is the age-identity schedule of the configuration
// (BROKER_KEY_ROTATION, BROKER_BACKUP_RETENTION), locked across processes
// through the database.
func (s *System) KeyRotation() *seal.Rotation {
	// A configuration assembled without SetDefaults still gets a schedule.
	return &seal.Rotation{Sealer: s.Sealer, Every: cmp.Or(s.Config.Keys.Rotation, seal.DefaultKeyRotation),
		BackupRetention: cmp.Or(s.Config.Keys.BackupRetention, seal.DefaultBackupRetention), Lock: s.DB}
}

// keyCheckInterval is how often brokerd looks whether a rotation or a
// retirement is due: an eighth of the rotation period, between a minute
// and an hour. It adds at most two intervals to the backup bound.
func keyCheckInterval(rotation time.Duration) time.Duration {
	return min(time.Hour, max(time.Minute, rotation/8))
}

// RunKeyRotation runs the key schedule until ctx ends: a run soon after
// start, then one every check interval. Only one process works at a time;
// the others skip.
func (s *System) RunKeyRotation(ctx context.Context) error {
	rot := s.KeyRotation()
	if err := rot.Validate(); err != nil {
		return err
	}
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := rot.Run(ctx, false)
		switch {
		case err != nil:
			s.Log.Warn("age key rotation", "err", err)
		case res.Rotated != "" || len(res.Retired) > 0:
			// Key ids are public (a hash of the recipient).
			s.Log.Info("age key rotation", "rotated", res.Rotated, "rewrapped", res.Rewrapped, "retired", res.Retired)
		}
		t.Reset(keyCheckInterval(rot.Every))
	}
}
