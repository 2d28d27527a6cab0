package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/broker/httpapi"
	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// Main is the broker process: Run starts it, Close stops it in reverse
// order of start. Tests run it on 127.0.0.1:0.
type Main struct {
	Config config.Config
	Log    *slog.Logger
	// Extra lets tests adjust the HTTP dependencies.
	Extra func(*httpapi.Deps)

	Sys  *wire.System
	HTTP *httpapi.Server

	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan error
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Done reports the HTTP server stopping on its own.
func (m *Main) Done() <-chan error { return m.done }

// Run opens the system, migrates (under an advisory lock, so processes
// starting together do not race), starts the background work and serves.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.Default()
	}
	sys, err := wire.Open(ctx, m.Config, m.Log)
	if err != nil {
		return err
	}
	m.Sys = sys
	if _, err := sys.Migrate(ctx); err != nil {
		sys.Close()
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.start(bg, "audit sequencer", func(ctx context.Context) error { return sys.RunAuditSequencer(ctx) })
	m.start(bg, "inbox workers", func(ctx context.Context) error {
		return sys.Service.RunWorkers(ctx, m.Config.Workers.Workers)
	})
	m.start(bg, "outbox sender", sys.Service.RunSender)
	m.start(bg, "offer sweeper", sys.Market.RunOfferSweeper)
	m.start(bg, "erasure listener", func(ctx context.Context) error {
		sys.Stores.Rights.ListenErasures(ctx, sys.Service.ForgetSubject)
		return nil
	})
	m.start(bg, "age key rotation", sys.RunKeyRotation)
	m.start(bg, "retention holds", func(ctx context.Context) error {
		sys.Holds.Run(ctx, m.Config.Workers.RetentionInterval)
		return nil
	})
	m.start(bg, "recipient notices", func(ctx context.Context) error {
		sys.Notices.Run(ctx, m.Config.Workers.NoticeRefresh)
		return nil
	})
	m.start(bg, "grievance escalation", func(ctx context.Context) error { return sys.RunDesk(ctx, time.Minute) })
	m.start(bg, "retention sweeper", func(ctx context.Context) error {
		return sys.RunRetention(ctx, m.Config.Workers.RetentionInterval)
	})
	m.HTTP = sys.HTTP(m.Extra)
	m.start(bg, "audit witness", sys.RunAuditWitness)
	if sys.Witnesses != nil {
		inc := sys.Service.Metrics
		m.start(bg, "witness cosigner", func(ctx context.Context) error { return sys.RunCosigner(ctx, inc) })
	}
	m.ln, err = net.Listen("tcp", m.Config.Server.Addr)
	if err != nil {
		m.Close(context.Background()) //nolint:errcheck
		return err
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.HTTP.Serve(m.ln) }()
	return nil
}

func (m *Main) start(ctx context.Context, name string, fn func(context.Context) error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for ctx.Err() == nil {
			err := fn(ctx)
			if ctx.Err() != nil {
				return
			}
			m.Log.Error("background task stopped; restarting", "task", name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
}

// Close stops serving (draining in-flight requests), then the background
// work, then the database, all within ctx's deadline.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.HTTP != nil {
		if err := m.HTTP.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.cancel != nil {
		m.cancel()
		waited := make(chan struct{})
		go func() { m.wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			errs = append(errs, errors.New("background work did not stop in time"))
		}
	}
	if m.Sys != nil {
		// Group-committed audit entries in flight finish before the pool
		// closes: their callers were answered, so they must land.
		if err := m.Sys.DB.Audit().DrainAudit(ctx); err != nil {
			errs = append(errs, err)
		}
		m.Sys.Close()
	}
	return errors.Join(errs...)
}
