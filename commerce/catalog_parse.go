package commerce

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sieve-broker/sieve/broker"
)

// ParseCatalog parses a catalog file named name: JSON when the name ends in
// .json, CSV when it ends in .csv (any case); otherwise by its content: a
// JSON array starts with '[', a CSV file with its header.
func ParseCatalog(name string, r io.Reader) ([]Product, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return ParseCatalogJSON(r)
	case ".csv":
		return ParseCatalogCSV(r)
	}
	data, err := readCatalog(r)
	if err != nil {
		return nil, err
	}
	body := bytes.TrimLeft(trimUTF8BOM(data), " \t\r\n")
	switch {
	case len(body) == 0:
		return nil, fileProblem("the file is empty")
	case body[0] == '[':
		return parseJSON(data)
	case bytes.HasPrefix(body, []byte("sku,")):
		return parseCSV(data)
	}
	return nil, fileProblem("cannot tell whether %s is JSON or CSV: name it .json or .csv", quoteShort(filepath.Base(name)))
}

// ParseCatalogJSON parses a JSON catalog: an array of
// {"sku","name","price":{"value","offset":100},"category","stock"}. It is
// strict: unknown or repeated fields, a missing field, an offset other than
// 100, a price or stock that is not an integer (12.5, "12", 1e3), a
// duplicate SKU or an empty array reject the whole file. "price" may also
// carry "currency":"INR", as the JSON of Product does. Problems are listed
// by element (1-based) and field in a *CatalogError; a read error is
// returned as is.
func ParseCatalogJSON(r io.Reader) ([]Product, error) {
	data, err := readCatalog(r)
	if err != nil {
		return nil, err
	}
	return parseJSON(data)
}

// ParseCatalogCSV parses a CSV catalog whose first line is exactly
// CatalogCSVHeader (a UTF-8 byte order mark before it, as spreadsheets
// write, and spaces around the names are ignored). Fields are trimmed of
// surrounding white space; price_paise and stock are integers. Problems are
// listed by line and field in a *CatalogError, with the same rules as
// ParseCatalogJSON; a read error is returned as is.
func ParseCatalogCSV(r io.Reader) ([]Product, error) {
	data, err := readCatalog(r)
	if err != nil {
		return nil, err
	}
	return parseCSV(data)
}

// readCatalog reads a whole catalog file, bounded by MaxCatalogBytes, and
// checks that it is UTF-8.
func readCatalog(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxCatalogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	if len(data) > MaxCatalogBytes {
		return nil, fileProblem("the file is larger than %d MiB", MaxCatalogBytes>>20)
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := textPosition(data, off)
		return nil, fileProblem("the file is not UTF-8 text (invalid byte at line %d, column %d)", line, col)
	}
	return data, nil
}

var utf8BOM = []byte("\uFEFF")

func trimUTF8BOM(b []byte) []byte { return bytes.TrimPrefix(b, utf8BOM) }

// textPosition returns the 1-based line and column (in bytes) of the byte at
// index i of data.
func textPosition(data []byte, i int) (line, col int) {
	i = max(0, min(i, len(data)))
	before := data[:i]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = i - bytes.LastIndexByte(before, '\n')
	return line, col
}

// checkCatalogJSONSyntax reports the first syntax error of data with its
// line and column. It runs before the element-by-element decoding, whose decoder
// counts offsets from the start of each element rather than of the file.
func checkCatalogJSONSyntax(data []byte) error {
	if json.Valid(data) {
		return nil
	}
	err := json.Unmarshal(data, new(json.RawMessage))
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, the offending one included.
		line, col := textPosition(data, int(se.Offset)-1)
		return fileProblem("invalid JSON at line %d, column %d: %s", line, col, se.Error())
	}
	return fileProblem("invalid JSON")
}

func parseJSON(data []byte) ([]Product, error) {
	data = trimUTF8BOM(data)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileProblem("the file is empty")
	}
	if err := checkCatalogJSONSyntax(data); err != nil {
		return nil, err
	}
	// The syntax is valid from here on: decoding errors cannot happen, but
	// are still reported rather than ignored.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fileProblem(`must be a JSON array of products, [{"sku": …, "name": …, "price": {"value": …, "offset": 100}, "category": …, "stock": …}, …]`)
	}
	var (
		out   []Product
		ps    catalogProblems
		first = make(map[string]int)
	)
	for i := 1; dec.More(); i++ {
		where := fmt.Sprintf("element %d", i)
		if i > MaxProducts {
			ps.add(Problem{Message: fmt.Sprintf("more than %d products; split the file", MaxProducts)})
			return nil, ps.err()
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			ps.add(Problem{Where: where, Message: "invalid JSON: " + err.Error()})
			return nil, ps.err()
		}
		p, nps := decodeJSONProduct(raw)
		for _, np := range nps {
			ps.add(Problem{Where: where, SKU: skuOf(p.SKU), Field: np.field, Message: np.msg})
		}
		ps.noteSKU(first, p.SKU, where, "element", i)
		out = append(out, p)
	}
	return ps.result(out, "the catalog has no products")
}

// namedProblem is a problem with a field named as the file spells it.
type namedProblem struct {
	field string
	msg   string
}

// catalogJSONMembers visits the members of the JSON object raw in order. It
// returns false when raw is not an object. raw must be syntactically valid.
func catalogJSONMembers(raw json.RawMessage, visit func(key string, val json.RawMessage)) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return false
		}
		visit(key, val)
	}
	return true
}

// catalogJSONKind names the kind of a JSON value for messages.
func catalogJSONKind(val json.RawMessage) string {
	if len(val) == 0 {
		return "nothing"
	}
	switch val[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func catalogJSONString(val json.RawMessage) (string, string) {
	if len(val) == 0 || val[0] != '"' {
		return "", "must be a string, got " + catalogJSONKind(val)
	}
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		return "", "must be a string"
	}
	return s, ""
}

// catalogJSONInt decodes an integer, refusing fractions and exponents: a
// price of 289.5 most likely means rupees where paise were expected.
func catalogJSONInt(val json.RawMessage, unit string) (int64, string) {
	if catalogJSONKind(val) != "a number" {
		return 0, fmt.Sprintf("must be a whole number of %s, got %s", unit, catalogJSONKind(val))
	}
	s := string(val)
	if strings.ContainsAny(s, ".eE") {
		return 0, fmt.Sprintf("must be a whole number of %s, got %s", unit, quoteShort(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("is out of range, got %s", quoteShort(s))
	}
	return n, ""
}

// decodeJSONProduct decodes one element of a JSON catalog and checks it.
// Problems come in the order of the element's members, then missing ones.
func decodeJSONProduct(raw json.RawMessage) (Product, []namedProblem) {
	var (
		p    Product
		out  []namedProblem
		seen = make(map[string]bool)
	)
	fail := func(name, msg string) {
		if msg != "" {
			out = append(out, namedProblem{name, msg})
		}
	}
	text := func(name string, val json.RawMessage, check func(string) string) string {
		s, msg := catalogJSONString(val)
		if msg == "" {
			msg = check(s)
		}
		fail(name, msg)
		return s
	}
	checkName := func(s string) string { return checkProductText(s, MaxNameRunes) }
	checkCategory := func(s string) string { return checkProductText(s, MaxCategoryRunes) }
	ok := catalogJSONMembers(raw, func(key string, val json.RawMessage) {
		if seen[key] {
			fail(quoteShort(key), "appears twice")
			return
		}
		seen[key] = true
		switch key {
		case "sku":
			p.SKU = text("sku", val, checkSKU)
		case "name":
			p.Name = text("name", val, checkName)
		case "category":
			p.Category = text("category", val, checkCategory)
		case "stock":
			n, msg := catalogJSONInt(val, "units")
			if msg == "" {
				msg = checkStock(n)
			}
			fail("stock", msg)
			p.Stock = int(n)
		case "price":
			var nps []namedProblem
			p.Price, nps = decodeJSONPrice(val)
			out = append(out, nps...)
		default:
			fail("", fmt.Sprintf("unknown field %s (the fields are sku, name, price, category, stock)", quoteShort(key)))
		}
	})
	if !ok {
		return Product{}, []namedProblem{{"", "must be an object with sku, name, price, category and stock, got " + catalogJSONKind(raw)}}
	}
	for _, k := range []string{"sku", "name", "price", "category", "stock"} {
		if !seen[k] {
			fail(k, "is required")
		}
	}
	return p, out
}

// decodeJSONPrice decodes {"value": paise, "offset": 100[, "currency": "INR"]}.
func decodeJSONPrice(val json.RawMessage) (broker.Money, []namedProblem) {
	m := broker.INR(0)
	var out []namedProblem
	if catalogJSONKind(val) != "an object" {
		return m, []namedProblem{{"price", `must be an object {"value": <paise>, "offset": 100}, got ` + catalogJSONKind(val)}}
	}
	seen := make(map[string]bool)
	catalogJSONMembers(val, func(key string, v json.RawMessage) {
		if seen[key] {
			out = append(out, namedProblem{"price." + quoteShort(key), "appears twice"})
			return
		}
		seen[key] = true
		switch key {
		case "value":
			n, msg := catalogJSONInt(v, "paise")
			if msg == "" {
				msg = checkPaise(n)
			}
			if msg != "" {
				out = append(out, namedProblem{"price.value", msg})
			}
			m.Value = n
		case "offset":
			n, msg := catalogJSONInt(v, "")
			if msg != "" || n != broker.OffsetINR {
				out = append(out, namedProblem{"price.offset", fmt.Sprintf("must be %d (prices are in paise), got %s", broker.OffsetINR, quoteShort(string(v)))})
			}
		case "currency":
			s, msg := catalogJSONString(v)
			if msg == "" && s != "INR" {
				msg = "must be INR, got " + quoteShort(s)
			}
			if msg != "" {
				out = append(out, namedProblem{"price.currency", msg})
			}
		default:
			out = append(out, namedProblem{"price", fmt.Sprintf("unknown field %s (the fields are value and offset)", quoteShort(key))})
		}
	})
	for _, k := range []string{"value", "offset"} {
		if !seen[k] {
			out = append(out, namedProblem{"price." + k, "is required"})
		}
	}
	return m, out
}

func parseCSV(data []byte) ([]Product, error) {
	data = trimUTF8BOM(data)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileProblem("the file is empty")
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // counted below, to report and go on
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		// Not CSV on the first line, so not our header either.
		firstLine, _, _ := bytes.Cut(data, []byte("\n"))
		header = []string{string(bytes.TrimSpace(firstLine))}
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if got := strings.Join(header, ","); got != CatalogCSVHeader {
		return nil, fileProblem("line 1: the header must be exactly %q, got %s", CatalogCSVHeader, quoteShort(got))
	}
	var (
		out   []Product
		ps    catalogProblems
		first = make(map[string]int)
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A quoting error can swallow the rest of the file: stop here.
			ps.add(Problem{Message: describeCatalogCSVError(err)})
			return nil, ps.err()
		}
		if len(out) >= MaxProducts {
			ps.add(Problem{Message: fmt.Sprintf("more than %d products; split the file", MaxProducts)})
			return nil, ps.err()
		}
		lineNo, _ := cr.FieldPos(0)
		where := fmt.Sprintf("line %d", lineNo)
		if len(rec) != 5 {
			ps.add(Problem{Where: where, Message: fmt.Sprintf("has %d field%s, want 5 (%s)", len(rec), pluralS(len(rec)), CatalogCSVHeader)})
			out = append(out, Product{})
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		p := Product{SKU: rec[0], Name: rec[1], Price: broker.INR(0), Category: rec[3]}
		var bad [nFields]bool
		report := func(f productField, msg string) {
			ps.add(Problem{Where: where, SKU: skuOf(p.SKU), Field: csvFields[f], Message: msg})
			bad[f] = true
		}
		if n, msg := catalogCSVInt(rec[2], "paise"); msg != "" {
			report(fPrice, msg)
		} else {
			p.Price.Value = n
		}
		if n, msg := catalogCSVInt(rec[4], "units"); msg != "" {
			report(fStock, msg)
		} else if msg := checkStock(n); msg != "" {
			report(fStock, msg)
		} else {
			p.Stock = int(n)
		}
		for _, fp := range p.check() {
			if !bad[fp.f] {
				report(fp.f, fp.msg)
			}
		}
		ps.noteSKU(first, p.SKU, where, "line", lineNo)
		out = append(out, p)
	}
	return ps.result(out, "the catalog has no products (only a header)")
}

func catalogCSVInt(s, unit string) (int64, string) {
	if s == "" {
		return 0, "is required"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, "is out of range, got " + quoteShort(s)
		}
		return 0, fmt.Sprintf("must be a whole number of %s, got %s", unit, quoteShort(s))
	}
	return n, ""
}

func describeCatalogCSVError(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("invalid CSV at line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
	}
	return "invalid CSV: " + err.Error()
}

// noteSKU records where sku first appeared (element or line n), and a
// problem where it appears again.
func (ps *catalogProblems) noteSKU(first map[string]int, sku, where, unit string, n int) {
	if sku == "" {
		return
	}
	if j, dup := first[sku]; dup {
		ps.add(Problem{Where: where, SKU: skuOf(sku), Field: "sku", Message: fmt.Sprintf("duplicate of %s %d", unit, j)})
		return
	}
	first[sku] = n
}

// result is the parsed catalog, or the problems found; an empty catalog
// with no other problem is one (empty says why).
func (ps *catalogProblems) result(out []Product, empty string) ([]Product, error) {
	if len(out) == 0 && len(ps.list) == 0 {
		ps.add(Problem{Message: empty})
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}
