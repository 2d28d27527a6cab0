// Package faults holds the broker's fault-injection tests (SPEC §7): the
// real binaries (brokerd, brokerctl, wasim) on a real PostgreSQL, with
// processes killed, the database stopped under load, several brokers on
// one database, and a Send API or partner endpoint that fails or crawls.
//
// Everything runs on loopback, every request loop is bounded, and every
// wait polls against a deadline derived from the test's own deadline. The
// tests fail (never skip) when CI is set and something they need is
// missing.
package faults
