// Package seal is the adapter for encryption at rest (SPEC §5 rule 5): age
// wraps per-shopper data keys, XChaCha20-Poly1305 seals the records, and
// deleting a shopper's key crypto-shreds everything sealed under it.
//
// # Envelope
//
// Every shopper (subject) gets a random 32-byte data key (DEK) on first use.
// The DEK is wrapped with age to the broker's current identity (Keyring) and
// stored through broker.SubjectKeyStore; it never reaches the database in the
// clear. Records are sealed under the DEK with XChaCha20-Poly1305, whose
// 24-byte nonces are safe to draw at random for any number of records.
//
// Records are not age-encrypted one by one: age costs about 400 µs and 150 KB
// of garbage per record (an ephemeral X25519 exchange and 64 KiB STREAM
// buffers), against under a microsecond for the AEAD. age is paid once per
// shopper per cache lifetime, to unwrap the DEK (BenchmarkUnwrap).
//
// The age plaintext of a wrapped key is a version byte (1), the 32-byte DEK
// and the subject id; unwrapping checks the subject, so a wrapped key copied
// into another shopper's row does not unwrap there.
//
// # Sealed record format
//
//	version (1 byte, 0x01) | nonce (24 bytes) | ciphertext | tag (16 bytes)
//
// 41 bytes of overhead. The associated data binds the record to where it is
// stored: table, column, row id and subject (broker.Binding plus the
// subject), each length-prefixed after a domain string (see AppendAAD), so
// that fields cannot slide into one another. A ciphertext copied to another row,
// column, table or shopper fails to open, as does any change to the version,
// nonce, ciphertext or tag (ErrCorrupt).
//
// # The vault
//
// Secrets the broker itself owns (broker.Vault) are sealed the same way under
// the data key of SystemSubject, bound to the secret's name. The "system:"
// prefix is reserved, so no shopper operation, erasure included, reaches it.
//
// # Erasure
//
// Shred deletes the subject's wrapped key and evicts the unwrapped copy from
// this process's cache; Open then fails with ErrErased (ENotFound, "data
// erased"). Other processes drop their copy when told (Forget), and in any
// case within CacheTTL, since cached keys expire counted from when they were
// unwrapped, not from their last use. A load that was in flight when the
// erasure happened is never cached, and for CacheTTL after an erasure the
// subject's key is not cached at all, so an erasure inside a transaction
// that has not committed yet cannot be undone by a concurrent read.
//
// A database backup still holds the wrapped key of a shopper erased after
// the backup was taken. It becomes unreadable once the identity that wrapped
// it is retired (Keyring.Retire destroys the identity file). Rotation does
// this on a schedule: a new identity every BROKER_KEY_ROTATION, the live
// keys re-wrapped to it, and each identity retired BROKER_BACKUP_RETENTION
// after it was superseded, when no backup still kept needs it. A backup
// taken before an erasure so stays readable for that shopper at most
// BROKER_KEY_ROTATION + BROKER_BACKUP_RETENTION after the erasure (plus the
// lateness of the schedule's runs).
//
// # Transactions
//
// The store's methods join the transaction carried by ctx. A key created or
// read inside a transaction might be rolled back with it, so it is cached
// only for that transaction (stores that implement TxIdentifier say which
// one); the first use outside it re-reads the stored key once and, if it is
// still the same, keeps it for everyone. Otherwise a retried transaction
// could seal records under a key the database forgot.
//
// # Key directory
//
//	<BROKER_KEY_DIR>/age/             0700
//	<BROKER_KEY_DIR>/age/<key id>.key 0600, one age identity (X25519
//	                                  "AGE-SECRET-KEY-1…" or hybrid
//	                                  post-quantum "AGE-SECRET-KEY-PQ-1…"),
//	                                  after "#" comments naming the key id,
//	                                  creation time and recipient
//	<BROKER_KEY_DIR>/age/current      0600, the key id new data keys are
//	                                  wrapped to
//	<BROKER_KEY_DIR>/age/<key id>.retired
//	                                  the public record of a retired identity
//	                                  (key id, recipient, created, retired)
//	<BROKER_KEY_DIR>/age/.lock        flock serialising init, rotate, retire
//
// A key id is the first 16 hex digits of SHA-256 of the recipient string.
// An identity file readable by group or others is refused, as ssh does.
// Files are written to a temporary name and renamed, identity before
// current, so a concurrent reader sees the old state or the new one, never
// half of one. Several processes may share the directory: each rereads the
// current file before wrapping a new key, and rereads the directory when a
// wrapped key names an identity it lacks but whose file exists, so a
// rotation by "brokerctl keys rotate" needs no restart.
//
// # Rotation
//
// Keyring.Rotate adds an identity and makes it current; older ones stay to
// unwrap. Sealer.RewrapAll then re-wraps every data key to the current
// identity in batches, without touching sealed records, and can be rerun to
// continue. Keyring.Retire removes an identity once no key uses it.
// Rotation runs the three on a schedule (brokerd, and "brokerctl keys
// rotate" at once), under a database lock so that one process works at a
// time.
package seal
