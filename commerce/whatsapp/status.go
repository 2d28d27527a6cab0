package whatsapp

// StatusRank orders message statuses so that they can be applied
// monotonically although webhooks arrive out of order: sent (1) < delivered
// (2) < read (3) < played (4). failed ranks above all and is terminal. Unknown
// statuses rank 0.
func StatusRank(status string) int {
	switch status {
	case StatusSent:
		return 1
	case StatusDelivered:
		return 2
	case StatusRead:
		return 3
	case StatusPlayed:
		return 4
	case StatusFailed:
		return 100
	}
	return 0
}

// Advance returns the status a message has after a status update next
// arrives in state current. Statuses never move backwards (a late "sent" after
// "read" is ignored), "read" may arrive without "delivered" (it implies it),
// "failed" is terminal, and unknown updates leave the state unchanged.
func Advance(current, next string) string {
	if current == StatusFailed {
		return StatusFailed
	}
	if StatusRank(next) > StatusRank(current) {
		return next
	}
	return current
}

// IsDelivered reports whether a message in this status reached the device:
// delivered, read and played all imply delivery.
func IsDelivered(status string) bool {
	r := StatusRank(status)
	return r >= StatusRank(StatusDelivered) && status != StatusFailed
}

// AdvancePayment is [Advance] for payment statuses: pending < captured, and
// captured is terminal.
func AdvancePayment(current, next string) string {
	rank := func(s string) int {
		switch s {
		case PaymentPending:
			return 1
		case PaymentCaptured:
			return 2
		}
		return 0
	}
	if rank(next) > rank(current) {
		return next
	}
	return current
}
