// Package token is the broker's OAuth2 authorisation server for partners:
// the Ed25519 signing keyring and its JWKS, RFC 9068 JWT access tokens
// (issue and verify), client secrets (argon2id), the client-credentials
// token endpoint's logic (RFC 6749 §4.4, errors per §5.2), the partner
// registration helpers brokerctl uses, and the recovery of a partner's
// webhook secret (the HMAC key its webhooks are signed with; signing and
// delivery live with the webhooks, not here).
//
// It wraps github.com/golang-jwt/jwt/v5 and golang.org/x/crypto/argon2 and
// imports nothing of ours but the broker core and broker/keydir. It knows
// no HTTP framework: broker/httpapi's token route hands the raw form, the
// Basic credentials and the client address to a function the wiring
// supplies; that function builds a [TokenRequest], calls [Server.Token],
// and returns the status, headers and JSON of the [TokenResponse] or
// [OAuthError], which httpapi writes with Cache-Control: no-store
// (RFC 6749 §5.1).
//
// # Throttling the token endpoint
//
// Failed client authentications are counted per client address and per
// client id (token buckets, per process). Over the limit the answer is 429
// temporarily_unavailable with Retry-After, decided before any database or
// argon2 work, unless the secret is one this process verified before (an
// HMAC cache), so a partner keeps getting tokens while its id is guessed
// from its own address. Unknown client ids never reach argon2: they are
// answered after a pause as long as a check. Checks run in two lanes: one
// as wide as the cores for ids and addresses without failures, one slot
// for the rest, so guesses cannot queue ahead of a clean partner.
//
// # Keys on disk
//
//	<BROKER_KEY_DIR>/signing/            0700
//	<BROKER_KEY_DIR>/signing/<kid>.pem   0600, PKCS#8 "PRIVATE KEY", Ed25519
//	<BROKER_KEY_DIR>/signing/current     the kid that signs, one line
//	<BROKER_KEY_DIR>/signing/.lock       flock'd while the keyring changes
//
// The kid is the first 16 characters of the base64url SHA-256 of the public
// key, so it is stable and names the key itself. The ring holds the current
// key and, after a rotation, the previous one, so tokens signed just before
// a rotation keep verifying and JWKS clients see the new key early.
// Rotate and Retire change the disk first, under the lock; another process
// sharing the directory picks the change up with [Keyring.Reload].
//
// # Errors
//
// Every verification failure is a *broker.Error with code
// broker.EUnauthorized and one fixed message: a caller learns that its
// token was refused, never why, and the token never appears in an error.
// The HTTP layer answers them 401 with WWW-Authenticate: Bearer
// error="invalid_token" (RFC 6750 §3).
package token
