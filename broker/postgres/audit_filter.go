package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// MaxAuditPage bounds the limit of AuditEntries.
const MaxAuditPage = 1000

// AuditEntries returns a page of entries matching f, newest (highest
// index) first, after the position cursor ("" for the first page), and the
// cursor of the next page ("" after the last). limit ≤ 0 means 50. A bad
// cursor is EInvalid.
func (rp *AuditReports) AuditEntries(ctx context.Context, f broker.AuditFilter, cursor string, limit int) ([]audit.Entry, string, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxAuditPage)
	w, err := rp.auditWhere(ctx, f)
	if err != nil || w.empty {
		return nil, "", err
	}
	if cursor != "" {
		before, err := decodeAuditCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		w.add("idx < $%d", before)
	}
	sql := "SELECT idx, leaf FROM audit_entries" + w.sql() + fmt.Sprintf(" ORDER BY idx DESC LIMIT %d", limit+1)
	rows, err := rp.db.q(ctx).Query(ctx, sql, w.customPlan()...)
	if err != nil {
		return nil, "", Translate(err)
	}
	var out []audit.Entry
	var lastIdx, idx int64
	var leaf []byte
	more := false
	_, err = pgx.ForEachRow(rows, []any{&idx, &leaf}, func() error {
		if len(out) == limit {
			more = true
			return nil
		}
		e, err := audit.ParseEntry(leaf)
		if err != nil {
			return fmt.Errorf("stored audit leaf %d: %w", idx, err)
		}
		out, lastIdx = append(out, e), idx
		return nil
	})
	if err != nil {
		return nil, "", Translate(err)
	}
	next := ""
	if more {
		next = encodeAuditCursor(lastIdx)
	}
	return out, next, nil
}

func encodeAuditCursor(idx int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(idx, 10)))
}

func decodeAuditCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	s, ok := strings.CutPrefix(string(b), "a1:")
	if err != nil || !ok {
		return 0, broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, broker.Errorf(broker.EInvalid, "invalid cursor")
	}
	return n, nil
}

// auditConds is a conjunction of SQL conditions with positional arguments.
type auditConds struct {
	conds []string
	args  []any
	empty bool // provably selects nothing
}

func (w *auditConds) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// customPlan returns the arguments for a query that must be planned with
// their values: the unnamed statement (pgx's describe-cache mode) is never
// given a generic plan, which for these filters would not know whether a
// value is common or rare, nor how wide an idx window is.
func (w *auditConds) customPlan() []any {
	return append([]any{pgx.QueryExecModeCacheDescribe}, w.args...)
}

func (w *auditConds) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// auditWhere turns a filter into conditions. A time range also becomes an
// idx range, which keeps every filtered scan short however old the range:
// time_hwm (the running maximum of time) is monotonic in idx, and no entry
// is older than the time_hwm before it by more than audit_tree.max_lag_us,
// so entries with From <= time < To lie within
// [first idx with time_hwm >= From, first idx with time_hwm >= To + max_lag].
func (rp *AuditReports) auditWhere(ctx context.Context, f broker.AuditFilter) (*auditConds, error) {
	w := &auditConds{}
	for _, c := range []struct{ col, v string }{{"subject", f.Subject}, {"actor", f.Actor},
		{"purpose", f.Purpose}, {"outcome", f.Outcome}, {"action", f.Action}} {
		if c.v != "" {
			w.add(c.col+" = $%d", c.v)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, broker.Errorf(broker.EInvalid, "from must be before to")
	}
	q := rp.db.q(ctx)
	if !f.From.IsZero() {
		var lo int64
		err := q.QueryRow(ctx, sqlAuditHwmIndex, f.From).Scan(&lo)
		if errors.Is(err, pgx.ErrNoRows) {
			w.empty = true
			return w, nil
		}
		if err != nil {
			return nil, Translate(err)
		}
		w.add("idx >= $%d", lo)
		w.add("time >= $%d", f.From)
	}
	if !f.To.IsZero() {
		var lag int64
		if err := q.QueryRow(ctx, sqlAuditMaxLag).Scan(&lag); err != nil {
			return nil, Translate(err)
		}
		var hi int64
		err := q.QueryRow(ctx, sqlAuditHwmIndex, f.To.Add(time.Duration(lag)*time.Microsecond)).Scan(&hi)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, Translate(err)
		}
		if err == nil {
			w.add("idx <= $%d", hi)
		}
		w.add("time < $%d", f.To)
	}
	return w, nil
}
