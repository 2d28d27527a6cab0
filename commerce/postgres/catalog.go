package postgres

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	bpg "github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/commerce"
)

// Catalog is the catalog and its stock: the products, their import, and
// the stock reserved for orders (taken just before COMMIT, see ReserveStock).
type Catalog struct{ *base }

var (
	_ commerce.Catalog   = (*Catalog)(nil)
	_ commerce.Inventory = (*Catalog)(nil)
)

const productCols = `sku, name, price_paise, category, stock`

const (
	sqlProducts = `SELECT ` + productCols + ` FROM products ORDER BY category, name, sku`

	sqlProductsBySKU = `SELECT ` + productCols + ` FROM products WHERE sku = ANY($1::text[])`

	sqlCategories = `SELECT DISTINCT category FROM products ORDER BY category`

	// sqlUpsertProducts writes a whole batch in one statement. The WHERE of
	// the update skips rows that would not change, so that RowsAffected
	// counts only inserted and changed products and updated_at keeps the
	// time of the last real change.
	sqlUpsertProducts = `INSERT INTO products AS p (sku, name, price_paise, category, stock)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::integer[])
ON CONFLICT (sku) DO UPDATE
   SET name = EXCLUDED.name, price_paise = EXCLUDED.price_paise, category = EXCLUDED.category,
       stock = EXCLUDED.stock, updated_at = EXCLUDED.updated_at
 WHERE (p.name, p.price_paise, p.category, p.stock)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.price_paise, EXCLUDED.category, EXCLUDED.stock)
RETURNING 1` // Citus counts every selected row in an INSERT … SELECT's tag unless it returns rows

	// sqlLockStock locks the rows of a reservation in SKU order, so that two
	// orders sharing SKUs queue rather than deadlock, and reads their stock
	// as committed by whoever held the lock before.
	sqlLockStock = `SELECT sku, stock FROM products WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE`

	sqlReadStock = `SELECT sku, stock FROM products WHERE sku = ANY($1::text[])`

	sqlTakeStock = `UPDATE products AS p SET stock = p.stock - r.qty, updated_at = now()
  FROM unnest($1::text[], $2::integer[]) AS r(sku, qty)
 WHERE p.sku = r.sku`

	sqlReturnStock = `UPDATE products AS p SET stock = p.stock + r.qty, updated_at = now()
  FROM unnest($1::text[], $2::integer[]) AS r(sku, qty)
 WHERE p.sku = r.sku`
)

func scanProduct(row pgx.CollectableRow) (commerce.Product, error) {
	var (
		p     commerce.Product
		paise int64
		stock int32
	)
	if err := row.Scan(&p.SKU, &p.Name, &paise, &p.Category, &stock); err != nil {
		return commerce.Product{}, err
	}
	p.Price, p.Stock = broker.INR(paise), int(stock)
	return p, nil
}

// Products returns every product, ordered by category, then name, then SKU.
func (db *Catalog) Products(ctx context.Context) ([]commerce.Product, error) {
	rows, err := db.q(ctx).Query(ctx, sqlProducts)
	if err != nil {
		return nil, Translate(err)
	}
	ps, err := pgx.CollectRows(rows, scanProduct)
	return ps, Translate(err)
}

// ProductsBySKU returns the products with the given SKUs, keyed by SKU;
// unknown SKUs are absent from the map.
func (db *Catalog) ProductsBySKU(ctx context.Context, skus []string) (map[string]commerce.Product, error) {
	out := make(map[string]commerce.Product, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	rows, err := db.q(ctx).Query(ctx, sqlProductsBySKU, skus)
	if err != nil {
		return nil, Translate(err)
	}
	ps, err := pgx.CollectRows(rows, scanProduct)
	if err != nil {
		return nil, Translate(err)
	}
	for _, p := range ps {
		out[p.SKU] = p
	}
	return out, nil
}

// Categories returns the distinct categories of the catalog, sorted.
func (db *Catalog) Categories(ctx context.Context) ([]string, error) {
	rows, err := db.q(ctx).Query(ctx, sqlCategories)
	if err != nil {
		return nil, Translate(err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return cs, Translate(err)
}

// UpsertProducts validates ps (a *commerce.CatalogError, code EInvalid,
// when anything is wrong; nothing is stored) and inserts or updates them in
// one statement, inside the transaction of ctx if there is one. It returns
// how many products were inserted or changed.
func (db *Catalog) UpsertProducts(ctx context.Context, ps []commerce.Product) (int, error) {
	if err := commerce.ValidateProducts(ps); err != nil {
		return 0, err
	}
	if len(ps) == 0 {
		return 0, nil
	}
	var (
		skus   = make([]string, len(ps))
		names  = make([]string, len(ps))
		prices = make([]int64, len(ps))
		cats   = make([]string, len(ps))
		stocks = make([]int32, len(ps))
	)
	for i, p := range ps {
		skus[i], names[i], prices[i], cats[i], stocks[i] = p.SKU, p.Name, p.Price.Value, p.Category, int32(p.Stock)
	}
	var n int64
	err := db.InTx(ctx, func(ctx context.Context) error {
		tag, err := db.q(ctx).Exec(ctx, sqlUpsertProducts, skus, names, prices, cats, stocks)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, Translate(err)
	}
	return int(n), nil
}

// ReserveStock takes qty (SKU to units) out of stock, all or nothing, in
// the transaction of ctx (or its own). When some SKUs are short it returns
// a *commerce.StockError (code EConflict) naming each of them and changes
// nothing; an unknown SKU or a quantity < 1 is EInvalid.
//
// Popular products make their rows hot: every order of milk locks the milk
// row until it commits. So inside a transaction begun by InTx (not inside a
// savepoint) the reservation is checked now against committed stock, less
// what this transaction already reserved, but taken only at COMMIT
// (takeDeferredStock): the rows are then locked for two statements and a
// commit rather than for the rest of a turn. An order that loses the race
// for the last units fails the COMMIT with the StockError instead; callers
// that must see it at the call (a savepoint, or no transaction) get the
// rows locked at once. Either way the rows are locked in SKU order, so
// concurrent orders never oversell nor deadlock.
func (db *Catalog) ReserveStock(ctx context.Context, qty map[string]int) error {
	skus, qs, err := stockArgs(qty)
	if err != nil || len(skus) == 0 {
		return err
	}
	if d := db.deferredFrom(ctx); d != nil {
		stock, err := db.readStock(ctx, sqlReadStock, skus)
		if err != nil {
			return Translate(err)
		}
		if err := shortages(skus, qs, stock, d.qty); err != nil {
			return err
		}
		if d.qty == nil {
			d.qty = make(map[string]int, len(skus))
		}
		for i, s := range skus {
			d.qty[s] += int(qs[i])
		}
		return nil
	}
	return Translate(db.InTx(ctx, func(ctx context.Context) error {
		return db.takeStock(ctx, skus, qs)
	}))
}

// takeStock locks skus, checks that qs are there, and takes them.
func (db *Catalog) takeStock(ctx context.Context, skus []string, qs []int32) error {
	stock, err := db.readStock(ctx, sqlLockStock, skus)
	if err != nil {
		return err
	}
	if err := shortages(skus, qs, stock, nil); err != nil {
		return err
	}
	_, err = db.q(ctx).Exec(ctx, sqlTakeStock, skus, qs)
	return err
}

func shortages(skus []string, qs []int32, stock, held map[string]int) error {
	var short []commerce.Shortage
	for i, s := range skus {
		if avail := stock[s] - held[s]; int(qs[i]) > avail {
			short = append(short, commerce.Shortage{SKU: s, Available: max(avail, 0), Wanted: int(qs[i])})
		}
	}
	if len(short) > 0 {
		return &commerce.StockError{Shortages: short}
	}
	return nil
}

// deferredStock is what a transaction reserved and will take at COMMIT
// (qty is made on the first reservation: most transactions make none).
type deferredStock struct{ qty map[string]int }

type stockKey struct{}

// deferredFrom returns the reservations ctx's transaction takes at COMMIT,
// or nil when reservations must be taken at once.
func (db *Catalog) deferredFrom(ctx context.Context) *deferredStock {
	d, _ := bpg.BeforeCommit(ctx, stockKey{}, func() any { return &deferredStock{} },
		func(ctx context.Context, d any) error { return db.takeDeferredStock(ctx, d.(*deferredStock)) }).(*deferredStock)
	return d
}

// takeDeferredStock takes a transaction's deferred reservations, just
// before its COMMIT.
func (db *Catalog) takeDeferredStock(ctx context.Context, d *deferredStock) error {
	if len(d.qty) == 0 {
		return nil
	}
	skus, qs, err := stockArgs(d.qty)
	if err != nil {
		return err
	}
	return db.takeStock(ctx, skus, qs)
}

// ReleaseStock puts qty (SKU to units) back into stock, all or nothing, in
// the transaction of ctx (or its own); an unknown SKU or a quantity < 1 is
// EInvalid. It is the inverse of ReserveStock and, like it, not idempotent.
func (db *Catalog) ReleaseStock(ctx context.Context, qty map[string]int) error {
	skus, qs, err := stockArgs(qty)
	if err != nil || len(skus) == 0 {
		return err
	}
	return Translate(db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.readStock(ctx, sqlLockStock, skus); err != nil {
			return err
		}
		_, err := db.q(ctx).Exec(ctx, sqlReturnStock, skus, qs)
		return err
	}))
}

// readStock returns the stock of skus (sorted) with sqlLockStock, which
// locks them for the transaction in ctx, or sqlReadStock, which does not;
// it is EInvalid when one is not in the catalog.
func (db *Catalog) readStock(ctx context.Context, sql string, skus []string) (map[string]int, error) {
	rows, err := db.q(ctx).Query(ctx, sql, skus)
	if err != nil {
		return nil, err
	}
	stock := make(map[string]int, len(skus))
	var (
		sku string
		n   int32
	)
	if _, err := pgx.ForEachRow(rows, []any{&sku, &n}, func() error {
		stock[sku] = int(n)
		return nil
	}); err != nil {
		return nil, err
	}
	var unknown []string
	for _, s := range skus {
		if _, ok := stock[s]; !ok {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) > 0 {
		return nil, broker.Errorf(broker.EInvalid, "not in the catalog: %s", strings.Join(unknown, ", "))
	}
	return stock, nil
}

// stockArgs turns a quantity map into parallel arrays in SKU order.
func stockArgs(qty map[string]int) ([]string, []int32, error) {
	skus := make([]string, 0, len(qty))
	for s := range qty {
		skus = append(skus, s)
	}
	slices.Sort(skus)
	qs := make([]int32, len(skus))
	for i, s := range skus {
		if !commerce.ValidSKU(s) {
			return nil, nil, broker.Errorf(broker.EInvalid, "invalid SKU %.40q", s)
		}
		q := qty[s]
		if q < 1 || q > math.MaxInt32 {
			return nil, nil, broker.Errorf(broker.EInvalid, "quantity of %s must be at least 1, got %d", s, q)
		}
		qs[i] = int32(q)
	}
	return skus, qs, nil
}
