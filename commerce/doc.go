// Package commerce is the chat-commerce domain: catalog, cart, orders and the
// checkout conversation a shopper has with the store over WhatsApp.
//
// The conversation is a state machine that reads abstract inbound events
// (Inbound) and answers with abstract replies (Reply); the WhatsApp adapter
// (commerce/whatsapp) decodes the wire format into Inbound and renders Reply
// into Cloud API messages. Reply ids ("consent:accept", "cart:confirm",
// "slot:<id>", …) are stable so scripts and tests can drive the chat.
package commerce
