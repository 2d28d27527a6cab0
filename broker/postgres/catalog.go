package postgres

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

var (
	_ commerce.Catalog   = (*DB)(nil)
	_ commerce.Inventory = (*DB)(nil)
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
       stock = EXCLUDED.stock, updated_at = now()
 WHERE (p.name, p.price_paise, p.category, p.stock)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.price_paise, EXCLUDED.category, EXCLUDED.stock)`

	// sqlLockStock locks the rows of a reservation in SKU order, so that two
	// orders sharing SKUs queue rather than deadlock, and reads their stock
	// as committed by whoever held the lock before.
	sqlLockStock = `SELECT sku, stock FROM products WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE`

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
func (db *DB) Products(ctx context.Context) ([]commerce.Product, error) {
	rows, err := db.q(ctx).Query(ctx, sqlProducts)
	if err != nil {
		return nil, Translate(err)
	}
	ps, err := pgx.CollectRows(rows, scanProduct)
	return ps, Translate(err)
}

// ProductsBySKU returns the products with the given SKUs, keyed by SKU;
// unknown SKUs are absent from the map.
func (db *DB) ProductsBySKU(ctx context.Context, skus []string) (map[string]commerce.Product, error) {
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
func (db *DB) Categories(ctx context.Context) ([]string, error) {
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
func (db *DB) UpsertProducts(ctx context.Context, ps []commerce.Product) (int, error) {
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
// the transaction of ctx (or its own). It locks the rows in SKU order, so
// concurrent orders never oversell nor deadlock. When some SKUs are short
// it returns a *commerce.StockError (code EConflict) naming each of them
// and changes nothing; an unknown SKU or a quantity < 1 is EInvalid.
func (db *DB) ReserveStock(ctx context.Context, qty map[string]int) error {
	skus, qs, err := stockArgs(qty)
	if err != nil || len(skus) == 0 {
		return err
	}
	return Translate(db.InTx(ctx, func(ctx context.Context) error {
		stock, err := db.lockStock(ctx, skus)
		if err != nil {
			return err
		}
		var short []commerce.Shortage
		for i, s := range skus {
			if int(qs[i]) > stock[s] {
				short = append(short, commerce.Shortage{SKU: s, Available: stock[s], Wanted: int(qs[i])})
			}
		}
		if len(short) > 0 {
			return &commerce.StockError{Shortages: short}
		}
		_, err = db.q(ctx).Exec(ctx, sqlTakeStock, skus, qs)
		return err
	}))
}

// ReleaseStock puts qty (SKU to units) back into stock, all or nothing, in
// the transaction of ctx (or its own); an unknown SKU or a quantity < 1 is
// EInvalid. It is the inverse of ReserveStock and, like it, not idempotent.
func (db *DB) ReleaseStock(ctx context.Context, qty map[string]int) error {
	skus, qs, err := stockArgs(qty)
	if err != nil || len(skus) == 0 {
		return err
	}
	return Translate(db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.lockStock(ctx, skus); err != nil {
			return err
		}
		_, err := db.q(ctx).Exec(ctx, sqlReturnStock, skus, qs)
		return err
	}))
}

// lockStock locks the products of skus (sorted) for the transaction in ctx
// and returns their stock; it is EInvalid when one is not in the catalog.
func (db *DB) lockStock(ctx context.Context, skus []string) (map[string]int, error) {
	rows, err := db.q(ctx).Query(ctx, sqlLockStock, skus)
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
