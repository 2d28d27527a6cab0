// Package ui is the compliance officer's dashboard at /ui: server-rendered
// pages (html/template, assets embedded, no JavaScript needed, charts as
// inline SVG) over the audit log, the live policy, and the shoppers' rights.
//
// Pages:
//
//	/ui/login            sign in (name and one-time password from brokerctl)
//	/ui/overview         releases and denials over time; the latest signed
//	                     checkpoint, verified live (signature, and consistency
//	                     with the previous checkpoint this process saw)
//	/ui/audit            the audit log explorer: filters, cursor pagination
//	/ui/audit/{index}    one entry, with its inclusion proof verified here
//	/ui/flows            partner × field × purpose: what was actually released
//	/ui/policies         purpose → party kind → field → transform, lawful
//	                     basis, consent, retention, policy revision
//	/ui/subjects         the subject desk: look a shopper up by number (POST
//	                     only), disclosures (Art. 15), export (Art. 20),
//	                     erasure with a confirmation step (Art. 17)
//	/ui/reports          the Art. 30 record and the audit log as CSV
//
// Security: sessions are 32 random bytes in an HttpOnly, SameSite=Strict
// cookie (Secure over TLS), stored only as their SHA-256, with an absolute
// and an idle lifetime; every form carries a per-session CSRF token (the
// sign-in form a double-submit one); failed sign-ins are throttled per name
// and per client address. Every officer action — sign-in and its failures,
// look-ups, exports, erasures — is written to the audit log, which names
// shoppers only by pseudonym. A shopper's phone number travels only in POST
// bodies: it is never stored, logged, or put in a URL.
//
// The package declares the small interfaces it consumes (OfficerStore,
// AuditLog, Passwords); cmd/internal/wire adapts the concrete stores.
package ui
