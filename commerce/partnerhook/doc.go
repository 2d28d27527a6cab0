// Package partnerhook delivers signed webhooks to partners: the
// Sieve-Signature scheme (Sign, Verify), the HTTP delivery (Deliverer), and
// the address guard (Guard) that keeps a partner's webhook URL from reaching
// the broker's own network — loopback, private, link-local and the like —
// unless the operator allows it (BROKER_WEBHOOK_ALLOW, SPEC §3).
//
// The guard works twice: when a partner's URL is registered (CheckURL
// resolves the host and refuses such addresses with a clear error), and
// when a delivery connects (the dialer's Control hook checks the very
// address connected to, after DNS, so a name that resolves elsewhere later
// — DNS rebinding — gains nothing). Redirects are never followed: a signed
// order must reach the URL the partner registered and no other.
package partnerhook
