package postgres

// RouterQueries are the hot statements that name one shopper (or one
// lookup key), by the constants the store runs, with arguments for one
// shopper; TestCitusHotQueriesAreRouterQueries EXPLAINs them on Citus.
var RouterQueries = map[string]struct {
	SQL  string
	Args func(subject string, index []byte) []any
}{
	"subject by id":          {sqlSubjectByID, func(s string, _ []byte) []any { return []any{s} }},
	"turn: subjects":         {sqlTurnSubjects, func(s string, _ []byte) []any { return []any{[]string{s}} }},
	"turn: pending inbox":    {sqlTurnInbox, func(s string, _ []byte) []any { return []any{[]string{s}, 50} }},
	"turn: inbox done":       {sqlTurnDone, func(s string, _ []byte) []any { return []any{[]int64{1}, []string{s}} }},
	"blind index lookup":     {sqlSubjectsByIndexes, func(_ string, ix []byte) []any { return []any{[][]byte{ix}} }},
	"erase: shopper's rows":  {sqlEraseSubject, func(s string, _ []byte) []any { return []any{s} }},
	"erase: orders":          {sqlEraseOrders, func(s string, _ []byte) []any { return []any{s} }},
	"order index lookup":     {sqlOrderIndex, func(_ string, _ []byte) []any { return []any{"ord_x"} }},
	"order with its shopper": {sqlOrderWithSubject + ` WHERE o.id = $1 AND o.subject_id = $2`, func(s string, _ []byte) []any { return []any{"ord_x", s} }},
	"order update with its shopper": {`UPDATE orders SET status = $3, updated_at = now() WHERE id = $1 AND status = $2 AND subject_id = $4`,
		func(s string, _ []byte) []any { return []any{"ord_x", "routing", "placed", s} }},
	"order lock": {`SELECT status FROM orders WHERE subject_id = $2 AND id = $1 FOR UPDATE`, func(s string, _ []byte) []any { return []any{"ord_x", s} }},
}
