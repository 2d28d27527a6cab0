package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/migrations"
)

// TestOrderIndex: every order is found by its id alone through the order
// index (migration 0023), on both engines: on Citus the reads by id take
// the shopper from there and stay on one shard (TestCitusHotQueriesAre
// RouterQueries EXPLAINs them), on one PostgreSQL the same calls answer.
func TestOrderIndex(t *testing.T) {
	ctx := context.Background()
	db := newStore(t)
	for _, id := range []string{"shp_a", "shp_b"} {
		if _, err := db.Subjects.CreateSubject(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i, o := range []commerce.OrderRow{
		{Order: commerce.Order{ID: "ord_a1", Subject: "shp_a", Store: "demo", Status: commerce.StatusPendingPayment, PaymentStatus: "pending", ReferenceID: "ref_a1", Total: 100, CreatedAt: now}},
		{Order: commerce.Order{ID: "ord_b1", Subject: "shp_b", Store: "demo", Status: commerce.StatusPendingPayment, PaymentStatus: "pending", ReferenceID: "ref_b1", Total: 250, CreatedAt: now}},
	} {
		if err := db.Orders.CreateOrder(ctx, o); err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
	}
	check := func(when string) {
		t.Helper()
		for id, subject := range map[string]string{"ord_a1": "shp_a", "ord_b1": "shp_b"} {
			o, sub, err := db.Orders.GetOrderWithSubject(ctx, id)
			if err != nil || o.ID != id || o.Subject != subject || sub.ID != subject {
				t.Errorf("%s: GetOrderWithSubject(%s) = %s/%s %v", when, id, o.ID, sub.ID, err)
			}
			if o, err := db.Orders.GetOrder(ctx, id); err != nil || o.Subject != subject {
				t.Errorf("%s: GetOrder(%s) = %+v %v", when, id, o, err)
			}
		}
		if _, _, err := db.Orders.GetOrderWithSubject(ctx, "ord_none"); broker.ErrorCode(err) != broker.ENotFound {
			t.Errorf("%s: an unknown order: %v", when, err)
		}
		if _, err := db.Orders.GetOrder(ctx, "ord_none"); broker.ErrorCode(err) != broker.ENotFound {
			t.Errorf("%s: an unknown order: %v", when, err)
		}
	}
	check("created")

	// The statements that change one order find it the same way, and an
	// unknown order changes nothing.
	if ok, err := db.Market.SetOrderStatusIf(ctx, "ord_a1", commerce.StatusPendingPayment, commerce.StatusPlaced); !ok || err != nil {
		t.Fatalf("SetOrderStatusIf: %v %v", ok, err)
	}
	if ok, err := db.Market.SetOrderStatusIf(ctx, "ord_a1", commerce.StatusPendingPayment, commerce.StatusPlaced); ok || err != nil {
		t.Fatalf("SetOrderStatusIf from a status it left: %v %v", ok, err)
	}
	if ok, err := db.Market.SetOrderStatusIf(ctx, "ord_none", commerce.StatusPendingPayment, commerce.StatusPlaced); ok || err != nil {
		t.Fatalf("SetOrderStatusIf of an unknown order: %v %v", ok, err)
	}
	if err := db.Orders.SetOrderLogistics(ctx, "ord_b1", "courier-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Orders.SetOrderLogistics(ctx, "ord_none", "courier-1"); !broker.IsNotFound(err) {
		t.Fatalf("dispatching an unknown order: %v", err)
	}
	if o, err := db.Orders.GetOrder(ctx, "ord_a1"); err != nil || o.Status != commerce.StatusPlaced {
		t.Fatalf("after the status change: %+v %v", o, err)
	}
	if o, err := db.Orders.GetOrder(ctx, "ord_b1"); err != nil || o.LogisticsID != "courier-1" || o.Status != commerce.StatusPendingPayment {
		t.Fatalf("after dispatch: %+v %v", o, err)
	}

	// A database from before 0023: the migration indexes the orders there.
	for _, sql := range []string{`DROP TABLE order_index`, `DELETE FROM schema_migrations WHERE name LIKE '0023_%'`} {
		if _, err := db.DB.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := bpg.MigrateFS(ctx, db.DB.Pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM order_index
		WHERE (order_id, subject_id) IN (('ord_a1', 'shp_a'), ('ord_b1', 'shp_b'))`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("indexed after the migration: %d %v", n, err)
	}
	check("migrated")
}
