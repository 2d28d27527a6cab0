package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/postgres"
)

// catalogSorted returns ps in the order Products lists them.
func catalogSorted(ps []commerce.Product) []commerce.Product {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b commerce.Product) int {
		if c := strings.Compare(a.Category, b.Category); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.SKU, b.SKU)
	})
	return out
}

// catalogStock returns the stock of each SKU.
func catalogStock(t *testing.T, db *postgres.Stores, skus ...string) map[string]int {
	t.Helper()
	ps, err := db.Catalog.ProductsBySKU(context.Background(), skus)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int, len(ps))
	for sku, p := range ps {
		out[sku] = p.Stock
	}
	return out
}

// catalogSeed stores products with the given SKUs and stock levels.
func catalogSeed(t *testing.T, db *postgres.Stores, stock map[string]int) {
	t.Helper()
	var ps []commerce.Product
	for sku, n := range stock {
		ps = append(ps, commerce.Product{SKU: sku, Name: "Item " + sku, Price: broker.INR(100), Category: "Test", Stock: n})
	}
	if _, err := db.Catalog.UpsertProducts(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
}

func TestCatalogUpsertIsIdempotent(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	demo := commerce.DemoCatalog()

	n, err := db.Catalog.UpsertProducts(ctx, demo)
	if err != nil || n != len(demo) {
		t.Fatalf("first import: %d, %v; want %d", n, err, len(demo))
	}
	n, err = db.Catalog.UpsertProducts(ctx, demo)
	if err != nil || n != 0 {
		t.Fatalf("second import: %d, %v; want 0 changed", n, err)
	}
	got, err := db.Catalog.Products(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := catalogSorted(demo); !reflect.DeepEqual(got, want) {
		t.Errorf("Products:\n got  %+v\n want %+v", got, want)
	}

	cats, err := db.Catalog.Categories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range demo {
		if !slices.Contains(want, p.Category) {
			want = append(want, p.Category)
		}
	}
	slices.Sort(want)
	if !slices.Equal(cats, want) {
		t.Errorf("Categories = %q, want %q", cats, want)
	}
}

func TestCatalogEmpty(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	if ps, err := db.Catalog.Products(ctx); err != nil || len(ps) != 0 {
		t.Errorf("Products = %v, %v", ps, err)
	}
	if cs, err := db.Catalog.Categories(ctx); err != nil || len(cs) != 0 {
		t.Errorf("Categories = %v, %v", cs, err)
	}
	if m, err := db.Catalog.ProductsBySKU(ctx, nil); err != nil || m == nil || len(m) != 0 {
		t.Errorf("ProductsBySKU(nil) = %v, %v; want an empty map", m, err)
	}
	if n, err := db.Catalog.UpsertProducts(ctx, nil); err != nil || n != 0 {
		t.Errorf("UpsertProducts(nil) = %d, %v", n, err)
	}
}

func TestCatalogUpsertUpdatesPrice(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	if _, err := db.Catalog.UpsertProducts(ctx, commerce.DemoCatalog()); err != nil {
		t.Fatal(err)
	}
	before, err := db.Catalog.ProductsBySKU(ctx, []string{"SKU-ATTA-5KG"})
	if err != nil {
		t.Fatal(err)
	}
	atta := before["SKU-ATTA-5KG"]
	atta.Price = broker.INR(29950)
	atta.Name = "Atta 5 kg (new pack)"
	newItem := commerce.Product{SKU: "SKU-NEW-1", Name: "New item", Price: broker.INR(1), Category: "Staples", Stock: 0}
	n, err := db.Catalog.UpsertProducts(ctx, []commerce.Product{atta, newItem})
	if err != nil || n != 2 {
		t.Fatalf("UpsertProducts = %d, %v; want 2", n, err)
	}
	got, err := db.Catalog.ProductsBySKU(ctx, []string{"SKU-ATTA-5KG", "SKU-NEW-1", "SKU-MILK-1L", "SKU-NOPE"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("ProductsBySKU returned %d products, want 3 (unknown SKUs are absent)", len(got))
	}
	if got["SKU-ATTA-5KG"] != atta {
		t.Errorf("updated = %+v, want %+v", got["SKU-ATTA-5KG"], atta)
	}
	if got["SKU-NEW-1"] != newItem {
		t.Errorf("inserted = %+v, want %+v", got["SKU-NEW-1"], newItem)
	}
	if m := got["SKU-MILK-1L"]; m.Name != "Toned Milk 1 L" || m.Price != broker.INR(6400) {
		t.Errorf("untouched product changed: %+v", m)
	}
}

func TestCatalogUpsertIsAllOrNothing(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	good := commerce.Product{SKU: "SKU-A", Name: "A", Price: broker.INR(100), Category: "Test", Stock: 1}
	bad := good
	bad.SKU, bad.Price = "SKU-B", broker.INR(0)

	t.Run("invalid product", func(t *testing.T) {
		_, err := db.Catalog.UpsertProducts(ctx, []commerce.Product{good, bad})
		var ce *commerce.CatalogError
		if !errors.As(err, &ce) || broker.ErrorCode(err) != broker.EInvalid {
			t.Fatalf("err = %v, want a CatalogError", err)
		}
		if !strings.Contains(err.Error(), "product 2 (SKU-B): price: must be 1 to") {
			t.Errorf("error does not name the product and field: %v", err)
		}
	})
	t.Run("duplicate SKU", func(t *testing.T) {
		_, err := db.Catalog.UpsertProducts(ctx, []commerce.Product{good, good})
		if broker.ErrorCode(err) != broker.EInvalid {
			t.Fatalf("err = %v, want invalid", err)
		}
	})
	t.Run("caller's transaction rolls back", func(t *testing.T) {
		rollback := errors.New("roll back")
		err := db.DB.InTx(ctx, func(ctx context.Context) error {
			if n, err := db.Catalog.UpsertProducts(ctx, []commerce.Product{good}); err != nil || n != 1 {
				t.Errorf("UpsertProducts in tx = %d, %v", n, err)
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
	})
	if ps, err := db.Catalog.Products(ctx); err != nil || len(ps) != 0 {
		t.Errorf("after failed imports: %+v, %v; want nothing stored", ps, err)
	}
}

func TestCatalogReserveAndReleaseStock(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	catalogSeed(t, db, map[string]int{"SKU-A": 5, "SKU-B": 2, "SKU-C": 0})
	want := func(wantStock map[string]int) {
		t.Helper()
		if got := catalogStock(t, db, "SKU-A", "SKU-B", "SKU-C"); !reflect.DeepEqual(got, wantStock) {
			t.Fatalf("stock = %v, want %v", got, wantStock)
		}
	}

	if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 3, "SKU-B": 2}); err != nil {
		t.Fatal(err)
	}
	want(map[string]int{"SKU-A": 2, "SKU-B": 0, "SKU-C": 0})

	// Short on two SKUs: both named, nothing taken (not even SKU-A's 1).
	err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 1, "SKU-B": 1, "SKU-C": 4})
	var se *commerce.StockError
	if !errors.As(err, &se) || broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("err = %v, want a StockError (conflict)", err)
	}
	wantShort := []commerce.Shortage{{SKU: "SKU-B", Available: 0, Wanted: 1}, {SKU: "SKU-C", Available: 0, Wanted: 4}}
	if !reflect.DeepEqual(se.Shortages, wantShort) {
		t.Errorf("shortages = %+v, want %+v", se.Shortages, wantShort)
	}
	if msg := broker.ErrorMessage(err); !strings.Contains(msg, "SKU-B") || !strings.Contains(msg, "SKU-C") {
		t.Errorf("message %q does not name the SKUs", msg)
	}
	want(map[string]int{"SKU-A": 2, "SKU-B": 0, "SKU-C": 0})

	for name, qty := range map[string]map[string]int{
		"unknown SKU":       {"SKU-A": 1, "SKU-NOPE": 1},
		"zero quantity":     {"SKU-A": 0},
		"negative quantity": {"SKU-A": -1},
		"malformed SKU":     {"sku a": 1},
	} {
		if err := db.Catalog.ReserveStock(ctx, qty); broker.ErrorCode(err) != broker.EInvalid {
			t.Errorf("ReserveStock(%s) = %v, want invalid", name, err)
		}
		if err := db.Catalog.ReleaseStock(ctx, qty); broker.ErrorCode(err) != broker.EInvalid {
			t.Errorf("ReleaseStock(%s) = %v, want invalid", name, err)
		}
	}
	if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 1, "SKU-NOPE": 1}); !strings.Contains(broker.ErrorMessage(err), "SKU-NOPE") {
		t.Errorf("unknown SKU error does not name it: %v", err)
	}
	if err := db.Catalog.ReserveStock(ctx, nil); err != nil {
		t.Errorf("empty reservation: %v", err)
	}
	want(map[string]int{"SKU-A": 2, "SKU-B": 0, "SKU-C": 0})

	// Cancellation puts the stock back.
	if err := db.Catalog.ReleaseStock(ctx, map[string]int{"SKU-A": 3, "SKU-B": 2}); err != nil {
		t.Fatal(err)
	}
	want(map[string]int{"SKU-A": 5, "SKU-B": 2, "SKU-C": 0})

	// A reservation joins the caller's transaction and rolls back with it.
	rollback := errors.New("order failed")
	err = db.DB.InTx(ctx, func(ctx context.Context) error {
		if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 5}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	want(map[string]int{"SKU-A": 5, "SKU-B": 2, "SKU-C": 0})

	// Reservations in one transaction see each other.
	err = db.DB.InTx(ctx, func(ctx context.Context) error {
		if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 4}); err != nil {
			return err
		}
		return db.Catalog.ReserveStock(ctx, map[string]int{"SKU-A": 2})
	})
	if broker.ErrorCode(err) != broker.EConflict {
		t.Fatalf("second reservation in one tx = %v, want conflict", err)
	}
	want(map[string]int{"SKU-A": 5, "SKU-B": 2, "SKU-C": 0})
}

func TestCatalogConcurrentReservationsDoNotOversell(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	const stock, buyers = 10, 40
	catalogSeed(t, db, map[string]int{"SKU-HOT": stock, "SKU-X": stock * buyers, "SKU-Y": stock * buyers})

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, short int
		others    []error
		taken     = map[string]int{}
	)
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Orders share SKUs in different combinations; rows are locked in
			// SKU order whatever the map's order, so none deadlocks.
			qty := map[string]int{"SKU-HOT": 1, "SKU-X": 1}
			if i%2 == 1 {
				qty = map[string]int{"SKU-Y": 2, "SKU-HOT": 1, "SKU-X": 3}
			}
			err := db.DB.InTx(ctx, func(ctx context.Context) error {
				return db.Catalog.ReserveStock(ctx, qty)
			})
			mu.Lock()
			defer mu.Unlock()
			switch broker.ErrorCode(err) {
			case "":
				ok++
				for sku, n := range qty {
					taken[sku] += n
				}
			case broker.EConflict:
				short++
			default:
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if ok != stock || short != buyers-stock {
		t.Errorf("%d reservations succeeded and %d were refused; want %d and %d", ok, short, stock, buyers-stock)
	}
	got := catalogStock(t, db, "SKU-HOT", "SKU-X", "SKU-Y")
	want := map[string]int{"SKU-HOT": 0, "SKU-X": stock*buyers - taken["SKU-X"], "SKU-Y": stock*buyers - taken["SKU-Y"]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stock = %v, want %v (refused orders took nothing)", got, want)
	}
}

// A turn's reservation holds the product rows only while it commits: a
// second order of the same SKU goes through while the first transaction is
// still open, and the first then fails at COMMIT if the units are gone.
func TestCatalogReservationLocksRowsOnlyAtCommit(t *testing.T) {
	db := newStore(t)
	ctx := context.Background()
	catalogSeed(t, db, map[string]int{"SKU-MILK": 3})

	reserved := make(chan struct{})
	proceed := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.DB.InTx(ctx, func(ctx context.Context) error {
			if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-MILK": 2}); err != nil {
				return err
			}
			close(reserved)
			<-proceed // the rest of a long turn
			return nil
		})
	}()
	<-reserved
	second := make(chan error, 1)
	go func() {
		second <- db.DB.InTx(ctx, func(ctx context.Context) error {
			return db.Catalog.ReserveStock(ctx, map[string]int{"SKU-MILK": 2})
		})
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("second order: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(proceed)
		t.Fatal("the second order waited for the first transaction's row lock")
	}
	close(proceed)
	err := <-first
	var se *commerce.StockError
	if !errors.As(err, &se) || len(se.Shortages) != 1 || se.Shortages[0] != (commerce.Shortage{SKU: "SKU-MILK", Available: 1, Wanted: 2}) {
		t.Fatalf("first order at COMMIT = %v, want a StockError for SKU-MILK (1 left, 2 wanted)", err)
	}
	if got := catalogStock(t, db, "SKU-MILK"); got["SKU-MILK"] != 1 {
		t.Errorf("stock = %v, want 1 (only the second order taken)", got)
	}

	// In a savepoint the reservation is taken, and a shortage seen, at once.
	err = db.DB.InTx(ctx, func(ctx context.Context) error {
		err := db.DB.InSavepoint(ctx, func(ctx context.Context) error {
			return db.Catalog.ReserveStock(ctx, map[string]int{"SKU-MILK": 1})
		})
		if err != nil {
			return err
		}
		return db.DB.InSavepoint(ctx, func(ctx context.Context) error {
			if err := db.Catalog.ReserveStock(ctx, map[string]int{"SKU-MILK": 1}); !errors.As(err, &se) {
				t.Errorf("second unit in a savepoint = %v, want a StockError at the call", err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := catalogStock(t, db, "SKU-MILK"); got["SKU-MILK"] != 0 {
		t.Errorf("stock = %v, want 0", got)
	}
}
