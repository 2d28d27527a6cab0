// Package commerce is the chat-commerce domain: catalog, cart, orders and the
// checkout conversation a shopper has with the store over WhatsApp.
//
// The conversation is a state machine that reads abstract inbound events
// (Inbound) and answers with abstract replies (Reply); the WhatsApp adapter
// (commerce/whatsapp) decodes the wire format into Inbound and renders Reply
// into Cloud API messages. Reply ids ("consent:accept", "cart:confirm",
// "slot:<id>", …) are stable so scripts and tests can drive the chat.
//
// New builds the Service with its desks. The shopper's rights (Rights:
// access, export, erasure, the chat's "my data") and the retention sweep
// (Retention) live here rather than in broker: what they read, export,
// blank and purge are the shop's records — orders and invoices, the chat's
// turns, the inbox and outbox, WhatsApp identifiers — so in broker they
// would need a port for every one of those nouns. They use broker for
// everything that is not the shop's: the Releaser (an export is a release),
// the Recorder's entries, the Vault's shredding and the Pseudonymizer.
package commerce
