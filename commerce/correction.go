package commerce

import (
	"context"
	"slices"
	"strings"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// StateCorrectAddress waits for the corrected address after "correct
// address" (rectification, GDPR Art. 16, DPDP §12).
const StateCorrectAddress = "correct_address"

// Audit codes of a correction.
const (
	PurposeRectification  = broker.PurposeRectification
	CorrectReasonAddress  = "address_corrected"
	CorrectReasonNoRecord = "no_open_order"
)

// AddressCorrector is implemented by Actions that can correct the
// shopper's address; it is a separate interface so that Actions stays
// small for the conversation's other users.
type AddressCorrector interface {
	// CorrectAddress re-seals the shopper's open orders with loc and
	// tells every recipient of the old address; it returns how many
	// orders were corrected and how many partners were told.
	CorrectAddress(ctx context.Context, loc Location) (orders, told int, err error)
}

// askCorrectAddress starts a correction: the next message is the address.
func askCorrectAddress(s *Session) []Reply {
	if s.State != StateCorrectAddress {
		s.Return, s.State = s.State, StateCorrectAddress
	}
	return []Reply{{Kind: ReplyText, Body: "Send your corrected delivery address with its 6-digit PIN code, " +
		"or share your location. Say \"help\" to leave it as it is."}}
}

// correctAddress takes the corrected address and applies it.
func (c *Conversation) correctAddress(ctx context.Context, s *Session, in Inbound, act Actions) ([]Reply, error) {
	var loc Location
	switch {
	case in.Kind == InLocation && in.Loc != nil:
		loc = *in.Loc
	case in.Kind == InText:
		addr := strings.TrimSpace(in.Text)
		if len([]rune(addr)) < 10 || PostalCodeOf(addr) == "" {
			return askCorrectAddress(s), nil
		}
		loc = Location{Address: clipText(addr, 300)}
	default:
		return askCorrectAddress(s), nil
	}
	ac, ok := act.(AddressCorrector)
	if !ok {
		s.State, s.Return = s.Return, ""
		return []Reply{{Kind: ReplyText, Body: "Corrections are not available right now."}}, nil
	}
	orders, told, err := ac.CorrectAddress(ctx, loc)
	if err != nil {
		return nil, err
	}
	s.State, s.Return = s.Return, ""
	if s.Address != nil {
		s.Address = &loc // the order being placed uses it too
	}
	if orders == 0 {
		return []Reply{{Kind: ReplyText, Body: "Noted. You have no open order holding an address; your next order will ask for it."}}, nil
	}
	body := "Your address is corrected on your open order(s)."
	if told > 0 {
		body += " The partners that received the old address have been told to update it."
	}
	return []Reply{{Kind: ReplyText, Body: body}}, nil
}

// CorrectAddress implements AddressCorrector for the chat.
func (a *actions) CorrectAddress(ctx context.Context, loc Location) (int, int, error) {
	return a.s.CorrectAddress(ctx, a.subject, loc, broker.Party{ID: "chat", Kind: broker.KindShopper})
}

// CorrectAddress corrects a shopper's address (asked in the chat, or by an
// officer): every open order (not delivered, not cancelled) is re-sealed
// with loc, nothing is released on its own, and every partner that
// received the old address of those orders gets subject.corrected (it may
// read the order again). The correction is audited without the address.
// It runs in the caller's transaction, or in its own.
func (s *Service) CorrectAddress(ctx context.Context, subject string, loc Location, by broker.Party) (orders, told int, err error) {
	if strings.TrimSpace(loc.Address) == "" && loc.Lat == 0 && loc.Long == 0 {
		return 0, 0, broker.Errorf(broker.EInvalid, "the corrected address is empty")
	}
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		orders, told = 0, 0
		rows, err := s.Orders.OrdersOfSubject(ctx, subject)
		if err != nil {
			return err
		}
		var ids []string
		for i := range rows {
			o := &rows[i]
			if o.Erased || o.Status == StatusDelivered || o.Status == StatusCancelled {
				continue
			}
			if err := s.OpenOrder(ctx, o); err != nil {
				return err
			}
			o.Address, o.PostalCode = loc, PostalCodeOf(loc.Address)
			sealed, err := (&Orders{Service: s}).sealOrderRow(ctx, o)
			if err != nil {
				return err
			}
			if s.notices == nil {
				return broker.Errorf(broker.EInternal, "corrections need the notice store")
			}
			if err := s.notices.Store.ResealOrder(ctx, o.ID, sealed); err != nil {
				return err
			}
			ids = append(ids, o.ID)
		}
		reason := CorrectReasonAddress
		if len(ids) == 0 {
			reason = CorrectReasonNoRecord
		}
		if err := s.record(ctx, broker.Event{Actor: by.Actor(), Action: "correct", Purpose: PurposeRectification,
			Subject: subject, Resource: "subject", Outcome: audit.OutcomeDone,
			Reason: reason}); err != nil {
			return broker.Wrap(broker.EUnavailable, err, "audit log unavailable; nothing was corrected")
		}
		orders = len(ids)
		if orders == 0 {
			return nil
		}
		address := ReceivedAny(CorrectedAddressFields)
		told, err = s.notices.Notify(ctx, subject, NoticeCorrected, func(r Recipient) bool {
			return address(r) && slices.ContainsFunc(r.Orders, func(o string) bool { return slices.Contains(ids, o) })
		}, nil)
		return err
	})
	if err == nil {
		s.WakeSender()
	}
	return orders, told, err
}
