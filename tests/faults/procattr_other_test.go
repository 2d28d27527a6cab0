//go:build !linux

package faults

import "syscall"

// childAttr is the default elsewhere (the tests need Linux's /proc anyway).
func childAttr() *syscall.SysProcAttr { return nil }
