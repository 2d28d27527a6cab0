// Package keydir keeps a ring of Ed25519 keys in a directory of the key
// store (BROKER_KEY_DIR): the current key, a previous key that keeps
// co-signing for a handover period after a rotation, and retired keys of
// which only the public half is kept, so that whatever they signed still
// verifies. Changes are written to disk first, under an exclusive flock, so
// brokerctl and brokerd sharing a key directory see each other's changes
// after Reload.
//
// The audit log's checkpoint key lives here (LogSubdir), apart from the
// JWT signing keys (broker/token), so that rotating one never touches the
// other.
package keydir
