package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/token"
)

func init() {
	register("officer create", "officer create --name N [--reset] [--json]", cmdOfficerCreate)
	register("officer list", "officer list [--json]", cmdOfficerList)
	register("officer disable", "officer disable NAME   (ends their sessions at once)", cmdOfficerDisable)
	register("officer enable", "officer enable NAME", cmdOfficerEnable)
}

// passwordAlphabet leaves out look-alikes (0/o, 1/l/i) and anything a
// shell, a URL or a form would treat specially, so the password can be
// read aloud and typed.
const passwordAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// newPassword returns a one-time password: four groups of five characters
// of passwordAlphabet (about 99 bits), like "k7m2q-…".
func newPassword() string {
	const groups, per = 4, 5
	var b strings.Builder
	buf := make([]byte, 1)
	for g := range groups {
		if g > 0 {
			b.WriteByte('-')
		}
		for n := 0; n < per; {
			_, _ = rand.Read(buf) // never fails (crypto/rand, Go ≥ 1.24)
			// Rejection sampling keeps every character equally likely.
			if int(buf[0]) >= 256/len(passwordAlphabet)*len(passwordAlphabet) {
				continue
			}
			b.WriteByte(passwordAlphabet[int(buf[0])%len(passwordAlphabet)])
			n++
		}
	}
	return b.String()
}

// validOfficerName accepts names people and scripts can type: letters,
// digits, '.', '_', '-' and '@', up to 64 characters.
func validOfficerName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@", r) {
			return false
		}
	}
	return true
}

// cmdOfficerCreate creates a compliance officer and prints the one-time
// password (stored only as its argon2id hash). With --reset an existing
// officer gets a new password instead and every session of theirs ends; a
// missing one is created, so `make run` can print a login every time.
func cmdOfficerCreate(ctx context.Context, c *cli, args []string) error {
	fs := flags("officer create")
	name := fs.String("name", "", "the officer's sign-in name")
	reset := fs.Bool("reset", false, "issue a new password when the officer exists")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	if !validOfficerName(*name) {
		return usageError{"--name is required: up to 64 letters, digits, '.', '_', '-' or '@'"}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	password := newPassword()
	hash, err := token.HashSecret(password)
	if err != nil {
		return err
	}
	status := "created"
	existing, err := db.Officers().OfficerByName(ctx, *name)
	switch {
	case err == nil && !*reset:
		return fmt.Errorf("officer %s exists (use --reset to issue a new password)", *name)
	case err == nil:
		if err := db.Officers().SetPassword(ctx, existing.ID, hash); err != nil {
			return err
		}
		status = "reset"
	case broker.IsNotFound(err):
		_, err = db.Officers().Create(ctx, broker.Officer{ID: broker.NewID("off"), Name: *name, PasswordHash: hash})
		if broker.ErrorCode(err) == broker.EConflict && *reset {
			// Created by a concurrent run in between: reset that one.
			if existing, err = db.Officers().OfficerByName(ctx, *name); err == nil {
				err = db.Officers().SetPassword(ctx, existing.ID, hash)
				status = "reset"
			}
		}
		if err != nil {
			return err
		}
	default:
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]string{"name": *name, "password": password, "status": status})
	}
	// One line, so that scripts (and make run) can show it as is.
	fmt.Fprintf(c.stdout, "%s / %s\n", *name, password)
	fmt.Fprintln(c.stderr, "officer "+status+": sign in at /ui with this name and this one-time password, shown only now;"+
		" the first sign-in asks for a new one")
	return nil
}

// cmdOfficerList prints the officers, oldest first: whether each still
// holds the one-time password brokerctl printed, and whether they are
// disabled. No password or hash is shown.
func cmdOfficerList(ctx context.Context, c *cli, args []string) error {
	fs := flags("officer list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	officers, err := db.Officers().List(ctx)
	if err != nil {
		return err
	}
	type row struct {
		ID            string    `json:"id"`
		Name          string    `json:"name"`
		OneTime       bool      `json:"one_time_password"`
		PasswordSetAt time.Time `json:"password_set_at"`
		Disabled      bool      `json:"disabled"`
		CreatedAt     time.Time `json:"created_at"`
	}
	rows := make([]row, 0, len(officers))
	for _, o := range officers {
		rows = append(rows, row{o.ID, o.Name, o.PasswordTemporary, o.PasswordSetAt, o.Disabled, o.CreatedAt})
	}
	if *asJSON {
		return printJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPASSWORD\tSET\tDISABLED")
	for _, r := range rows {
		pw := "own"
		if r.OneTime {
			pw = "one-time (not yet changed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", r.Name, r.ID, pw, r.PasswordSetAt.UTC().Format(time.DateTime), r.Disabled)
	}
	return tw.Flush()
}

func cmdOfficerDisable(ctx context.Context, c *cli, args []string) error {
	return setOfficerDisabled(ctx, c, args, true)
}

func cmdOfficerEnable(ctx context.Context, c *cli, args []string) error {
	return setOfficerDisabled(ctx, c, args, false)
}

// setOfficerDisabled disables (ending every session at once) or re-enables
// the officer named by the one argument.
func setOfficerDisabled(ctx context.Context, c *cli, args []string, disabled bool) error {
	name, rest, err := oneArg(args, "NAME")
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{"unexpected argument " + rest[0]}
	}
	db, err := c.database(ctx)
	if err != nil {
		return err
	}
	o, err := db.Officers().OfficerByName(ctx, name)
	if broker.IsNotFound(err) {
		return fmt.Errorf("no officer is named %s (brokerctl officer list shows them)", name)
	}
	if err != nil {
		return err
	}
	if err := db.Officers().SetDisabled(ctx, o.ID, disabled); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "officer %s %s\n", name, map[bool]string{true: "disabled", false: "enabled"}[disabled])
	return nil
}
