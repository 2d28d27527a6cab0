package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce"
)

// Sent marks written concurrently are group-committed and each one lands.
func TestOutboxSentMarksGroupCommit(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	var ids []int64
	for i := range 50 {
		id, err := db.Enqueue(ctx, commerce.OutboxItem{Ref: fmt.Sprintf("m-%d", i), Kind: "whatsapp", Subject: "sub_a",
			VaultSealed: i%2 == 0, Sealed: []byte("payload")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	errs := make(chan error, len(ids))
	for i, id := range ids {
		go func() { errs <- db.OutboxSent(ctx, id, fmt.Sprintf("wamid.%d", i)) }()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var sent, withPayload, vaultWithPayload int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent' AND provider_id = 'wamid.' || (id - $1)),
		count(*) FILTER (WHERE sealed IS NOT NULL), count(*) FILTER (WHERE vault_sealed AND sealed IS NOT NULL) FROM outbox`,
		ids[0]).Scan(&sent, &withPayload, &vaultWithPayload); err != nil {
		t.Fatal(err)
	}
	if sent != len(ids) || withPayload != len(ids)/2 || vaultWithPayload != 0 {
		t.Errorf("sent %d (want %d), with payload %d (want %d), vault-sealed with payload %d (want 0)",
			sent, len(ids), withPayload, len(ids)/2, vaultWithPayload)
	}
}
