package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// Lanes split the outbox so that senders can run side by side: every item
// is in exactly one lane, and all items of one shopper (and partner) are in
// the same lane, so nobody's messages are reordered.
func TestOutboxLanesPartitionByShopper(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	type key struct{ subject, partner string }
	want := map[int64]key{}
	for i := range 60 {
		k := key{subject: fmt.Sprintf("sub_%02d", i%12)}
		kind := "whatsapp"
		if i%5 == 0 {
			k.partner, kind = fmt.Sprintf("partner-%d", i%2), "partner"
		}
		id, err := db.Outbox.Enqueue(ctx, commerce.OutboxItem{Ref: fmt.Sprintf("ref-%d", i), Kind: kind, Subject: k.subject,
			Partner: k.partner, Sealed: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = k
	}
	const lanes = 4
	laneOf := map[key]int{}
	claimed := map[int64]bool{}
	used := 0
	for lane := range lanes {
		items, err := db.Outbox.ClaimOutbox(ctx, 1000, time.Minute, commerce.OutboxLane{Index: lane, Of: lanes})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > 0 {
			used++
		}
		for _, it := range items {
			if claimed[it.ID] {
				t.Fatalf("item %d claimed in two lanes", it.ID)
			}
			claimed[it.ID] = true
			k := key{it.Subject, it.Partner}
			if k != want[it.ID] {
				t.Fatalf("item %d came back as %+v, want %+v", it.ID, k, want[it.ID])
			}
			if l, ok := laneOf[k]; ok && l != lane {
				t.Fatalf("%+v is in lanes %d and %d", k, l, lane)
			}
			laneOf[k] = lane
		}
	}
	if len(claimed) != len(want) {
		t.Fatalf("lanes claimed %d of %d items", len(claimed), len(want))
	}
	if used < 2 {
		t.Errorf("all items fell in one lane of %d", lanes)
	}
	// Leased items are not offered again, in any lane or in the whole outbox.
	if items, err := db.Outbox.ClaimOutbox(ctx, 1000, time.Minute, commerce.OutboxLane{}); err != nil || len(items) != 0 {
		t.Fatalf("claim after the lanes took everything = %d items, %v", len(items), err)
	}
	for _, bad := range []commerce.OutboxLane{{Index: 4, Of: 4}, {Index: -1, Of: 4}, {Index: 1, Of: 0}} {
		if _, err := db.Outbox.ClaimOutbox(ctx, 10, time.Minute, bad); broker.ErrorCode(err) != broker.EInvalid {
			t.Errorf("lane %+v: err = %v, want invalid", bad, err)
		}
	}
}

// Sent marks written concurrently are group-committed and each one lands.
func TestOutboxSentMarksGroupCommit(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	var ids []int64
	for i := range 50 {
		id, err := db.Outbox.Enqueue(ctx, commerce.OutboxItem{Ref: fmt.Sprintf("m-%d", i), Kind: "whatsapp", Subject: "sub_a",
			VaultSealed: i%2 == 0, Sealed: []byte("payload")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	errs := make(chan error, len(ids))
	for i, id := range ids {
		go func() { errs <- db.Outbox.OutboxSent(ctx, id, fmt.Sprintf("wamid.%d", i)) }()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var sent, withPayload, vaultWithPayload int
	if err := db.DB.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent' AND provider_id = 'wamid.' || (id - $1)),
		count(*) FILTER (WHERE sealed IS NOT NULL), count(*) FILTER (WHERE vault_sealed AND sealed IS NOT NULL) FROM outbox`,
		ids[0]).Scan(&sent, &withPayload, &vaultWithPayload); err != nil {
		t.Fatal(err)
	}
	if sent != len(ids) || withPayload != len(ids)/2 || vaultWithPayload != 0 {
		t.Errorf("sent %d (want %d), with payload %d (want %d), vault-sealed with payload %d (want 0)",
			sent, len(ids), withPayload, len(ids)/2, vaultWithPayload)
	}
}

// Delivery statuses from concurrent webhook requests are group-committed:
// requests that carry statuses of the same messages, in any order, leave
// each message at its highest status (failed is final), a status never
// moves back, and batches that share messages do not deadlock.
func TestMessageStatusesGroupCommit(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	const messages = 40
	st := func(i int, s string) commerce.MessageStatus {
		return commerce.MessageStatus{ProviderID: fmt.Sprintf("wamid.%d", i), Subject: "sub_a", Status: s}
	}
	var reqs [][]commerce.MessageStatus
	for i := range messages {
		reqs = append(reqs, []commerce.MessageStatus{st(i, "read")}, []commerce.MessageStatus{st(i, "sent"), st(i, "delivered")})
		if i%10 == 0 {
			failed := st(i, "failed")
			failed.ErrCode = 131026
			reqs = append(reqs, []commerce.MessageStatus{failed})
		}
	}
	// Requests that each carry every message, each from another one and in
	// either direction, enough for several batches at once: without a
	// common lock order, concurrent batches deadlock.
	for r := range 200 {
		var sts []commerce.MessageStatus
		for k := range messages {
			i := (r*7 + k) % messages
			if r%2 == 1 {
				i = messages - 1 - i
			}
			sts = append(sts, st(i, "delivered"))
		}
		reqs = append(reqs, sts)
	}
	errs := make(chan error, len(reqs))
	for _, r := range reqs {
		go func() { errs <- db.Outbox.ApplyMessageStatuses(ctx, r) }()
	}
	for range reqs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A late "delivered" does not move anything back.
	if err := db.Outbox.ApplyMessageStatuses(ctx, []commerce.MessageStatus{{ProviderID: "wamid.1", Subject: "sub_a", Status: "delivered"}}); err != nil {
		t.Fatal(err)
	}
	var read, failed, other int
	if err := db.DB.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'read' AND error_code IS NULL),
		count(*) FILTER (WHERE status = 'failed' AND error_code = 131026), count(*) FILTER (WHERE status NOT IN ('read', 'failed'))
		FROM message_status`).Scan(&read, &failed, &other); err != nil {
		t.Fatal(err)
	}
	if read != messages-messages/10 || failed != messages/10 || other != 0 {
		t.Errorf("read %d (want %d), failed %d (want %d), other %d", read, messages-messages/10, failed, messages/10, other)
	}
}
