package commerce_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

// validProducts is what testdata/catalog_valid.{json,csv} hold.
var validProducts = []commerce.Product{
	{SKU: "SKU-ATTA-5KG", Name: "Atta 5 kg", Price: broker.INR(28950), Category: "Staples", Stock: 120},
	{SKU: "SKU-MILK-1L", Name: "Toned Milk 1 L", Price: broker.INR(6400), Category: "Dairy", Stock: 0},
	{SKU: "SKU-NAMKEEN-MIX", Name: "नमकीन मिक्सचर, Mixture 200 g", Price: broker.INR(4500), Category: "Snacks & Biscuits", Stock: 1000000},
	{SKU: "9-CURD", Name: `Curd "Dahi" 1 kg`, Price: broker.INR(1), Category: "Dairy", Stock: 5},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problems returns the rendered problems of a *CatalogError, failing t when
// err is anything else.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *commerce.CatalogError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a *commerce.CatalogError", err, err)
	}
	if code := broker.ErrorCode(err); code != broker.EInvalid {
		t.Errorf("ErrorCode = %q, want %q", code, broker.EInvalid)
	}
	if msg := broker.ErrorMessage(err); msg != err.Error() {
		t.Errorf("ErrorMessage = %q, want the error text %q", msg, err.Error())
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error text spans lines: %q", err.Error())
	}
	out := make([]string, len(ce.Problems))
	for i, p := range ce.Problems {
		out[i] = p.String()
	}
	return out
}

// wantProblems checks that the problems start, in order, with the prefixes in want.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := problems(t, err)
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want it to start with %q", i+1, got[i], want[i])
		}
	}
}

func TestParseCatalogValidFiles(t *testing.T) {
	for _, name := range []string{"catalog_valid.json", "catalog_valid.csv"} {
		t.Run(name, func(t *testing.T) {
			data := readTestdata(t, name)
			got, err := commerce.ParseCatalog(name, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, validProducts) {
				t.Errorf("got  %+v\nwant %+v", got, validProducts)
			}
			// Without the extension, the content decides.
			got, err = commerce.ParseCatalog("catalog", bytes.NewReader(data))
			if err != nil || !reflect.DeepEqual(got, validProducts) {
				t.Errorf("sniffed: %+v, %v", got, err)
			}
		})
	}
}

func TestParseCatalogInvalidJSONFile(t *testing.T) {
	_, err := commerce.ParseCatalogJSON(bytes.NewReader(readTestdata(t, "catalog_invalid.json")))
	wantProblems(t, err,
		`element 1: sku: must be 2 to 64 characters`,
		`element 2 (SKU-B): price.value: must be a whole number of paise, got "289.5"`,
		`element 3 (SKU-C): price.offset: must be 100`,
		`element 4 (SKU-D): unknown field "colour"`,
		`element 5 (SKU-E): stock: is required`,
		`element 6 (SKU-F): name: is required`,
		`element 7 (SKU-G): category: must be at most 40 characters, got 43`,
		`element 8 (SKU-H): stock: must be 0 to 1000000, got -1`,
		`element 9 (SKU-B): sku: duplicate of element 2`,
		`element 10 (SKU-J): price.value: must be a whole number of paise, got a string`,
		`element 11 (SKU-K): name: must not contain control characters (found U+0007)`,
		`element 12 (SKU-L): price: must be an object {"value": <paise>, "offset": 100}, got a number`,
		`element 13: must be an object`,
	)
}

func TestParseCatalogInvalidCSVFile(t *testing.T) {
	_, err := commerce.ParseCatalogCSV(bytes.NewReader(readTestdata(t, "catalog_invalid.csv")))
	wantProblems(t, err,
		`line 2 (SKU-A): price_paise: must be a whole number of paise, got "289.50"`,
		`line 3: has 4 fields, want 5`,
		`line 4 (SKU-C): price_paise: must be 1 to 10000000 paise`,
		`line 5 (SKU-D): stock: must be a whole number of units, got "many"`,
		`line 6 (SKU-A): sku: duplicate of line 2`,
		`line 7: sku: is required`,
		`line 8 (SKU-E): name: is required`,
		`line 8 (SKU-E): category: is required`,
		`line 9 (SKU-F): name: must not contain control characters (found U+000A)`,
		`line 11 (SKU-G): price_paise: must be 1 to 10000000 paise`,
	)
}

// jsonItem is one well-formed element with one member replaced or added.
func jsonItem(member string) string {
	base := map[string]string{
		"sku":      `"SKU-X"`,
		"name":     `"Item"`,
		"price":    `{"value": 100, "offset": 100}`,
		"category": `"Staples"`,
		"stock":    `1`,
	}
	var parts []string
	replaced := false
	for _, k := range []string{"sku", "name", "price", "category", "stock"} {
		v := base[k]
		if strings.HasPrefix(member, `"`+k+`":`) {
			parts = append(parts, member)
			replaced = true
			continue
		}
		parts = append(parts, `"`+k+`": `+v)
	}
	if !replaced && member != "" {
		parts = append(parts, member)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestParseCatalogJSON(t *testing.T) {
	one := commerce.Product{SKU: "SKU-X", Name: "Item", Price: broker.INR(100), Category: "Staples", Stock: 1}
	tests := []struct {
		name string
		in   string
		want []string // problem prefixes; nil for success
	}{
		{"one", "[" + jsonItem("") + "]", nil},
		{"BOM", "\uFEFF[" + jsonItem("") + "]", nil},
		{"currency INR", "[" + jsonItem(`"price": {"value": 100, "offset": 100, "currency": "INR"}`) + "]", nil},
		{"surrounding white space", "\n\t [" + jsonItem("") + "] \n", nil},

		{"empty", "", []string{"the file is empty"}},
		{"white space only", " \n\t", []string{"the file is empty"}},
		{"BOM only", "\uFEFF", []string{"the file is empty"}},
		{"empty array", "[]", []string{"the catalog has no products"}},
		{"object", jsonItem(""), []string{"must be a JSON array of products"}},
		{"null", "null", []string{"must be a JSON array of products"}},
		{"truncated", `[{"sku": "SKU-X",`, []string{"invalid JSON at line 1, column 17: unexpected end of JSON input"}},
		{"trailing comma", "[" + jsonItem("") + ",]", []string{"invalid JSON at line 1, column 110: invalid character ']'"}},
		{"syntax error", "[\n{\"sku\" \"SKU-X\"}]", []string{"invalid JSON at line 2, column 8: invalid character '\"' after object key"}},
		{"data after the array", "[" + jsonItem("") + "]\n[]", []string{"invalid JSON at line 2, column 1: invalid character '[' after top-level value"}},
		{"garbage after the array", "[" + jsonItem("") + "] x", []string{"invalid JSON at line 1, column 111: invalid character 'x' after top-level value"}},

		{"float value", "[" + jsonItem(`"price": {"value": 12.5, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be a whole number of paise, got "12.5"`}},
		{"whole float value", "[" + jsonItem(`"price": {"value": 100.0, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be a whole number of paise, got "100.0"`}},
		{"exponent value", "[" + jsonItem(`"price": {"value": 1e3, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be a whole number of paise, got "1e3"`}},
		{"string value", "[" + jsonItem(`"price": {"value": "100", "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be a whole number of paise, got a string`}},
		{"null value", "[" + jsonItem(`"price": {"value": null, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be a whole number of paise, got null`}},
		{"zero value", "[" + jsonItem(`"price": {"value": 0, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be 1 to 10000000 paise`}},
		{"value too high", "[" + jsonItem(`"price": {"value": 10000001, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: must be 1 to 10000000 paise`}},
		{"value out of int64", "[" + jsonItem(`"price": {"value": 99999999999999999999, "offset": 100}`) + "]", []string{`element 1 (SKU-X): price.value: is out of range`}},
		{"offset 1000", "[" + jsonItem(`"price": {"value": 100, "offset": 1000}`) + "]", []string{`element 1 (SKU-X): price.offset: must be 100 (prices are in paise), got "1000"`}},
		{"offset missing", "[" + jsonItem(`"price": {"value": 100}`) + "]", []string{`element 1 (SKU-X): price.offset: is required`}},
		{"offset float", "[" + jsonItem(`"price": {"value": 100, "offset": 100.0}`) + "]", []string{`element 1 (SKU-X): price.offset: must be 100`}},
		{"currency USD", "[" + jsonItem(`"price": {"value": 100, "offset": 100, "currency": "USD"}`) + "]", []string{`element 1 (SKU-X): price.currency: must be INR, got "USD"`}},
		{"unknown price field", "[" + jsonItem(`"price": {"value": 100, "offset": 100, "amount": 1}`) + "]", []string{`element 1 (SKU-X): price: unknown field "amount"`}},
		{"price number", "[" + jsonItem(`"price": 289.50`) + "]", []string{`element 1 (SKU-X): price: must be an object`}},
		{"price missing", `[{"sku": "SKU-X", "name": "Item", "category": "Staples", "stock": 1}]`, []string{`element 1 (SKU-X): price: is required`}},

		{"float stock", "[" + jsonItem(`"stock": 1.5`) + "]", []string{`element 1 (SKU-X): stock: must be a whole number of units, got "1.5"`}},
		{"string stock", "[" + jsonItem(`"stock": "1"`) + "]", []string{`element 1 (SKU-X): stock: must be a whole number of units, got a string`}},
		{"stock too high", "[" + jsonItem(`"stock": 1000001`) + "]", []string{`element 1 (SKU-X): stock: must be 0 to 1000000, got 1000001`}},

		{"unknown field", "[" + jsonItem(`"brand": "X"`) + "]", []string{`element 1 (SKU-X): unknown field "brand"`}},
		{"repeated field", "[" + jsonItem(`"name": "A", "name": "B"`) + "]", []string{`element 1 (SKU-X): "name": appears twice`}},
		{"null name", "[" + jsonItem(`"name": null`) + "]", []string{`element 1 (SKU-X): name: must be a string, got null`}},
		{"number sku", "[" + jsonItem(`"sku": 42`) + "]", []string{`element 1: sku: must be a string, got a number`}},
		{"lower-case sku", "[" + jsonItem(`"sku": "sku-x"`) + "]", []string{`element 1: sku: must be 2 to 64 characters`}},
		{"sku starting with -", "[" + jsonItem(`"sku": "-X"`) + "]", []string{`element 1: sku: must be 2 to 64`}},
		{"one-character sku", "[" + jsonItem(`"sku": "X"`) + "]", []string{`element 1: sku: must be 2 to 64`}},
		{"sku too long", "[" + jsonItem(`"sku": "`+strings.Repeat("A", 65)+`"`) + "]", []string{`element 1: sku: must be 2 to 64`}},
		{"sku with a space", "[" + jsonItem(`"sku": "SKU X"`) + "]", []string{`element 1: sku: must be 2 to 64`}},
		{"name of 101 characters", "[" + jsonItem(`"name": "`+strings.Repeat("आ", 101)+`"`) + "]", []string{`element 1 (SKU-X): name: must be at most 100 characters, got 101`}},
		{"name with a bidi override", "[" + jsonItem(`"name": "Atta\u202e5 kg"`) + "]", []string{`element 1 (SKU-X): name: must not contain control characters (found U+202E)`}},
		{"name with a tab", "[" + jsonItem(`"name": "Atta\t5 kg"`) + "]", []string{`element 1 (SKU-X): name: must not contain control characters (found U+0009)`}},
		{"name with a leading space", "[" + jsonItem(`"name": " Atta"`) + "]", []string{`element 1 (SKU-X): name: must not begin or end with white space`}},
		{"empty category", "[" + jsonItem(`"category": ""`) + "]", []string{`element 1 (SKU-X): category: is required`}},
		{"array element", "[[1, 2]]", []string{`element 1: must be an object with sku, name, price, category and stock, got an array`}},
		{"duplicate", "[" + jsonItem("") + "," + jsonItem("") + "," + jsonItem("") + "]", []string{
			`element 2 (SKU-X): sku: duplicate of element 1`,
			`element 3 (SKU-X): sku: duplicate of element 1`,
		}},
		{"every problem of an element", `[{"sku": "x", "name": "", "price": {"value": 1.5, "offset": 10}, "category": "", "stock": -5, "extra": 1}]`, []string{
			`element 1: sku: must be 2 to 64`,
			`element 1: name: is required`,
			`element 1: price.value: must be a whole number of paise`,
			`element 1: price.offset: must be 100`,
			`element 1: category: is required`,
			`element 1: stock: must be 0 to 1000000`,
			`element 1: unknown field "extra"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commerce.ParseCatalogJSON(strings.NewReader(tt.in))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0] != one {
					t.Fatalf("got %+v, want [%+v]", got, one)
				}
				return
			}
			if got != nil {
				t.Errorf("products returned with an error: %+v", got)
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

func TestParseCatalogCSV(t *testing.T) {
	const header = commerce.CatalogCSVHeader + "\n"
	one := commerce.Product{SKU: "SKU-X", Name: "Item, large", Price: broker.INR(100), Category: "Staples", Stock: 1}
	const row = `SKU-X,"Item, large",100,Staples,1` + "\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one", header + row, nil},
		{"BOM", "\uFEFF" + header + row, nil},
		{"CRLF", strings.ReplaceAll(header+row, "\n", "\r\n"), nil},
		{"no final newline", header + strings.TrimSuffix(row, "\n"), nil},
		{"blank lines", header + "\n" + row + "\n\n", nil},
		{"padded fields", header + ` SKU-X , "Item, large", 100 ,Staples , 1 ` + "\n", nil},
		{"padded header", "sku, name, price_paise, category, stock\n" + row, nil},

		{"empty", "", []string{"the file is empty"}},
		{"BOM only", "\uFEFF", []string{"the file is empty"}},
		{"header only", header, []string{"the catalog has no products"}},
		{"wrong header", "sku,name,price,category,stock\n" + row, []string{`line 1: the header must be exactly "sku,name,price_paise,category,stock", got "sku,name,price,category,stock"`}},
		{"upper-case header", "SKU,NAME,PRICE_PAISE,CATEGORY,STOCK\n" + row, []string{`line 1: the header must be exactly`}},
		{"reordered header", "name,sku,price_paise,category,stock\n" + row, []string{`line 1: the header must be exactly`}},
		{"semicolons", "sku;name;price_paise;category;stock\nSKU-X;Item;100;Staples;1\n", []string{`line 1: the header must be exactly`}},
		{"no header", row, []string{`line 1: the header must be exactly`}},
		{"bare quote", header + `SKU-X,Item "large",100,Staples,1` + "\n", []string{`invalid CSV at line 2`}},
		{"too many fields", header + "SKU-X,Item,100,Staples,1,extra\n", []string{`line 2: has 6 fields, want 5`}},
		{"one field", header + "SKU-X\n", []string{`line 2: has 1 field, want 5`}},
		{"float price", header + "SKU-X,Item,289.50,Staples,1\n", []string{`line 2 (SKU-X): price_paise: must be a whole number of paise, got "289.50"`}},
		{"rupee price", header + "SKU-X,Item,₹289,Staples,1\n", []string{`line 2 (SKU-X): price_paise: must be a whole number of paise, got "₹289"`}},
		{"empty price", header + "SKU-X,Item,,Staples,1\n", []string{`line 2 (SKU-X): price_paise: is required`}},
		{"huge price", header + "SKU-X,Item,99999999999999999999,Staples,1\n", []string{`line 2 (SKU-X): price_paise: is out of range`}},
		{"negative price", header + "SKU-X,Item,-1,Staples,1\n", []string{`line 2 (SKU-X): price_paise: must be 1 to 10000000 paise`}},
		{"negative stock", header + "SKU-X,Item,100,Staples,-1\n", []string{`line 2 (SKU-X): stock: must be 0 to 1000000, got -1`}},
		{"float stock", header + "SKU-X,Item,100,Staples,1.0\n", []string{`line 2 (SKU-X): stock: must be a whole number of units, got "1.0"`}},
		{"empty stock", header + "SKU-X,Item,100,Staples,\n", []string{`line 2 (SKU-X): stock: is required`}},
		{"lower-case sku", header + "sku-x,Item,100,Staples,1\n", []string{`line 2: sku: must be 2 to 64 characters`}},
		{"duplicate", header + row + row, []string{`line 3 (SKU-X): sku: duplicate of line 2`}},
		{"control character", header + "SKU-X,\"Item\x1b[31m\",100,Staples,1\n", []string{`line 2 (SKU-X): name: must not contain control characters (found U+001B)`}},
		{"long category", header + "SKU-X,Item,100," + strings.Repeat("c", 41) + ",1\n", []string{`line 2 (SKU-X): category: must be at most 40 characters, got 41`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commerce.ParseCatalogCSV(strings.NewReader(tt.in))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0] != one {
					t.Fatalf("got %+v, want [%+v]", got, one)
				}
				return
			}
			if got != nil {
				t.Errorf("products returned with an error: %+v", got)
			}
			wantProblems(t, err, tt.want...)
		})
	}
}

func TestParseCatalogChoosesFormat(t *testing.T) {
	jsonDoc := "[" + jsonItem("") + "]"
	csvDoc := commerce.CatalogCSVHeader + "\nSKU-X,Item,100,Staples,1\n"
	tests := []struct {
		name, file, in string
		wantErr        string
	}{
		{"json extension", "catalog.json", jsonDoc, ""},
		{"upper-case extension", "CATALOG.JSON", jsonDoc, ""},
		{"csv extension", "dir/catalog.csv", csvDoc, ""},
		{"sniffed JSON", "-", " \n" + jsonDoc, ""},
		{"sniffed JSON with BOM", "catalog.txt", "\uFEFF" + jsonDoc, ""},
		{"sniffed CSV", "catalog.txt", csvDoc, ""},
		{"sniffed CSV with BOM", "", "\uFEFF" + csvDoc, ""},
		{"extension wins", "catalog.csv", jsonDoc, "line 1: the header must be exactly"},
		{"unknown content", "catalog.xlsx", "PK\x03\x04", `cannot tell whether "catalog.xlsx" is JSON or CSV`},
		{"empty unknown", "catalog", "", "the file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commerce.ParseCatalog(tt.file, strings.NewReader(tt.in))
			if tt.wantErr == "" {
				if err != nil || len(got) != 1 || got[0].SKU != "SKU-X" {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			wantProblems(t, err, tt.wantErr)
		})
	}
}

func TestParseCatalogFileProblems(t *testing.T) {
	t.Run("not UTF-8", func(t *testing.T) {
		in := commerce.CatalogCSVHeader + "\nSKU-X,It\xe9m,100,Staples,1\n"
		_, err := commerce.ParseCatalogCSV(strings.NewReader(in))
		wantProblems(t, err, "the file is not UTF-8 text (invalid byte at line 2, column 9)")
	})
	t.Run("too large", func(t *testing.T) {
		in := bytes.Repeat([]byte(" "), commerce.MaxCatalogBytes+1)
		_, err := commerce.ParseCatalogJSON(bytes.NewReader(in))
		wantProblems(t, err, "the file is larger than 8 MiB")
	})
	t.Run("too many products", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(commerce.CatalogCSVHeader + "\n")
		for i := range commerce.MaxProducts + 1 {
			b.WriteString("SKU-" + strings.Repeat("A", 1+i%3) + "-" + itoa(i) + ",Item,100,Staples,1\n")
		}
		_, err := commerce.ParseCatalogCSV(strings.NewReader(b.String()))
		wantProblems(t, err, "more than 10000 products")
	})
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("disk on fire")
		_, err := commerce.ParseCatalogJSON(iotest.ErrReader(boom))
		if !errors.Is(err, boom) || broker.ErrorCode(err) != broker.EInternal {
			t.Fatalf("err = %v, want the read error, internal", err)
		}
	})
	t.Run("many problems are capped", func(t *testing.T) {
		var items []string
		for range 30 {
			items = append(items, jsonItem(`"sku": "bad"`))
		}
		_, err := commerce.ParseCatalogJSON(strings.NewReader("[" + strings.Join(items, ",") + "]"))
		got := problems(t, err)
		var ce *commerce.CatalogError
		errors.As(err, &ce)
		if len(got) != commerce.MaxProblems || ce.More != 30+29-commerce.MaxProblems {
			t.Fatalf("%d problems listed, %d more; want %d and %d", len(got), ce.More, commerce.MaxProblems, 30+29-commerce.MaxProblems)
		}
		if !strings.HasSuffix(err.Error(), "; and 39 more problems") {
			t.Errorf("error text does not end with the count: %q", err.Error())
		}
	})
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestCatalogValidateProducts(t *testing.T) {
	good := commerce.Product{SKU: "SKU-X", Name: "Item", Price: broker.INR(100), Category: "Staples", Stock: 0}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	noCurrency := good
	noCurrency.Price.Currency = ""
	if err := noCurrency.Validate(); err != nil {
		t.Errorf("a price without a currency is INR: %v", err)
	}
	tests := []struct {
		name   string
		change func(p *commerce.Product)
		want   string
	}{
		{"offset", func(p *commerce.Product) { p.Price.Offset = 1 }, "price: offset must be 100 (paise), got 1"},
		{"zero offset", func(p *commerce.Product) { p.Price = broker.Money{Value: 100} }, "price: offset must be 100"},
		{"currency", func(p *commerce.Product) { p.Price.Currency = "USD" }, `price: currency must be INR, got "USD"`},
		{"price", func(p *commerce.Product) { p.Price.Value = 0 }, "price: must be 1 to 10000000 paise"},
		{"stock", func(p *commerce.Product) { p.Stock = -1 }, "stock: must be 0 to 1000000"},
		{"sku", func(p *commerce.Product) { p.SKU = "" }, "sku: is required"},
		{"name", func(p *commerce.Product) { p.Name = "a\nb" }, "name: must not contain control characters"},
		{"invalid UTF-8", func(p *commerce.Product) { p.Name = "\xff" }, "name: is not valid UTF-8"},
		{"category", func(p *commerce.Product) { p.Category = "x\u2028y" }, "category: must not contain control characters (found U+2028)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.change(&p)
			wantProblems(t, p.Validate(), tt.want)
			wantProblems(t, commerce.ValidateProducts([]commerce.Product{p}), "product 1")
		})
	}
	t.Run("duplicates", func(t *testing.T) {
		wantProblems(t, commerce.ValidateProducts([]commerce.Product{good, good}), "product 2 (SKU-X): sku: duplicate of product 1")
	})
	if err := commerce.ValidateProducts(nil); err != nil {
		t.Errorf("an empty list is valid: %v", err)
	}
}

func TestCatalogValidSKU(t *testing.T) {
	for s, want := range map[string]bool{
		"SKU-ATTA-5KG": true, "9-CURD": true, "AB": true, strings.Repeat("A", 64): true,
		"A": false, "": false, "-AB": false, "sku-atta": false, "SKU ATTA": false, "SKU_ATTA": false,
		strings.Repeat("A", 65): false, "SKU-ATTA\n": false, "ŚKU": false,
	} {
		if got := commerce.ValidSKU(s); got != want {
			t.Errorf("ValidSKU(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCatalogErrorCodes(t *testing.T) {
	se := &commerce.StockError{Shortages: []commerce.Shortage{{SKU: "SKU-ATTA-5KG", Available: 2, Wanted: 3}}}
	var err error = se
	if broker.ErrorCode(err) != broker.EConflict {
		t.Errorf("StockError code = %q, want conflict", broker.ErrorCode(err))
	}
	if got, want := broker.ErrorMessage(err), "insufficient stock: SKU-ATTA-5KG (2 left, 3 wanted)"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestDemoCatalog(t *testing.T) {
	demo := commerce.DemoCatalog()
	if len(demo) < 60 {
		t.Fatalf("the demo catalog has %d products, want at least 60", len(demo))
	}
	if err := commerce.ValidateProducts(demo); err != nil {
		t.Fatal(err)
	}
	bySKU := make(map[string]commerce.Product)
	perCategory := make(map[string]int)
	for _, p := range demo {
		bySKU[p.SKU] = p
		perCategory[p.Category]++
		if p.Stock < 1 {
			t.Errorf("%s is out of stock; demo products should be orderable", p.SKU)
		}
	}
	for _, want := range []commerce.Product{
		{SKU: "SKU-ATTA-5KG", Name: "Atta 5 kg", Price: broker.INR(28950), Category: "Staples"},
		{SKU: "SKU-MILK-1L", Name: "Toned Milk 1 L", Price: broker.INR(6400), Category: "Dairy"},
	} {
		got, ok := bySKU[want.SKU]
		if !ok {
			t.Errorf("%s is missing", want.SKU)
			continue
		}
		want.Stock = got.Stock
		if got != want {
			t.Errorf("%s = %+v, want %+v", want.SKU, got, want)
		}
	}
	for _, c := range []string{"Staples", "Oils & Ghee", "Dairy", "Fruits & Vegetables", "Spices & Masala",
		"Snacks & Biscuits", "Beverages", "Personal Care", "Household"} {
		if perCategory[c] < 3 {
			t.Errorf("category %q has %d products, want at least 3", c, perCategory[c])
		}
	}
	// The caller owns its copy.
	demo[0].Name = "changed"
	if commerce.DemoCatalog()[0].Name == "changed" {
		t.Error("DemoCatalog returns a shared slice")
	}
}

func TestCatalogJSONRoundTrip(t *testing.T) {
	// The JSON of []Product (price with "currency") is an importable catalog.
	demo := commerce.DemoCatalog()
	b, err := json.Marshal(demo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := commerce.ParseCatalogJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, demo) {
		t.Error("the demo catalog does not survive a JSON round trip")
	}
}

// checkParsed holds for any input: a parse either fails with a one-line
// *CatalogError of at most MaxProblems problems, or returns valid, unique
// products that survive a JSON round trip.
func checkParsed(t *testing.T, ps []commerce.Product, err error) {
	t.Helper()
	if err != nil {
		var ce *commerce.CatalogError
		if !errors.As(err, &ce) || broker.ErrorCode(err) != broker.EInvalid {
			t.Fatalf("error %v (%T) is not a *CatalogError", err, err)
		}
		if len(ce.Problems) == 0 || len(ce.Problems) > commerce.MaxProblems || strings.Contains(err.Error(), "\n") {
			t.Fatalf("malformed error: %q", err.Error())
		}
		if ps != nil {
			t.Fatal("products returned with an error")
		}
		return
	}
	if len(ps) == 0 {
		t.Fatal("no products and no error")
	}
	if err := commerce.ValidateProducts(ps); err != nil {
		t.Fatalf("parsed products are invalid: %v", err)
	}
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	again, err := commerce.ParseCatalogJSON(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(again, ps) {
		t.Fatalf("round trip: %v", err)
	}
}

func FuzzParseCatalogJSON(f *testing.F) {
	f.Add(readTestdata(f, "catalog_valid.json"))
	f.Add(readTestdata(f, "catalog_invalid.json"))
	f.Add([]byte("[" + jsonItem(`"price": {"value": 1, "offset": 100, "currency": "INR"}`) + "]"))
	f.Add([]byte(`[{"sku":"AB","name":"\u00e9","price":{"value":1,"offset":100},"category":"c","stock":0}]`))
	f.Add([]byte("\uFEFF[]"))
	f.Add([]byte(`[{"sku":"AB","sku":"AB"}] [`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := commerce.ParseCatalogJSON(bytes.NewReader(data))
		checkParsed(t, ps, err)
	})
}

func FuzzParseCatalogCSV(f *testing.F) {
	f.Add(readTestdata(f, "catalog_valid.csv"))
	f.Add(readTestdata(f, "catalog_invalid.csv"))
	f.Add([]byte("\uFEFF" + commerce.CatalogCSVHeader + "\r\nAB,\"x\"\"y\",1,c,0\r\n"))
	f.Add([]byte(commerce.CatalogCSVHeader + "\nAB,x,1,c\n\"unterminated"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := commerce.ParseCatalogCSV(bytes.NewReader(data))
		checkParsed(t, ps, err)
		// Sniffing never panics either, whatever it picks.
		ps, err = commerce.ParseCatalog("upload", bytes.NewReader(data))
		checkParsed(t, ps, err)
	})
}
