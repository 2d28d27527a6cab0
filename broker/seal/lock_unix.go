//go:build unix

package seal

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockName is the lock file that serialises changes to the key directory
// (creating, rotating, retiring identities) across processes. Readers do not
// take it: every change is a sequence of atomic renames they can read
// between.
const lockName = ".lock"

// lockDir takes an exclusive flock on the key directory's lock file; the
// kernel drops it if the process dies.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seal: lock key directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal: lock key directory: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
