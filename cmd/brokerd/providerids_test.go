package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// subjectOf returns the subject id of a shopper known by phone digits.
func (h *harness) subjectOf(wa string) string {
	h.t.Helper()
	var s string
	err := h.m.Sys.DB.Pool.QueryRow(context.Background(), `SELECT subject_id FROM subject_identifiers WHERE blind_index = $1`,
		h.m.Sys.Pseudo.BlindIndex("wa", wa)).Scan(&s)
	if err != nil {
		h.t.Fatalf("subject of the shopper: %v", err)
	}
	return s
}

// providerColumns returns every value of the columns that hold provider
// ids (or their hashes).
func (h *harness) providerColumns() []string {
	h.t.Helper()
	rows, err := h.m.Sys.DB.Pool.Query(context.Background(), `SELECT dedup_key FROM inbox
		UNION ALL SELECT provider_id FROM message_status
		UNION ALL SELECT provider_id FROM outbox WHERE provider_id IS NOT NULL`)
	if err != nil {
		h.t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.t.Fatal(err)
	}
	return vs
}

// messageWithID is message() with a given message id.
func messageWithID(wa, id, text string) string {
	return fmt.Sprintf(`"contacts":[{"profile":{"name":"Asha Verma"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":%s,"type":"text","text":{"body":%q}}]`,
		wa, wa, id, ts(), text)
}

// TestProviderIDsKeyedPerShopperAndErased (SPEC §5.8): message ids (real
// format: they hold the phone number) are stored only as keyed hashes of
// the shopper and the id, deduplication and status matching are per
// shopper, and erasure leaves none of the shopper's, inbound or outbound.
func TestProviderIDsKeyedPerShopperAndErased(t *testing.T) {
	h := newHarness(t)
	const wa, other = "919811171111", "919811172222"
	orderID, ref, total := h.checkout(wa)
	h.pay(wa, ref, total)
	subject := h.subjectOf(wa)

	// Statuses of what was sent, by the real ids the Send API returned.
	var sentIDs []string
	for _, m := range h.wa.all() {
		if strings.TrimPrefix(m.To, "+") == wa {
			sentIDs = append(sentIDs, m.ID)
		}
	}
	if len(sentIDs) < 5 {
		t.Fatalf("only %d messages sent", len(sentIDs))
	}
	if u, ok := whatsapp.WAMIDUser(sentIDs[0]); !ok || u != wa {
		t.Fatalf("the fake Send API's ids are not in Meta's format: %q", sentIDs[0])
	}
	h.mustPost(statusMsg(wa, sentIDs[0], "read"))

	// Deduplication per sender: the same id from the same shopper is a
	// redelivery; from another sender it is that sender's own message.
	id := wamidFor(wa)
	h.mustPost(messageWithID(wa, id, "help"))
	h.waitIdle()
	inboxBefore := h.count(`SELECT count(*) FROM inbox`)
	h.mustPost(messageWithID(wa, id, "help"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM inbox`); n != inboxBefore {
		t.Errorf("a redelivered message was stored again: %d rows, was %d", n, inboxBefore)
	}
	h.mustPost(messageWithID(other, id, "Hi"))
	h.next(other, "privacy notice to the other sender", offers(commerce.IDConsentAccept))
	h.waitIdle()

	// At rest: keyed hashes only.
	stored := h.providerColumns()
	for _, v := range stored {
		if !strings.HasPrefix(v, broker.ProviderKeyPrefix) {
			t.Errorf("provider id column holds %q, not a keyed hash", v)
		}
	}
	var st string
	if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT status FROM message_status WHERE provider_id = $1 AND subject_id = $2`,
		h.m.Sys.Pseudo.ProviderKey(subject, sentIDs[0]), subject).Scan(&st); err != nil || st != "read" {
		t.Errorf("status of the first message: %q %v", st, err)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE provider_id = $1`, h.m.Sys.Pseudo.ProviderKey(subject, sentIDs[0])); n != 1 {
		t.Errorf("outbox rows with the first message's hashed id: %d", n)
	}
	// A status naming this shopper's message but another recipient
	// updates nothing of this shopper's.
	h.mustPost(statusMsg(other, sentIDs[1], "failed"))
	h.waitIdle()
	if err := h.m.Sys.DB.Pool.QueryRow(t.Context(), `SELECT status FROM message_status WHERE provider_id = $1`,
		h.m.Sys.Pseudo.ProviderKey(subject, sentIDs[1])).Scan(&st); err != nil || st == "failed" {
		t.Errorf("another sender's status changed this shopper's: %q %v", st, err)
	}

	// Erasure removes every provider id (hash) of the shopper.
	h.mustPost(textMsg(wa, "delete my data"))
	h.next(wa, "erase question", offers(commerce.IDEraseConfirm))
	h.mustPost(replyMsg(wa, commerce.IDEraseConfirm))
	h.next(wa, "erasure confirmation", contains("has been erased"))
	h.waitIdle()
	// A late receipt for a message sent before the erasure brings nothing back.
	h.mustPost(statusMsg(wa, sentIDs[2], "delivered"))
	h.waitIdle()
	var mine []string
	for _, m := range h.wa.all() {
		if strings.TrimPrefix(m.To, "+") == wa {
			mine = append(mine, h.m.Sys.Pseudo.ProviderKey(subject, m.ID))
		}
	}
	for _, v := range h.providerColumns() {
		for _, k := range mine {
			if v == k {
				t.Errorf("the erased shopper's hashed message id %s is still stored", v)
			}
		}
	}
	for table, q := range map[string]string{
		"inbox":          `SELECT count(*) FROM inbox WHERE subject_id = $1`,
		"message_status": `SELECT count(*) FROM message_status WHERE subject_id = $1`,
		"outbox":         `SELECT count(*) FROM outbox WHERE subject_id = $1`,
	} {
		if n := h.count(q, subject); n != 0 {
			t.Errorf("%s: %d rows still name the erased shopper", table, n)
		}
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE vault_sealed AND kind = 'whatsapp'
		AND (subject_id IS NOT NULL OR provider_id IS NOT NULL)`); n != 0 {
		t.Errorf("%d last-words rows keep a subject or provider id", n)
	}
	if st := h.orderStatus(orderID); st == "" {
		t.Error("the order row is gone: the test read the wrong database")
	}
}

// TestProviderIDUpgrade: plaintext ids stored before migration 0010 are
// converted once, at start, to keyed hashes; a pending event is re-bound
// and still processed; a redelivery of an already processed message is
// still recognised; a second run converts nothing.
func TestProviderIDUpgrade(t *testing.T) {
	h := newHarness(t)
	const wa = "919811173333"
	h.mustPost(textMsg(wa, "Hi"))
	h.next(wa, "privacy notice", offers(commerce.IDConsentAccept))
	h.mustPost(replyMsg(wa, commerce.IDConsentAccept))
	h.next(wa, "marketing opt-in", offers(commerce.IDMarketingNo))
	h.mustPost(replyMsg(wa, commerce.IDMarketingNo))
	h.next(wa, "product list", kindIs("product_list"))
	h.waitIdle()
	subject := h.subjectOf(wa)
	sys := h.m.Sys
	ctx := t.Context()
	if n := h.count(`SELECT count(*) FROM app_upgrades WHERE name = '0010_provider_ids'`); n != 1 {
		t.Fatalf("a new database must record the conversion as done by migration 0010: %d", n)
	}
	sentID := h.wa.all()[0].ID
	processedID, pendingID := wamidFor(wa), wamidFor(wa)

	// The state an older broker left: plaintext ids everywhere. The pending
	// event is written in the same transaction as the conversion, so the
	// worker cannot take it under its old key first.
	var converted int
	err := sys.DB.InTx(ctx, func(ctx context.Context) error {
		ev, _ := json.Marshal(commerce.Inbound{ID: pendingID, Store: whatsapp.DevPhoneNumberID, Time: time.Now(),
			Kind: commerce.InText, Text: "my data"})
		sealed, err := sys.Sealer.Seal(ctx, subject, broker.Binding{Table: "inbox", Column: "sealed", RowID: "m:" + pendingID}, ev)
		if err != nil {
			return err
		}
		tx, _ := postgres.TxFrom(ctx)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM app_upgrades`, nil},
			{`INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed, processed_at) VALUES ($1, $2, 'message', $3, '\x00', now())`,
				[]any{"m:" + processedID, subject, whatsapp.DevPhoneNumberID}},
			{`INSERT INTO inbox (dedup_key, subject_id, kind, store, sealed) VALUES ($1, $2, 'message', $3, $4)`,
				[]any{"m:" + pendingID, subject, whatsapp.DevPhoneNumberID, sealed}},
			{`INSERT INTO message_status (provider_id, subject_id, status) VALUES ($1, $2, 'delivered'), ($3, NULL, 'read')`,
				[]any{sentID, subject, wamid()}},
			{`DELETE FROM message_status WHERE provider_id = $1`, []any{sys.Pseudo.ProviderKey(subject, sentID)}},
			{`UPDATE outbox SET provider_id = $1 WHERE provider_id = $2`, []any{sentID, sys.Pseudo.ProviderKey(subject, sentID)}},
		} {
			if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
				return fmt.Errorf("%s: %w", q.sql, err)
			}
		}
		converted, err = sys.Stores.Inbox.UpgradeProviderIDs(ctx, sys.Pseudo.ProviderKey, sys.Service.ResealInbox)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if converted != 4 {
		t.Errorf("converted %d values, want 4 (two inbox keys, a status, an outbox id)", converted)
	}
	sys.Service.WakeWorker()
	h.next(wa, "the pending event, processed after re-binding", contains("What we hold about you"))
	h.waitIdle()
	for _, v := range h.providerColumns() {
		if !strings.HasPrefix(v, broker.ProviderKeyPrefix) {
			t.Errorf("left in plaintext: %q", v)
		}
	}
	if n := h.count(`SELECT count(*) FROM inbox WHERE last_error IS NOT NULL`); n != 0 {
		t.Errorf("%d inbox events failed", n)
	}
	if n := h.count(`SELECT count(*) FROM message_status WHERE provider_id = $1 AND status = 'delivered'`,
		sys.Pseudo.ProviderKey(subject, sentID)); n != 1 {
		t.Errorf("the status was not converted: %d", n)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE provider_id = $1`, sys.Pseudo.ProviderKey(subject, sentID)); n != 1 {
		t.Errorf("the outbox id was not converted: %d", n)
	}
	// The processed message, redelivered by Meta, is still a duplicate.
	before := h.count(`SELECT count(*) FROM inbox`)
	h.mustPost(messageWithID(wa, processedID, "Hi"))
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM inbox`); n != before {
		t.Errorf("a redelivery of a message stored before the conversion was taken as new")
	}
	// Once only: brokerd's start-up path finds nothing to do.
	if _, err := sys.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := sys.Stores.Inbox.UpgradeProviderIDs(ctx, sys.Pseudo.ProviderKey, sys.Service.ResealInbox); err != nil || n != 0 {
		t.Errorf("second run: %d %v", n, err)
	}
}
