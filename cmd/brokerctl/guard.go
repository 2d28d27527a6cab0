package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/keydir"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/seal"
	"github.com/sieve-broker/sieve/broker/token"
	"github.com/sieve-broker/sieve/cmd/internal/wire"
)

// missingKeys names the keys dir has no usable copy of (absent, or not
// loadable: either way the data cannot be read with it), loading each
// without creating anything; ageIDs are the age identities it holds.
func missingKeys(dir string) (missing, ageIDs []string) {
	if kr, err := seal.LoadKeyring(dir, false); err != nil {
		missing = append(missing, "age identity")
	} else {
		ageIDs = kr.IDs()
	}
	if _, err := token.LoadKeyring(dir, false); err != nil {
		missing = append(missing, "signing key")
	}
	if _, err := keydir.PseudonymKey(dir, false); err != nil {
		missing = append(missing, "pseudonym key")
	}
	return missing, ageIDs
}

// guardKeyCreation refuses to create keys the database's data was not
// made with. Run from another directory, the default relative
// BROKER_KEY_DIR names an empty directory, and keys created there
// silently would make `audit verify` report tampering that is not there,
// `subject export` answer "not found" (the blind index is keyed) and an
// erasure erase nothing. So when a key is missing and creation is on, the
// database is asked first: data keys wrapped to identities this directory
// lacks, signed checkpoints, shoppers, partners or officers mean the real
// key directory is elsewhere. Fail closed: a database that cannot be asked
// refuses too. The error names the directory as an absolute path.
func (c *cli) guardKeyCreation(ctx context.Context, create bool) error {
	dir := c.cfg.Keys.Dir
	if dir == "" {
		return nil // Validate reports it
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	missing, ageIDs := missingKeys(dir)
	if len(missing) == 0 {
		return nil
	}
	if !create {
		return fmt.Errorf("key directory %s (BROKER_KEY_DIR) has no usable %s; keys are not created when BROKER_ENV=production"+
			" (brokerctl keys init creates them)", abs, strings.Join(missing, ", "))
	}
	if c.cfg.Database.URL == "" {
		return nil // nothing to orphan: keys made before any database (keys init in production)
	}
	db, err := c.database(ctx)
	if err != nil {
		return fmt.Errorf("key directory %s has no usable %s; the database could not be checked before creating one: %s",
			abs, strings.Join(missing, ", "), describe(err))
	}
	if ageIDs == nil {
		ageIDs = []string{} // NOT (key_id = ANY(NULL)) would match nothing
	}
	h, err := holds(ctx, db, ageIDs)
	if err != nil {
		return fmt.Errorf("key directory %s has no usable %s; the database could not be checked before creating one: %s",
			abs, strings.Join(missing, ", "), describe(err))
	}
	if len(h) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to create keys in %s (BROKER_KEY_DIR; it has no usable %s): the database already holds %s;"+
		" set BROKER_KEY_DIR to the broker's key directory", abs, strings.Join(missing, ", "), strings.Join(h, ", "))
}

// holdsQueries are what a database can hold that was made with keys: each
// an EXISTS on one table ($1: the age identities the directory holds).
var holdsQueries = []struct{ table, query, what string }{
	{"subject_keys", "SELECT EXISTS (SELECT 1 FROM subject_keys WHERE NOT (key_id = ANY($1::text[])))",
		"data keys wrapped to age identities not in it"},
	{"audit_checkpoints", "SELECT EXISTS (SELECT 1 FROM audit_checkpoints)", "audit checkpoints signed by keys not in it"},
	{"audit_log", "SELECT EXISTS (SELECT 1 FROM audit_log)", "audit entries naming pseudonyms"},
	{"subjects", "SELECT EXISTS (SELECT 1 FROM subjects)", "shoppers indexed under a pseudonym key"},
	{"partners", "SELECT EXISTS (SELECT 1 FROM partners)", "partners"},
	{"officers", "SELECT EXISTS (SELECT 1 FROM officers)", "officers"},
}

// holds asks the database, table by table, what it holds that keys made:
// the descriptions of holdsQueries that hold. A table that does not exist
// yet (before `migrate`) holds nothing; a query naming it would fail at
// planning, hence to_regclass first.
func holds(ctx context.Context, db *postgres.DB, ageIDs []string) ([]string, error) {
	var found []string
	for _, q := range holdsQueries {
		var exists bool
		if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", q.table).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		var args []any
		if strings.Contains(q.query, "$1") {
			args = append(args, ageIDs)
		}
		var yes bool
		if err := db.Pool.QueryRow(ctx, q.query, args...).Scan(&yes); err != nil {
			return nil, err
		}
		if yes {
			found = append(found, q.what)
		}
	}
	return found, nil
}

// operatorName is what an operator name may be: it goes into audit leaves
// as officer:<name>, so it is short and plain.
var operatorName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// takeOperator removes --operator NAME (or --operator=NAME, one dash or
// two, before or after the command) from args and validates it.
func takeOperator(args []string) (rest []string, name string, err error) {
	rest = make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || flag != "operator" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, "", fmt.Errorf("--operator needs a name")
			}
			i++
			value = args[i]
		}
		if !operatorName.MatchString(value) {
			return nil, "", fmt.Errorf("--operator must be 1 to 32 of a-z, 0-9, '.', '_', '-' (starting with a letter or digit)")
		}
		name = value
	}
	return rest, name, nil
}

// actorSystem is the acting officer and the whole system, for the
// commands that change something in a shopper's name.
func (c *cli) actorSystem(ctx context.Context) (broker.Party, *wire.System, error) {
	actor, err := c.actor()
	if err != nil {
		return broker.Party{}, nil, err
	}
	sys, err := c.system(ctx)
	return actor, sys, err
}

// actor is the party the audit log names for this run's actions: the
// officer given by --operator, else SIEVE_OPERATOR, else the OS login name
// (so existing scripts keep working, now attributed to a person rather
// than to "brokerctl").
func (c *cli) actor() (broker.Party, error) {
	name, from := c.operatorFlag, "--operator"
	if name == "" {
		name, from = strings.TrimSpace(c.getenv("SIEVE_OPERATOR")), "SIEVE_OPERATOR"
	}
	if name == "" {
		from = "the login name"
		if u, err := user.Current(); err == nil {
			name = loginName(u.Username)
		} else if name = loginName(c.getenv("LOGNAME")); name == "" {
			// A container's uid without a passwd entry: the shell's idea.
			name = loginName(c.getenv("USER"))
		}
		if name == "" {
			return broker.Party{}, errors.New("who runs this? give --operator NAME or set SIEVE_OPERATOR (no login name found)")
		}
	}
	if !operatorName.MatchString(name) {
		return broker.Party{}, fmt.Errorf("%s is not a valid operator name (1 to 32 of a-z, 0-9, '.', '_', '-'); give --operator NAME", from)
	}
	return broker.Party{ID: name, Kind: broker.KindOfficer}, nil
}

// loginName reduces an OS account name to an operator name: lower case,
// without a Windows-style domain ("CORP\\Asha" is "asha").
func loginName(s string) string {
	if i := strings.LastIndexByte(s, '\\'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(s)
}

// createExport opens path for an export: never through a symbolic link,
// and never over an existing file unless force (then truncated).
func createExport(path string, force bool) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL | oNoFollow
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC | oNoFollow
	}
	f, err := os.OpenFile(path, flags, 0o600)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("%s exists: not overwritten (--force replaces it; --out - writes to stdout)", path)
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%s is a symbolic link: not followed", path)
	}
	return nil, err
}
