// The strict, allocation-free reading of a canonical leaf: ScanLeaf,
// LeafMatches and the scanner under them (the encoding is canonical.go).

package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// LeafView is a canonical leaf split into its fields without copying: each
// string field is the raw JSON string content (between the quotes, still
// escaped), each list the raw content between the brackets. It is filled by
// ScanLeaf and valid as long as the scanned bytes are.
type LeafView struct {
	Index          uint64
	TimeMicros     int64 // Unix microseconds, UTC
	DecisionID     []byte
	Actor          []byte
	Action         []byte
	Purpose        []byte
	Subject        []byte
	Resource       []byte
	Released       []byte
	Withheld       []byte
	Outcome        []byte
	Reason         []byte
	PolicyRevision []byte
	// HasRetainUntil says whether the optional retain_until is present;
	// RetainUntilMicros is then its Unix microseconds, UTC.
	HasRetainUntil    bool
	RetainUntilMicros int64
	// Optional fields: nil when the leaf does not hold them.
	NoticeSHA256 []byte
	Lang         []byte
	// The optional legal fields; nil when the leaf has none.
	RecipientRole []byte
	Jurisdiction  []byte
	TransferBasis []byte

	// Escaped reports whether any string field holds an escape sequence;
	// if not, every field's raw content is its value.
	Escaped bool
}

// Keys returns the raw filter fields, in KeyNames order.
func (v *LeafView) Keys() [len(KeyNames)][]byte {
	return [...][]byte{v.DecisionID, v.Actor, v.Action, v.Purpose, v.Subject, v.Resource, v.Outcome}
}

// RawEqual reports whether the raw JSON string content raw (a LeafView field)
// decodes to s. It does not allocate unless raw holds an escape.
func RawEqual(raw []byte, s string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == s
	}
	return unquote(raw) == s
}

// RawEqualBytes is RawEqual for a value given as bytes.
func RawEqualBytes(raw, b []byte) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.Equal(raw, b)
	}
	return unquote(raw) == string(b)
}

// Unquote decodes a raw JSON string content (a LeafView field).
func Unquote(raw []byte) string { return unquote(raw) }

// scanner walks a leaf left to right.
type scanner struct {
	b   []byte
	pos int
	esc bool // a string read so far held an escape
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrNotCanonical, what, s.pos)
}

func (s *scanner) lit(l string) bool {
	if len(s.b)-s.pos < len(l) || string(s.b[s.pos:s.pos+len(l)]) != l {
		return false
	}
	s.pos += len(l)
	return true
}

// ScanLeaf checks that b is a canonical leaf and fills v with its fields.
// It accepts exactly the byte strings ParseEntry accepts, without
// allocating; errors wrap ErrNotCanonical.
func ScanLeaf(b []byte, v *LeafView) error {
	if len(b) > MaxLeafSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrNotCanonical, len(b), MaxLeafSize)
	}
	s := scanner{b: b}
	if !s.lit(keyIndex) {
		return s.fail(`expected {"index":`)
	}
	idx, err := s.uint()
	if err != nil {
		return err
	}
	v.Index = idx
	if !s.lit(keyTime) {
		return s.fail(`expected ,"time":"`)
	}
	if v.TimeMicros, err = s.time(); err != nil {
		return err
	}
	// Straight-line, so that every key is a constant and its comparison
	// compiles to word compares.
	if v.DecisionID, err = s.field(s.lit(keyDecision), keyDecision); err != nil {
		return err
	}
	if v.Actor, err = s.field(s.lit(keyActor), keyActor); err != nil {
		return err
	}
	if v.Action, err = s.field(s.lit(keyAction), keyAction); err != nil {
		return err
	}
	if v.Purpose, err = s.field(s.lit(keyPurpose), keyPurpose); err != nil {
		return err
	}
	if v.Subject, err = s.field(s.lit(keySubject), keySubject); err != nil {
		return err
	}
	if v.Resource, err = s.field(s.lit(keyResource), keyResource); err != nil {
		return err
	}
	if !s.lit(keyReleased) {
		return s.fail("expected " + keyReleased)
	}
	if v.Released, err = s.list(); err != nil {
		return err
	}
	if !s.lit(keyWithheld) {
		return s.fail("expected " + keyWithheld)
	}
	if v.Withheld, err = s.list(); err != nil {
		return err
	}
	if v.Outcome, err = s.field(s.lit(keyOutcome), keyOutcome); err != nil {
		return err
	}
	if v.Reason, err = s.field(s.lit(keyReason), keyReason); err != nil {
		return err
	}
	if v.PolicyRevision, err = s.field(s.lit(keyPolicy), keyPolicy); err != nil {
		return err
	}
	v.HasRetainUntil, v.RetainUntilMicros = false, 0
	if s.lit(keyRetain) {
		if v.RetainUntilMicros, err = s.time(); err != nil {
			return err
		}
		if !s.lit(`"`) {
			return s.fail(`expected " after retain_until`)
		}
		v.HasRetainUntil = true
	}
	v.NoticeSHA256, v.Lang = nil, nil
	if s.lit(keyNotice) {
		// Present means not empty: an empty value would not re-encode.
		if v.NoticeSHA256, err = s.str(); err != nil {
			return err
		}
		if len(v.NoticeSHA256) == 0 {
			return s.fail("empty optional field notice_sha256")
		}
	}
	if s.lit(keyLang) {
		if v.Lang, err = s.str(); err != nil {
			return err
		}
		if len(v.Lang) == 0 {
			return s.fail("empty optional field lang")
		}
	}
	v.RecipientRole, v.Jurisdiction, v.TransferBasis = nil, nil, nil
	for i, dst := range [3]*[]byte{&v.RecipientRole, &v.Jurisdiction, &v.TransferBasis} {
		if !s.lit(legalKeys[i]) {
			continue
		}
		if *dst, err = s.str(); err != nil {
			return err
		}
		if len(*dst) == 0 { // an empty optional field is omitted, never written
			return s.fail("empty " + legalKeys[i])
		}
	}
	if !s.lit("}") || s.pos != len(b) {
		return s.fail("expected } at the end")
	}
	v.Escaped = s.esc
	return nil
}

// leafKeyHeads are what precedes each filter field's value in a canonical
// leaf, from the time's closing quote on: the value's key and quotes.
var leafKeyHeads = [...]string{`","decision_id":"`, `","actor":"`, `","action":"`, `","purpose":"`,
	`","subject":"`, `","resource":"`}

// LeafMatches reports whether the canonical leaf holds index idx, the time
// timeMicros and the filter fields keys (KeyNames order, joined by
// KeySeparator), checking only those: it is how a store's derived columns
// are checked against a leaf whose bytes a Merkle tree already vouches for
// (so the leaf is known to be canonical). It reads the leaf once and
// compares the fields as raw bytes, so it answers false, meaning "not
// shown", whenever a field would need an escape: check those with
// ScanLeaf. It never answers true for fields the leaf does not hold.
func LeafMatches(leaf []byte, idx uint64, timeMicros int64, keys []byte) bool {
	// Without a quote or a backslash in the fields, raw bytes equal to a
	// field and followed by a quote are that whole string, unescaped.
	if bytes.IndexByte(keys, '"') >= 0 || bytes.IndexByte(keys, '\\') >= 0 {
		return false
	}
	s := scanner{b: leaf}
	var num [20]byte
	if !s.lit(keyIndex) || !s.raw(strconv.AppendUint(num[:0], idx, 10)) || !s.lit(keyTime) {
		return false
	}
	if t, err := s.time(); err != nil || t != timeMicros {
		return false
	}
	for _, head := range leafKeyHeads {
		end := bytes.IndexByte(keys, KeySeparator)
		if end < 0 || !s.lit(head) || !s.raw(keys[:end]) {
			return false
		}
		keys = keys[end+1:]
	}
	if !s.lit(`"` + keyReleased) {
		return false
	}
	// The lists hold strings only, and a string holds no raw quote: the
	// first `],"outcome":"` ends the withheld list.
	const outcomeHead = `],"outcome":"`
	at := bytes.Index(s.b[s.pos:], []byte(outcomeHead))
	if at < 0 || bytes.IndexByte(keys, KeySeparator) >= 0 {
		return false
	}
	s.pos += at + len(outcomeHead)
	return s.raw(keys) && s.lit(`"`+keyReason)
}

// raw matches the bytes r at the current position.
func (s *scanner) raw(r []byte) bool {
	if !bytes.HasPrefix(s.b[s.pos:], r) {
		return false
	}
	s.pos += len(r)
	return true
}

// field reads the string value after a key the caller matched (ok).
func (s *scanner) field(ok bool, key string) ([]byte, error) {
	if !ok {
		return nil, s.fail("expected " + key)
	}
	return s.str()
}

// uint reads a decimal without leading zeros that fits in uint64.
func (s *scanner) uint() (uint64, error) {
	start := s.pos
	var n uint64
	for s.pos < len(s.b) && s.b[s.pos] >= '0' && s.b[s.pos] <= '9' {
		d := uint64(s.b[s.pos] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, s.fail("index overflows uint64")
		}
		n = n*10 + d
		s.pos++
	}
	switch {
	case s.pos == start:
		return 0, s.fail("expected a decimal index")
	case s.b[start] == '0' && s.pos-start > 1:
		return 0, s.fail("leading zero in index")
	}
	return n, nil
}

// digits reads exactly n decimal digits.
func (s *scanner) digits(n int) (int, bool) {
	if len(s.b)-s.pos < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := s.b[s.pos+i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	s.pos += n
	return v, true
}

// time reads the time as time.RFC3339Nano formats a UTC time truncated to
// microseconds, up to the Z (the closing quote belongs to the next key).
func (s *scanner) time() (int64, error) {
	bad := func() (int64, error) { return 0, s.fail("time is not canonical RFC 3339 UTC") }
	year, ok := s.digits(4)
	if !ok || !s.lit("-") {
		return bad()
	}
	month, ok := s.digits(2)
	if !ok || !s.lit("-") || month < 1 || month > 12 {
		return bad()
	}
	day, ok := s.digits(2)
	if !ok || !s.lit("T") || day < 1 || day > daysIn(time.Month(month), year) {
		return bad()
	}
	hour, ok := s.digits(2)
	if !ok || !s.lit(":") || hour > 23 {
		return bad()
	}
	minute, ok := s.digits(2)
	if !ok || !s.lit(":") || minute > 59 {
		return bad()
	}
	sec, ok := s.digits(2)
	if !ok || sec > 59 {
		return bad()
	}
	micros := 0
	if s.lit(".") {
		n := 0
		for s.pos < len(s.b) && s.b[s.pos] >= '0' && s.b[s.pos] <= '9' {
			if n == 6 {
				return bad()
			}
			micros = micros*10 + int(s.b[s.pos]-'0')
			s.pos++
			n++
		}
		if n == 0 || s.b[s.pos-1] == '0' { // RFC3339Nano drops trailing zeros
			return bad()
		}
		for ; n < 6; n++ {
			micros *= 10
		}
	}
	if !s.lit("Z") {
		return bad()
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return secs*1_000_000 + int64(micros), nil
}

// daysFromCivil returns the days from 1970-01-01 to the given proleptic
// Gregorian date (H. Hinnant's algorithm), cheaper than time.Date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// str reads a canonical JSON string and returns its content (escaped).
func (s *scanner) str() ([]byte, error) {
	b, esc, err := s.strEsc()
	s.esc = s.esc || esc
	return b, err
}

const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// zeroBytes sets the high bit of each zero byte of x, and may set it in a
// byte above (after) a zero byte too: exact for "is there one" and for
// "which is the first".
func zeroBytes(x uint64) uint64 {
	return (x - swarOnes) &^ x & swarHighs
}

// needCare sets the high bit of each byte of x (read little-endian) that a
// canonical string may hold only escaped or after a check: a control byte,
// '\\', '<', '>', '&', '"' or a byte of a multi-byte character. As with
// zeroBytes, the first flagged byte is exact.
func needCare(x uint64) uint64 {
	return (x | (x-0x20*swarOnes)&^x | // >= 0x80, or < 0x20
		zeroBytes(x^('"'*swarOnes)) |
		zeroBytes(x^('\\'*swarOnes)) |
		zeroBytes((x|0x02*swarOnes)^('>'*swarOnes)) | // '<' (0x3c) or '>' (0x3e)
		zeroBytes(x^('&'*swarOnes))) & swarHighs
}

// strEsc is str that also reports whether the content holds an escape.
func (s *scanner) strEsc() ([]byte, bool, error) {
	if !s.lit(`"`) {
		return nil, false, s.fail("expected a string")
	}
	start := s.pos
	b := s.b
	// Almost every string is printable ASCII with nothing to escape: find
	// its end a word at a time, and take the careful loop below only from
	// the first byte that needs care, if that is not the closing quote.
	i := start
	for ; i+8 <= len(b); i += 8 {
		if m := needCare(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			break
		}
	}
	for i < len(b) && b[i] < utf8.RuneSelf && plain[b[i]] {
		i++
	}
	if i < len(b) && b[i] == '"' {
		s.pos = i + 1
		return b[start:i], false, nil
	}
	s.pos = i
	esc := false
	for s.pos < len(b) {
		c := b[s.pos]
		if c < utf8.RuneSelf {
			switch {
			case plain[c]:
				s.pos++
			case c == '"':
				s.pos++
				return b[start : s.pos-1], esc, nil
			case c == '\\':
				if err := s.escape(); err != nil {
					return nil, false, err
				}
				esc = true
			default:
				return nil, false, s.fail("character must be escaped")
			}
			continue
		}
		r, size := utf8.DecodeRune(b[s.pos:])
		if r == utf8.RuneError && size == 1 {
			return nil, false, s.fail("invalid UTF-8")
		}
		if r == '\u2028' || r == '\u2029' {
			return nil, false, s.fail("U+2028/U+2029 must be escaped")
		}
		s.pos += size
	}
	return nil, false, s.fail("unterminated string")
}

// escape checks one escape sequence is the one encoding/json writes.
func (s *scanner) escape() error {
	b := s.b
	if s.pos+1 >= len(b) {
		return s.fail("truncated escape")
	}
	switch b[s.pos+1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		s.pos += 2
		return nil
	case 'u':
	default:
		return s.fail("non-canonical escape")
	}
	if len(b)-s.pos < 6 {
		return s.fail("truncated escape")
	}
	r := 0
	for _, c := range b[s.pos+2 : s.pos+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | int(c-'a'+10)
		default:
			return s.fail("non-canonical escape")
		}
	}
	switch {
	case r < 0x20 && r != '\b' && r != '\f' && r != '\n' && r != '\r' && r != '\t',
		r == '<', r == '>', r == '&', r == 0x2028, r == 0x2029:
		s.pos += 6
		return nil
	}
	return s.fail("non-canonical escape")
}

// list reads a JSON array of canonical strings in sorted order and returns
// its content between the brackets.
func (s *scanner) list() ([]byte, error) {
	if !s.lit("[") {
		return nil, s.fail("expected [")
	}
	start := s.pos
	if s.lit("]") {
		return s.b[start:start], nil
	}
	var prev []byte
	prevEsc := false
	for {
		cur, esc, err := s.strEsc()
		if err != nil {
			return nil, err
		}
		s.esc = s.esc || esc
		if prev != nil {
			c := 0
			if esc || prevEsc {
				c = strings.Compare(unquote(prev), unquote(cur))
			} else {
				c = bytes.Compare(prev, cur)
			}
			if c > 0 {
				return nil, s.fail("list is not sorted")
			}
		}
		prev, prevEsc = cur, esc
		if s.lit("]") {
			return s.b[start : s.pos-1], nil
		}
		if !s.lit(",") {
			return nil, s.fail("expected , or ]")
		}
	}
}

// unquote decodes a raw string content that ScanLeaf accepted.
func unquote(raw []byte) string {
	i := bytes.IndexByte(raw, '\\')
	if i < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	out = append(out, raw[:i]...)
	for i < len(raw) {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
			out = utf8.AppendRune(out, rune(r))
			i += 6
			continue
		default: // '"' or '\\'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return string(out)
}

// splitList decodes the raw content of a list that ScanLeaf accepted.
func splitList(raw []byte) []string {
	out := []string{}
	for len(raw) > 0 {
		// raw is `"…","…"`: find the closing quote of the first string.
		j := 1
		for raw[j] != '"' {
			if raw[j] == '\\' {
				j++
			}
			j++
		}
		out = append(out, unquote(raw[1:j]))
		raw = raw[j+1:]
		if len(raw) > 0 {
			raw = raw[1:] // the comma
		}
	}
	return out
}
