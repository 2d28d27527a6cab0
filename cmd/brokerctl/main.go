// Command brokerctl is the operator's and compliance officer's CLI:
// migrations, keys, partners, officers, catalog, audit log verification and
// export, data-subject requests and reports.
//
// It exits 0 on success and non-zero with a one-line error on stderr
// otherwise; --json prints data as JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/sieve-broker/sieve/cmd/internal/config"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// command is one subcommand.
type command struct {
	usage string
	run   func(ctx context.Context, c *cli, args []string) error
}

var commands = map[string]command{}

func register(name, usage string, run func(ctx context.Context, c *cli, args []string) error) {
	commands[name] = command{usage: usage, run: run}
}

// cli carries what subcommands share.
type cli struct {
	cfg    config.Config
	stdout io.Writer
	stderr io.Writer
	sys    *wire.System
}

// system opens the broker's system lazily (not every command needs it).
func (c *cli) system(ctx context.Context) (*wire.System, error) {
	if c.sys != nil {
		return c.sys, nil
	}
	if err := c.cfg.Validate(); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys, err := wire.Open(ctx, c.cfg, log)
	if err != nil {
		return nil, err
	}
	c.sys = sys
	return sys, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg := config.FromEnv(getenv)
	cfg.SetDefaults()
	c := &cli{cfg: cfg, stdout: stdout, stderr: stderr}
	defer func() {
		if c.sys != nil {
			c.sys.Close()
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	name := args[0]
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if _, ok := commands[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "brokerctl: unknown command %q (brokerctl help lists them)\n", strings.Join(args[:min(2, len(args))], " "))
		return 2
	}
	if err := cmd.run(ctx, c, rest); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "brokerctl %s: %s (usage: brokerctl %s)\n", name, ue.msg, cmd.usage)
			return 2
		}
		var ee exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, "brokerctl:", oneLine(ee.err.Error()))
			return ee.code
		}
		fmt.Fprintln(stderr, "brokerctl:", oneLine(err.Error()))
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func usage(w io.Writer) {
	fmt.Fprintln(w, "brokerctl — Sieve operator and compliance CLI\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  brokerctl %s\n", commands[n].usage)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment (DATABASE_URL, BROKER_KEY_DIR, …); see README.md.")
}

// flags returns a flag set that reports errors as usage errors.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	return nil
}
