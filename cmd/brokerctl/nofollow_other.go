//go:build !unix

package main

// oNoFollow: no such flag here; O_EXCL alone still refuses an existing
// link (without --force).
const oNoFollow = 0
