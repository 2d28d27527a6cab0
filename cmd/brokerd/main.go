// Command brokerd is the Sieve broker: the WhatsApp webhook, the partner
// API, the compliance API and dashboard, and the background work (inbox
// worker, outbox sender, audit sequencer, retention sweeper).
//
// Configuration comes from the environment (SPEC §3); brokerd exits 0
// within 10 s of SIGTERM, draining in-flight work.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sieve-broker/sieve/cmd/internal/config"
)

// defaultMemoryLimit is the soft memory limit when GOMEMLIMIT is unset.
const defaultMemoryLimit = 160 << 20

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := config.FromEnv(os.Getenv)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "brokerd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps the heap (and so RSS) in check under bursts;
		// GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if addr := os.Getenv("BROKER_PPROF_ADDR"); addr != "" {
		startPprof(addr, log)
	}
	m := &Main{Config: cfg, Log: log}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "brokerd:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "brokerd: serving on http://%s (dashboard %s/ui)\n", m.Addr(), cfg.Server.Issuer)
	select {
	case <-ctx.Done():
	case err := <-m.Done():
		if err != nil {
			log.Error("server stopped", "err", err)
		}
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := m.Close(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
}
