// Package broker is Sieve's domain core: the vocabulary (parties, purposes,
// subjects, consent, releases, decisions), the release pipeline that decides
// which fields may cross between the messaging side and the retail side, and
// the ports that adapters implement.
//
// It imports the standard library and the audit package's types only; no
// Fiber, pgx, OPA or age. Adapters live in sub-packages named after what they
// wrap (postgres, httpapi, seal, token); only cmd/ wires concrete types.
package broker
