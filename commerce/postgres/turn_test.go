package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// A worker reads and writes a whole group of shoppers' turns with one
// statement per table: each shopper gets exactly its own events, row and
// session; a shopper another worker holds is skipped; and the writes land
// per shopper, outbox items in order.
func TestTurnsReadAndWriteAGroup(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	subs := []string{"sub_a", "sub_b", "sub_held"}
	for i, s := range subs {
		if _, _, err := db.Subjects.EnsureSubject(ctx, []byte(fmt.Sprintf("index-%d", i)), s); err != nil {
			t.Fatal(err)
		}
	}
	var items []commerce.InboxItem
	for i, s := range []string{"sub_a", "sub_b", "sub_a", "sub_held"} {
		items = append(items, commerce.InboxItem{DedupKey: fmt.Sprintf("m:%d", i), Subject: s, Kind: "message",
			Store: "store-1", Sealed: []byte(fmt.Sprintf("event-%d", i))})
	}
	if n, err := db.Inbox.InsertInbox(ctx, items); err != nil || n != len(items) {
		t.Fatalf("InsertInbox = %d, %v", n, err)
	}
	// sub_b already has a session.
	if err := db.DB.InTx(ctx, func(ctx context.Context) error {
		return db.Turns.SaveTurns(ctx, []commerce.TurnWrite{{Subject: "sub_b", Store: "store-1", State: "browsing", Session: []byte("old")}})
	}); err != nil {
		t.Fatal(err)
	}
	// Another worker holds sub_held.
	other, err := db.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck
	if _, err := other.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sub_held', 7))`); err != nil {
		t.Fatal(err)
	}

	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	err = db.DB.InTx(ctx, func(ctx context.Context) error {
		group := []string{"sub_a", "sub_held", "sub_b", "sub_unknown"}
		states, err := db.Turns.LoadTurns(ctx, group, 100)
		if err != nil {
			return err
		}
		if len(states) != len(group) {
			t.Fatalf("%d states for %d shoppers", len(states), len(group))
		}
		a, held, b, unknown := states[0], states[1], states[2], states[3]
		if !a.Locked || !a.Found || a.Subject.ID != "sub_a" || a.Session != nil || len(a.Items) != 2 ||
			string(a.Items[0].Sealed) != "event-0" || string(a.Items[1].Sealed) != "event-2" {
			t.Fatalf("sub_a: %+v", a)
		}
		if held.Locked || len(held.Items) != 0 || held.Found {
			t.Fatalf("a shopper held by another worker was read: %+v", held)
		}
		if !b.Locked || !b.Found || b.Subject.ID != "sub_b" || string(b.Session) != "old" || len(b.Items) != 1 ||
			b.Items[0].Subject != "sub_b" {
			t.Fatalf("sub_b: %+v", b)
		}
		if !unknown.Locked || unknown.Found || len(unknown.Items) != 0 {
			t.Fatalf("sub_unknown: %+v", unknown)
		}
		out := func(s string, n int) (o []commerce.OutboxItem) {
			for i := range n {
				o = append(o, commerce.OutboxItem{Ref: fmt.Sprintf("%s-%d", s, i), Kind: "whatsapp", Subject: s,
					Sealed: []byte(fmt.Sprintf("%s reply %d", s, i))})
			}
			return o
		}
		return db.Turns.SaveTurns(ctx, []commerce.TurnWrite{
			{Subject: "sub_a", LastInbound: at, Out: out("sub_a", 3), Done: []int64{a.Items[0].ID, a.Items[1].ID},
				Store: "store-1", State: "cart", Session: []byte("a-session")},
			{Subject: "sub_b", Out: out("sub_b", 2), Done: []int64{b.Items[0].ID},
				Store: "store-1", State: "address", Session: []byte("new")},
		})
	})
	if err != nil {
		t.Fatal(err)
	}

	refs := map[string][]string{}
	var sub, ref string
	rows, _ := db.DB.Pool.Query(ctx, `SELECT subject_id, ref FROM outbox ORDER BY id`)
	if _, err := pgx.ForEachRow(rows, []any{&sub, &ref}, func() error {
		refs[sub] = append(refs[sub], ref)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(refs["sub_a"]) != "[sub_a-0 sub_a-1 sub_a-2]" || fmt.Sprint(refs["sub_b"]) != "[sub_b-0 sub_b-1]" {
		t.Fatalf("outbox in id order: %v", refs)
	}
	for _, c := range []struct{ sub, state, sealed string }{{"sub_a", "cart", "a-session"}, {"sub_b", "address", "new"}} {
		var state string
		var sealed []byte
		if err := db.DB.Pool.QueryRow(ctx, `SELECT state, sealed FROM sessions WHERE subject_id = $1`, c.sub).Scan(&state, &sealed); err != nil ||
			state != c.state || !bytes.Equal(sealed, []byte(c.sealed)) {
			t.Fatalf("session of %s = %q %q, %v", c.sub, state, sealed, err)
		}
	}
	var pending []string
	rows, _ = db.DB.Pool.Query(ctx, `SELECT subject_id FROM inbox WHERE processed_at IS NULL ORDER BY id`)
	if _, err := pgx.ForEachRow(rows, []any{&sub}, func() error {
		pending = append(pending, sub)
		return nil
	}); err != nil || fmt.Sprint(pending) != "[sub_held]" {
		t.Fatalf("pending after the turns: %v, %v", pending, err)
	}
	var last time.Time
	if err := db.DB.Pool.QueryRow(ctx, `SELECT last_inbound_at FROM subjects WHERE id = 'sub_a'`).Scan(&last); err != nil || !last.Equal(at) {
		t.Fatalf("sub_a last inbound = %v, %v", last, err)
	}
	var bLast *time.Time
	if err := db.DB.Pool.QueryRow(ctx, `SELECT last_inbound_at FROM subjects WHERE id = 'sub_b'`).Scan(&bLast); err != nil || bLast != nil {
		t.Fatalf("sub_b had no inbound message, but last inbound = %v, %v", bLast, err)
	}
}

// A turn that read events another turn processed meanwhile (on Citus, a
// commit on a lost worker shows only once recovered) does not commit its
// effects a second time; a turn that deleted its events (an erasure) does.
func TestSaveTurnsRefusesEventsProcessedMeanwhile(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	if _, _, err := db.Subjects.EnsureSubject(ctx, []byte("index-twice"), "sub_t"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Inbox.InsertInbox(ctx, []commerce.InboxItem{{DedupKey: "m:1", Subject: "sub_t", Kind: "message",
		Store: "store-1", Sealed: []byte("hi")}}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := db.DB.InTx(ctx, func(ctx context.Context) error {
		states, err := db.Turns.LoadTurns(ctx, []string{"sub_t"}, 10)
		for _, it := range states[0].Items {
			ids = append(ids, it.ID)
		}
		return err
	}); err != nil || len(ids) != 1 {
		t.Fatalf("LoadTurns: %v, %d items", err, len(ids))
	}
	reply := func(ref string) commerce.TurnWrite {
		return commerce.TurnWrite{Subject: "sub_t", Done: ids,
			Out: []commerce.OutboxItem{{Ref: ref, Kind: "whatsapp", Subject: "sub_t", Sealed: []byte("notice")}}}
	}
	if err := db.DB.InTx(ctx, func(ctx context.Context) error {
		return db.Turns.SaveTurns(ctx, []commerce.TurnWrite{reply("msg_first")})
	}); err != nil {
		t.Fatal(err)
	}
	err := db.DB.InTx(ctx, func(ctx context.Context) error {
		return db.Turns.SaveTurns(ctx, []commerce.TurnWrite{reply("msg_again")})
	})
	if broker.ErrorCode(err) != broker.EUnavailable {
		t.Fatalf("second turn over the same events = %v, want EUnavailable", err)
	}
	var n int
	if err := db.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject_id = 'sub_t'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d outbox items (%v), want the first turn's one", n, err)
	}
	// Deleted by the turn itself (an erasure): nothing to refuse.
	if err := db.DB.InTx(ctx, func(ctx context.Context) error {
		q := db.DB.Q(ctx)
		if _, err := q.Exec(ctx, `UPDATE inbox SET processed_at = NULL WHERE subject_id = 'sub_t'`); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM inbox WHERE subject_id = 'sub_t'`); err != nil {
			return err
		}
		return db.Turns.SaveTurns(ctx, []commerce.TurnWrite{reply("msg_erased")})
	}); err != nil {
		t.Fatalf("a turn that deleted its own events: %v", err)
	}
}
