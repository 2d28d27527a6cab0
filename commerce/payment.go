package commerce

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// CurrencyINR is the only currency WhatsApp Pay (India) settles in, and the
// only one an order is priced in.
const CurrencyINR = "INR"

// Reason codes of a refused payment, the audit entry's reason. A fixed
// list: nothing the payment status carried is ever written into the log.
const (
	PaymentRefusedCurrency    = "payment_currency_not_inr"
	PaymentRefusedNoTxn       = "payment_no_transaction"
	PaymentRefusedTxnStatus   = "payment_transaction_not_successful"
	PaymentRefusedAmount      = "payment_amount_mismatch"
	PaymentRefusedReference   = "payment_reference_unknown"
	PaymentRefusedLookup      = "payment_lookup_disagrees"
	PaymentRefusedLookupError = "payment_lookup_unavailable"
)

// PaymentRefusalReasons lists every reason a capture can be refused for.
var PaymentRefusalReasons = []string{PaymentRefusedCurrency, PaymentRefusedNoTxn, PaymentRefusedTxnStatus,
	PaymentRefusedAmount, PaymentRefusedReference, PaymentRefusedLookup, PaymentRefusedLookupError,
	PaymentRefusedNoParent}

// PaymentLookup asks the payment provider (WhatsApp's payment lookup API)
// what it knows of a payment, so that an order is placed on the provider's
// word and not on a webhook alone. It returns broker.ENotFound when the
// provider knows no payment under the reference, and another error when it
// cannot be asked now.
type PaymentLookup interface {
	LookupPayment(ctx context.Context, store, referenceID string) (Payment, error)
}

// lookupTimeout bounds one lookup: it runs inside the shopper's turn.
const lookupTimeout = 5 * time.Second

// lookupRetryWindow is how long after the capture a failing lookup is
// retried (the shopper's turn is rolled back and runs again) before the
// capture is refused: long enough for a blip at the provider, short enough
// that a broken lookup does not hold the shopper's chat, and the other
// shoppers sharing its turns, for long.
const lookupRetryWindow = 5 * time.Minute

// CheckCapture returns why a "captured" payment status may not place o, or
// "" when it may: the payment must be in INR, carry a successful
// transaction, and be for exactly the order's total. (That it names o's
// reference and o belongs to the shopper it came from is checked when o is
// found.)
func CheckCapture(o *Order, p Payment) string {
	switch {
	case p.Currency != CurrencyINR:
		return PaymentRefusedCurrency
	case p.TxnStatus == "" && p.TxnID == "":
		return PaymentRefusedNoTxn
	case p.TxnStatus != "success":
		return PaymentRefusedTxnStatus
	case p.Amount != o.Total:
		return PaymentRefusedAmount
	}
	return ""
}

// ConfirmPayment confirms a capture with the payment lookup, when one is
// configured: it returns a refusal reason when the provider disagrees
// (unknown reference, not captured, another amount or currency), and an
// EUnavailable error — the turn is retried — when the provider cannot be
// asked and the capture is recent; past lookupRetryWindow the capture is
// refused instead.
func (a *actions) ConfirmPayment(ctx context.Context, o *Order, p Payment, at time.Time) (string, error) {
	if a.s.Payments == nil {
		return "", nil
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	got, err := a.s.Payments.LookupPayment(lctx, o.Store, o.ReferenceID)
	switch {
	case broker.IsNotFound(err):
		return PaymentRefusedLookup, nil
	case err != nil && ctx.Err() == nil && time.Since(at) < lookupRetryWindow:
		a.s.inc("sieve_payment_lookups_total", "retry")
		return "", broker.Wrap(broker.EUnavailable, err, "payment lookup unavailable")
	case err != nil:
		a.s.inc("sieve_payment_lookups_total", "failed")
		return PaymentRefusedLookupError, nil
	}
	if got.ReferenceID != o.ReferenceID || got.Status != PaymentCaptured || CheckCapture(o, got) != "" {
		a.s.inc("sieve_payment_lookups_total", "disagrees")
		return PaymentRefusedLookup, nil
	}
	a.s.inc("sieve_payment_lookups_total", "confirmed")
	return "", nil
}

// RefusePayment audits a refused capture: the order (when one of the
// shopper's was named) stays unplaced, and the entry says why in a code.
func (a *actions) RefusePayment(ctx context.Context, o *Order, reason string) error {
	resource := "order:invalid" // the reference named no order of this shopper's
	if o != nil {
		resource = "order:" + o.ID
	}
	a.s.inc("sieve_payments_refused_total", reason)
	err := a.s.record(ctx, broker.Event{Actor: "whatsapp:payments", Action: "payment", Purpose: broker.PurposeOrderFulfilment,
		Subject: a.subject, Resource: resource, Outcome: audit.OutcomeDenied,
		Reason: reason})
	if err != nil {
		return broker.Wrap(broker.EUnavailable, err, "audit log unavailable")
	}
	return nil
}
