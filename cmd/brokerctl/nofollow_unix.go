//go:build unix

package main

import "syscall"

// oNoFollow makes opening a symbolic link fail (ELOOP) rather than write
// wherever it points.
const oNoFollow = syscall.O_NOFOLLOW
