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

// RunKeyRotation runs the key schedule until ctx ends, the first round soon
// after start.
func (s *System) RunKeyRotation(ctx context.Context) error {
	return s.KeyRotation().RunSchedule(ctx, 15*time.Second, s.Log)
}
