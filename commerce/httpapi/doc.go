// Package httpapi is the shop's HTTP face, mounted on the broker's Fiber
// shell (broker/httpapi) the way the dashboard is: the partner orders API
// (orders, offers, deliveries, relayed messages, data requests, recipient
// notices and their acks) and the compliance routes that answer a
// shopper's rights (disclosures, export, erasure, consents, grievances).
//
// Its handlers read the request, call one narrow port, and shape the
// answer; authentication, rate limits, the error table and the audit of an
// officer's own action are the shell's (Server.Partner, Server.Compliance,
// Server.OfficerAction). Each port is small enough that the tests fake it
// with a func field per method and run the handlers without a database.
package httpapi
