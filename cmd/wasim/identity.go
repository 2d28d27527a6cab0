package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// User is who a simulated shopper is to WhatsApp (SPEC §10 "Identity"): a
// phone user (Phone), a phone user whose messages also carry their
// business-scoped user id (Phone and BSUID, and perhaps a Parent BSUID), or
// a username user whom WhatsApp names by BSUID only (no phone).
type User struct {
	Phone    string // digits, no "+"; "" for a username user
	BSUID    string // "CC.digits"
	Parent   string // the parent BSUID across the business portfolio
	Username string // "@name", for a username user
}

// ParseUser builds a User from the flags: --wa-id (phone digits, or a BSUID
// as before), --user-id, --parent-user-id and --username. A username user
// has no phone: WhatsApp withholds it, so --wa-id is ignored for the
// sender; without --user-id their BSUID is derived from the username.
func ParseUser(waID, userID, parent, username string) (User, error) {
	u := User{BSUID: userID, Parent: parent}
	switch {
	case waID == "":
	case whatsapp.IsBSUID(waID):
		if userID != "" && userID != waID {
			return u, fmt.Errorf("--wa-id %q is a BSUID and --user-id names another", waID)
		}
		u.BSUID = waID
	default:
		u.Phone = strings.TrimPrefix(waID, "+")
	}
	if username != "" {
		if !strings.HasPrefix(username, "@") {
			username = "@" + username
		}
		u.Username, u.Phone = username, ""
		if u.BSUID == "" {
			u.BSUID = bsuidFor(username)
		}
	}
	for _, b := range []string{u.BSUID, u.Parent} {
		if b != "" && !whatsapp.IsBSUID(b) {
			return u, fmt.Errorf("%q is not a BSUID (CC.digits)", b)
		}
	}
	if u.Phone == "" && u.BSUID == "" {
		return u, fmt.Errorf("a shopper needs a phone (--wa-id) or a BSUID (--user-id, --username)")
	}
	return u, nil
}

// bsuidFor derives a stable, plausible BSUID ("IN." and 16 digits) from a
// name, for username users given without one.
func bsuidFor(name string) string {
	h := sha256.Sum256([]byte("wasim/bsuid/" + name))
	return fmt.Sprintf("IN.%016d", binary.BigEndian.Uint64(h[:8])%10_000_000_000_000_000)
}

// Address is where the broker's replies to the user go (and what the fake
// Send API records them under): the phone when WhatsApp gave it, else the
// BSUID.
func (u User) Address() string {
	if u.Phone != "" {
		return u.Phone
	}
	return u.BSUID
}

// Kind names the user's shape for transcripts: phone, phone+bsuid, username.
func (u User) Kind() string {
	switch {
	case u.Phone != "" && u.BSUID != "":
		return "phone+bsuid"
	case u.Phone != "":
		return "phone"
	}
	return "username"
}

// Contact is the contacts[] entry WhatsApp sends with the user's messages.
func (u User) Contact(name string) whatsapp.Contact {
	return whatsapp.Contact{Profile: whatsapp.Profile{Name: name, Username: u.Username},
		WaID: u.Phone, UserID: u.BSUID, ParentUserID: u.Parent}
}

// Stamp sets the sender fields of m as WhatsApp does for this user: from
// (the phone, absent for a username user), from_user_id and
// from_parent_user_id, and a message id holding the sender.
func (u User) Stamp(m *whatsapp.Message) {
	m.From, m.FromUserID, m.FromParentUserID = u.Phone, u.BSUID, u.Parent
	m.ID = NewInboundID(u.Address())
}

// ChangeNumber returns the user_changed_number system message WhatsApp
// sends when the user moves to newPhone (with the BSUID that changes with
// it, when given), and the user after the change. Like Meta's, it has no
// contacts entry and its body spells both numbers out.
func (u User) ChangeNumber(newPhone, newBSUID string) (whatsapp.Message, User) {
	m := inbound(u.Address(), whatsapp.TypeSystem)
	u.Stamp(&m)
	next := u
	next.Phone = strings.TrimPrefix(newPhone, "+")
	sys := &whatsapp.System{Type: whatsapp.SystemUserChangedNumber, WaID: next.Phone,
		Body: fmt.Sprintf("User changed from %s to %s", u.Phone, next.Phone)}
	if newBSUID != "" {
		sys.UserID, sys.PreviousUserID = newBSUID, u.BSUID
		next.BSUID = newBSUID
	}
	m.System = sys
	return m, next
}

// ChangeUserID returns the user_changed_user_id system message (the BSUID
// changed, no phone given) and the user after the change.
func (u User) ChangeUserID(newBSUID string) (whatsapp.Message, User) {
	m := inbound(u.Address(), whatsapp.TypeSystem)
	u.Stamp(&m)
	m.From = "" // this notification names no phone number
	next := u
	next.BSUID = newBSUID
	m.System = &whatsapp.System{Type: whatsapp.SystemUserChangedUserID, UserID: newBSUID, PreviousUserID: u.BSUID,
		Body: "User's business-scoped user id changed"}
	return m, next
}

// sendChanges sends the identity-change system messages `wasim shop`
// was asked for (--change-number NUMBER[,BSUID], --change-user-id BSUID),
// in that order, and returns the user after them.
func sendChanges(ctx context.Context, ws *WebhookSender, u User, number, userID string, log io.Writer) (*User, error) {
	send := func(m whatsapp.Message, what string) error {
		fmt.Fprintf(log, "%s → system %s\n", u.Address(), what)
		_, err := ws.Send(ctx, ws.Notification(nil, []whatsapp.Message{m}, nil))
		return err
	}
	if number != "" {
		phone, bsuid, _ := strings.Cut(number, ",")
		p, err := whatsapp.NormalizePhone(phone)
		if err != nil {
			return nil, fmt.Errorf("--change-number: %w", err)
		}
		if bsuid != "" && !whatsapp.IsBSUID(bsuid) {
			return nil, fmt.Errorf("--change-number: %q is not a BSUID", bsuid)
		}
		m, next := u.ChangeNumber(p, bsuid)
		if err := send(m, whatsapp.SystemUserChangedNumber); err != nil {
			return nil, err
		}
		u = next
	}
	if userID != "" {
		if !whatsapp.IsBSUID(userID) {
			return nil, fmt.Errorf("--change-user-id: %q is not a BSUID", userID)
		}
		m, next := u.ChangeUserID(userID)
		if err := send(m, whatsapp.SystemUserChangedUserID); err != nil {
			return nil, err
		}
		u = next
	}
	return &u, nil
}
