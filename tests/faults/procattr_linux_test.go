package faults

import "syscall"

// childAttr makes a child die with the test binary: a test killed by its
// -timeout runs no cleanup, and a broker left running would hold its port.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
