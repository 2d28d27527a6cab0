package postgres

import (
	"context"
	"time"
)

// RunAuditSequencerRestarting runs the sequencer (RunAuditSequencer) with
// config() until ctx ends, and restarts it with a fresh config() whenever
// keys() answers differently from when the run began: keys names the
// signing keys in force, so a log key rotated by another process (brokerctl)
// or the end of a handover takes effect without a restart of the server.
// keys is asked every interval; it may reload key files. A sequencer that
// stops on its own ends this with its error.
func (lg *AuditLog) RunAuditSequencerRestarting(ctx context.Context, config func() SequencerConfig, keys func() string, every time.Duration) error {
	return runRestarting(ctx, func(ctx context.Context) error { return lg.RunAuditSequencer(ctx, config()) }, keys, every)
}

// runRestarting runs run until ctx ends, restarting it whenever version()
// changes (asked every interval). When run returns on its own, so does
// runRestarting: nil if ctx ended, else run's error.
func runRestarting(ctx context.Context, run func(context.Context) error, version func() string, every time.Duration) error {
	for ctx.Err() == nil {
		v := version()
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- run(runCtx) }()
		tick := time.NewTicker(every)
	watch:
		for {
			select {
			case err := <-done:
				tick.Stop()
				cancel()
				if ctx.Err() != nil {
					return nil
				}
				return err
			case <-tick.C:
				if version() != v {
					break watch
				}
			}
		}
		tick.Stop()
		cancel()
		<-done
	}
	return nil
}
