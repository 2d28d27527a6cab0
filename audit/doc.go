// Package audit is Sieve's tamper-evident audit log, as a library: the
// canonical encoding of entries, the RFC 6962 Merkle tree over them, signed
// checkpoints, inclusion and consistency proofs, an HTTP auditor client and
// offline verification of exports. It imports nothing of the broker's, so
// a compliance officer's tools can use it alone.
//
// # Leaves
//
// A leaf is the canonical JSON of an Entry with its Index set
// (Entry.Canonical): fixed key order, no whitespace, encoding/json's string
// escaping, UTC time truncated to microseconds, sorted field lists.
// ParseEntry and ScanLeaf accept exactly the canonical bytes, so a stored
// or exported leaf cannot be reformatted without detection.
//
// # Tree
//
// Leaves are hashed as in RFC 6962, with domain separation: a leaf hash is
// SHA-256(0x00 || leaf) and a node hash SHA-256(0x01 || left || right), via
// github.com/transparency-dev/merkle. Tree builds the tree incrementally
// over a compact range, reporting each completed subtree so a store can
// persist them and serve proofs with few reads (NodeReader, BuildInclusion,
// BuildConsistency).
//
// # Checkpoints
//
// A checkpoint is a signed note in the C2SP tlog-checkpoint format:
//
//	<origin>
//	<tree size>
//	<base64 root>
//
//	— <origin> <base64 signature>
//
// signed with Ed25519 through golang.org/x/mod/sumdb/note, under a key
// whose name is the origin (the broker's issuer without its scheme).
// VerifierKey gives the public "name+hash+key" string auditors pin.
//
// # Verifying
//
// Client audits a running broker: it verifies each checkpoint's signature,
// proves each new checkpoint consistent with the last one it saw, and
// checks entries by inclusion proofs. VerifyExport checks a JSONL export
// offline, naming the first bad entry in a *VerifyError. Every failure
// wraps one of the documented sentinel errors (ErrRootMismatch,
// ErrInconsistent, ErrBadSignature, ...), and mismatches carry the
// expected and computed hashes (*MismatchError).
package audit
