package audit

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// The canonical leaf is the JSON object below, keys in this order, no
// whitespace, strings escaped exactly as encoding/json escapes them:
//
//	{"index":N,"time":"RFC3339","decision_id":"…","actor":"…","action":"…",
//	 "purpose":"…","subject":"…","resource":"…","released":[…],"withheld":[…],
//	 "outcome":"…","reason":"…","policy_revision":"…"[,"retain_until":"RFC3339"]}
//
// retain_until is optional and present only when set (a release's data
// life), so leaves written before it existed keep their canonical bytes.
//
// followed, before the closing brace, by the optional fields in this order,
// each present only when not empty: "notice_sha256" and "lang" (the notice
// version and language of a consent, SPEC §10). Leaves written before they
// existed are byte for byte what they were, so they verify unchanged.
//
// followed, before the closing brace, by the optional legal fields
// ,"recipient_role":"…" ,"jurisdiction":"…" ,"transfer_basis":"…", each
// present only when non-empty (so older leaves are unchanged).
//
// Because the layout is fixed, a leaf can be checked by a single left-to-right
// scan (ScanLeaf), which is what verification does for every entry.
const (
	keyIndex    = `{"index":`
	keyTime     = `,"time":"`
	keyDecision = `","decision_id":`
	keyActor    = `,"actor":`
	keyAction   = `,"action":`
	keyPurpose  = `,"purpose":`
	keySubject  = `,"subject":`
	keyResource = `,"resource":`
	keyReleased = `,"released":`
	keyWithheld = `,"withheld":`
	keyOutcome  = `,"outcome":`
	keyReason   = `,"reason":`
	keyPolicy   = `,"policy_revision":`
	keyRetain   = `,"retain_until":"`
	keyNotice   = `,"notice_sha256":`
	keyLang     = `,"lang":`
	keyRole     = `,"recipient_role":`
	keyJuris    = `,"jurisdiction":`
	keyBasis    = `,"transfer_basis":`
)

// appendCanonical appends the encoding of the normalized entry e to dst.
func appendCanonical(dst []byte, e *Entry) ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("audit: time year %d outside [0,9999]", y)
	}
	dst = append(dst, keyIndex...)
	dst = strconv.AppendUint(dst, e.Index, 10)
	dst = append(dst, keyTime...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, keyDecision...)
	dst = appendString(dst, e.DecisionID)
	dst = append(dst, keyActor...)
	dst = appendString(dst, e.Actor)
	dst = append(dst, keyAction...)
	dst = appendString(dst, e.Action)
	dst = append(dst, keyPurpose...)
	dst = appendString(dst, e.Purpose)
	dst = append(dst, keySubject...)
	dst = appendString(dst, e.Subject)
	dst = append(dst, keyResource...)
	dst = appendString(dst, e.Resource)
	dst = append(dst, keyReleased...)
	dst = appendList(dst, e.Released)
	dst = append(dst, keyWithheld...)
	dst = appendList(dst, e.Withheld)
	dst = append(dst, keyOutcome...)
	dst = appendString(dst, e.Outcome)
	dst = append(dst, keyReason...)
	dst = appendString(dst, e.Reason)
	dst = append(dst, keyPolicy...)
	dst = appendString(dst, e.PolicyRevision)
	if !e.RetainUntil.IsZero() {
		if y := e.RetainUntil.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("audit: retain_until year %d outside [0,9999]", y)
		}
		dst = append(dst, keyRetain...)
		dst = e.RetainUntil.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if e.NoticeSHA256 != "" {
		dst = append(dst, keyNotice...)
		dst = appendString(dst, e.NoticeSHA256)
	}
	if e.Lang != "" {
		dst = append(dst, keyLang...)
		dst = appendString(dst, e.Lang)
	}
	for i, p := range e.legal() {
		if *p != "" {
			dst = append(dst, legalKeys[i]...)
			dst = appendString(dst, *p)
		}
	}
	return append(dst, '}'), nil
}

// legalKeys are the keys of the optional legal fields, in e.legal() order.
var legalKeys = [3]string{keyRole, keyJuris, keyBasis}

func appendList(dst []byte, l []string) []byte {
	dst = append(dst, '[')
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes encoding/json writes unescaped (with HTML
// escaping on): printable ASCII except '"', '\\', '<', '>' and '&'.
var plain = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

// appendString appends s as a JSON string, escaped exactly as encoding/json
// does with HTML escaping (its default). s must be valid UTF-8; invalid bytes
// become \ufffd as in encoding/json (Normalize removes them beforehand).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if plain[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrNotCanonical is wrapped by ParseEntry and ScanLeaf errors: the bytes
// are not the canonical encoding of any entry. A stored or exported leaf
// that fails this way was altered (or written by a broken writer).
var ErrNotCanonical = errors.New("audit: leaf is not canonical")

// ParseEntry decodes a leaf strictly: it accepts b only if b is byte for
// byte the canonical encoding of the entry it decodes to (Canonical with
// the index set). Unknown or missing fields, whitespace, other key orders,
// unsorted lists, non-UTC or over-precise times and non-canonical string
// escapes are all rejected with an error wrapping ErrNotCanonical.
func ParseEntry(b []byte) (Entry, error) {
	var v LeafView
	if err := ScanLeaf(b, &v); err != nil {
		return Entry{}, err
	}
	e := Entry{
		Index:          v.Index,
		Time:           time.UnixMicro(v.TimeMicros).UTC(),
		DecisionID:     unquote(v.DecisionID),
		Actor:          unquote(v.Actor),
		Action:         unquote(v.Action),
		Purpose:        unquote(v.Purpose),
		Subject:        unquote(v.Subject),
		Resource:       unquote(v.Resource),
		Released:       splitList(v.Released),
		Withheld:       splitList(v.Withheld),
		Outcome:        unquote(v.Outcome),
		Reason:         unquote(v.Reason),
		PolicyRevision: unquote(v.PolicyRevision),
		NoticeSHA256:   unquote(v.NoticeSHA256),
		Lang:           unquote(v.Lang),
		RecipientRole:  unquote(v.RecipientRole),
		Jurisdiction:   unquote(v.Jurisdiction),
		TransferBasis:  unquote(v.TransferBasis),
	}
	if v.HasRetainUntil {
		e.RetainUntil = time.UnixMicro(v.RetainUntilMicros).UTC()
	}
	// The scan is the fast check; re-encoding is the definition. Both must
	// agree, and this keeps ParseEntry correct even if the scan had a gap.
	c, err := e.Canonical()
	if err != nil || !bytes.Equal(c, b) {
		return Entry{}, fmt.Errorf("%w: does not re-encode to the same bytes", ErrNotCanonical)
	}
	return e, nil
}
