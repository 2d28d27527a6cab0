package token

import "time"

// SetKeyringNow replaces the keyring's clock (when a published key starts
// to sign).
func SetKeyringNow(kr *Keyring, now func() time.Time) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.now = now
}
