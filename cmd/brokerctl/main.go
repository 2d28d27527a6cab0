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

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
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
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	sys    *wire.System
	db     *postgres.DB
	// operatorFlag is --operator as given (validated); see actor.
	operatorFlag string
}

// database opens only the database, for commands that need no key and no
// WhatsApp setting (migrate, catalog, partner list, officers, audit
// export): `brokerctl migrate` must work in production before keys exist.
func (c *cli) database(ctx context.Context) (*postgres.DB, error) {
	if c.sys != nil {
		return c.sys.DB, nil
	}
	if c.db != nil {
		return c.db, nil
	}
	if err := c.cfg.ValidateDatabase(); err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, c.cfg.Database.URL, postgres.Options{MaxConns: 4, AppName: "brokerctl"})
	if err != nil {
		return nil, err
	}
	c.db = db
	return db, nil
}

// system opens the broker's whole system lazily (not every command needs
// it). It never creates a key the database's data was not made with: see
// guardKeyCreation.
func (c *cli) system(ctx context.Context) (*wire.System, error) {
	if c.sys != nil {
		return c.sys, nil
	}
	if err := c.cfg.Validate(); err != nil {
		return nil, err
	}
	if err := c.guardKeyCreation(ctx, c.cfg.Keys.Create); err != nil {
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
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := config.FromEnv(getenv)
	cfg.SetDefaults()
	c := &cli{cfg: cfg, getenv: getenv, stdout: stdout, stderr: stderr}
	defer func() {
		if c.sys != nil {
			c.sys.Close()
		}
		if c.db != nil {
			c.db.Close()
		}
	}()
	args, op, err := takeOperator(args)
	if err != nil {
		fmt.Fprintln(stderr, "brokerctl:", err)
		return 2
	}
	c.operatorFlag = op
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
		fmt.Fprintln(stderr, "brokerctl:", describe(err))
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// describe turns an error into the one line brokerctl prints. A broker
// error shows its code and message, never its cause: the cause of a store
// error is PostgreSQL's own text, which names constraints and may quote
// the conflicting key (a blind index, a phone number's digits). A raw
// PostgreSQL error is reduced to its SQLSTATE for the same reason.
func describe(err error) string {
	var be *broker.Error
	if !errors.As(err, &be) {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return oneLine(err.Error())
		}
		if !errors.As(postgres.Translate(pe), &be) {
			return "database error (SQLSTATE " + pe.Code + ")"
		}
	}
	msg := be.Code + ": " + be.Message
	if be.Code == broker.EUnavailable {
		msg += " (is PostgreSQL running at DATABASE_URL?)"
	}
	return oneLine(msg)
}

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
	fmt.Fprintln(w, "\nEvery command takes --operator NAME (or SIEVE_OPERATOR): the officer its audit entries name;"+
		" the login name by default.")
	fmt.Fprintln(w, "Configuration comes from the environment (DATABASE_URL, BROKER_KEY_DIR, …); see README.md.")
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
