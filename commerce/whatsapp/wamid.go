package whatsapp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Real Cloud API message ids are "wamid." and standard base64 (with
// padding) of a small Thrift-compact structure that holds the shopper's
// phone number in ASCII:
//
//	1c 18 <len> <phone digits>  15 02 00  <dir> 18 <len> <random id>  00
//
// where <dir> is 12 for a message the user sent and 11 for one the business
// sent, and the random id is 20 (inbound) or 18 (outbound) uppercase hex
// characters. "wamid.HBgLNjAxNzM1MjYyMzMVAgASGBQz…" decodes to
// 1c 18 0b "60173526233" 15 02 00 12 18 14 "3…". A message id is therefore
// personal data: it is never stored or logged in plaintext (SPEC §5.8).
// The simulator and the tests generate ids in this form so that a leak of
// one is caught.
const (
	wamidPrefix      = "wamid."
	wamidInbound     = 0x12
	wamidOutbound    = 0x11
	wamidInboundLen  = 20
	wamidOutboundLen = 18
)

// NewInboundWAMID returns a fresh id, in Meta's format, for a message the
// user identified by from (phone digits or a BSUID) sent to the business.
func NewInboundWAMID(from string) string { return newWAMID(from, wamidInbound, wamidInboundLen) }

// NewOutboundWAMID returns a fresh id, in Meta's format, for a message the
// business sent to the user identified by to ("+digits", digits or a BSUID),
// as the Send API returns it.
func NewOutboundWAMID(to string) string {
	return newWAMID(strings.TrimPrefix(to, "+"), wamidOutbound, wamidOutboundLen)
}

func newWAMID(who string, dir byte, n int) string {
	if len(who) > 255 {
		who = who[:255]
	}
	raw := make([]byte, n/2)
	_, _ = rand.Read(raw)
	id := strings.ToUpper(hex.EncodeToString(raw))
	b := make([]byte, 0, 3+len(who)+4+2+n+1)
	b = append(b, 0x1c, 0x18, byte(len(who)))
	b = append(b, who...)
	b = append(b, 0x15, 0x02, 0x00, dir, 0x18, byte(n))
	b = append(b, id...)
	b = append(b, 0x00)
	return wamidPrefix + base64.StdEncoding.EncodeToString(b)
}

// WAMIDUser returns the user id (phone digits or BSUID) a Meta-format
// message id holds, and whether id has that format. It exists so that tests
// can show what a leaked id gives away.
func WAMIDUser(id string) (string, bool) {
	s, ok := strings.CutPrefix(id, wamidPrefix)
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != 0x1c || b[1] != 0x18 || len(b) < 3+int(b[2]) {
		return "", false
	}
	return string(b[3 : 3+int(b[2])]), true
}

// MetaEscape rewrites JSON the way Meta's servers write webhook bodies
// (PHP's json_encode defaults): every non-ASCII character as \uXXXX with
// lowercase hex (a surrogate pair above U+FFFF), every "/" as "\/", and
// '<', '>', '&' literal (Go's encoder writes \u003c, \u003e, \u0026; PHP
// does not). The signature of a webhook is computed over these escaped
// bytes, so a receiver must verify the raw body, never a re-encoding. b must
// be valid JSON; the result decodes to the same value.
func MetaEscape(b []byte) []byte {
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, len(b)+len(b)/8)
	u := func(r rune) {
		out = append(out, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b):
			if b[i+1] == 'u' && i+6 <= len(b) {
				switch string(b[i+2 : i+6]) {
				case "003c":
					out, i = append(out, '<'), i+6
					continue
				case "003e":
					out, i = append(out, '>'), i+6
					continue
				case "0026":
					out, i = append(out, '&'), i+6
					continue
				}
			}
			out, i = append(out, c, b[i+1]), i+2
		case c == '/':
			out, i = append(out, '\\', '/'), i+1
		case c < utf8.RuneSelf:
			out, i = append(out, c), i+1
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r >= 0x10000 {
				r -= 0x10000
				u(0xd800 + r>>10&0x3ff)
				u(0xdc00 + r&0x3ff)
			} else {
				u(r)
			}
			i += size
		}
	}
	return out
}
