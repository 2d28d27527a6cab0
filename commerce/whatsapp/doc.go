// Package whatsapp is Sieve's wire adapter for the WhatsApp Business Platform
// Cloud API.
//
// It covers both directions of the wire:
//
//   - inbound webhook notifications: [Decode] parses a notification body
//     (after [VerifySignature] has authenticated the raw bytes) and
//     [Notification.Events] flattens every message, status and error of every
//     entry and change into a list of [Event] values;
//   - outbound Send API requests: builders such as [NewText], [NewReplyButtons],
//     [NewList], [NewProductList], [NewOrderDetails] and [NewOrderStatus]
//     produce [OutboundMessage] values whose JSON is exactly what the Cloud API
//     expects, and [Client] posts them and classifies the Graph API errors into
//     retryable and permanent failures ([SendError]).
//
// Money is always an [Amount] in integer minor units (paise for INR, offset
// 100); prices that arrive as decimal JSON numbers are converted with exact
// decimal arithmetic by [ParseAmount], never through floating point.
//
// Inbound orders are taken whole or not at all: [Order.Lines] refuses an
// order when any line's quantity is outside 1..100000 ([MaxOrderQuantity]) or
// not an integer, a price is unreadable, or the total overflows (checked
// arithmetic); the conversation then tells the shopper why and changes
// nothing.
//
// Message ids (wamids) are personal data: Meta's are base64 of a structure
// holding the phone number ([NewInboundWAMID] builds them so for the
// simulator and tests). The broker stores them only as keyed hashes.
// Webhook bodies arrive escaped as [MetaEscape] writes them, and their
// signature covers those escaped bytes.
//
// Besides the standard library the package depends only on Sieve's own
// broker (error kinds, money) and commerce, whose types the adapter converts
// to and from; it pulls in no third-party module. Values that identify
// people (wa_id, profile names, message text) flow through its types but are
// never written to error strings: errors name fields and limits, not contents.
package whatsapp

// Development defaults shared by the broker's configuration and the wasim
// simulator, so that both sides agree without any setup.
const (
	// DevAppSecret is the default app secret, the HMAC key of X-Hub-Signature-256.
	DevAppSecret = "dev-app-secret"
	// DevAccessToken is the default Bearer token of the Send API.
	DevAccessToken = "dev-access-token"
	// DevVerifyToken is the default token of the webhook verification handshake.
	DevVerifyToken = "dev-verify-token"
	// DevPhoneNumberID is the default business phone-number id (PNID).
	DevPhoneNumberID = "100000000000001"
	// DevDisplayPhoneNumber is the business number shown to shoppers, in digits.
	DevDisplayPhoneNumber = "919000000001"
	// DevWABAID is the default WhatsApp Business Account id (entry[].id).
	DevWABAID = "100000000000000"
	// DevCatalogID is the default Commerce Manager catalog id.
	DevCatalogID = "100000000000002"
	// DevPaymentConfiguration is the default payment configuration name
	// (a Razorpay configuration linked in WhatsApp Manager).
	DevPaymentConfiguration = "sieve-razorpay"
	// DevSimAddr is the default listen address of the wasim fake Send API.
	DevSimAddr = "127.0.0.1:8090"
	// DevAPIBase is the default Send API base URL in development: wasim on
	// loopback, with a Graph API version segment like the real endpoint.
	DevAPIBase = "http://" + DevSimAddr + "/" + DefaultAPIVersion
	// DevWebhookURL is the broker's webhook endpoint in development.
	DevWebhookURL = "http://127.0.0.1:8080/webhooks/whatsapp"
)

// Wire constants.
const (
	// GraphAPIBase is the production Graph API host.
	GraphAPIBase = "https://graph.facebook.com"
	// DefaultAPIVersion is the Graph API version the adapter was written against.
	DefaultAPIVersion = "v25.0"
	// ObjectWhatsAppBusinessAccount is the only accepted notification object.
	ObjectWhatsAppBusinessAccount = "whatsapp_business_account"
	// MessagingProduct is the messaging_product of every request and notification.
	MessagingProduct = "whatsapp"
	// FieldMessages is the change field that carries messages and statuses.
	FieldMessages = "messages"
	// SignatureHeader is the request header carrying the payload signature.
	SignatureHeader = "X-Hub-Signature-256"
	// MaxNotificationSize is the largest notification body Meta sends (3 MB).
	MaxNotificationSize = 3 << 20
	// CurrencyINR is the only currency WhatsApp Payments (India) accepts.
	// Its amounts use broker.OffsetINR (paise).
	CurrencyINR = "INR"
)
