package ui

import (
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// minPasswordLen is the shortest password an officer may choose, in
// characters (NIST SP 800-63B asks for at least 8; a compliance desk that
// can erase shoppers' data deserves more).
const minPasswordLen = 12

type passwordBody struct {
	Next   string
	Forced bool // the password is one-time: nothing else opens until it is changed
	Error  string
	Min    int
}

// passwordPage shows the form to choose a new password. An officer whose
// password was issued by the operator is sent here after signing in, and
// by every other page until the password is changed.
func (u authPages) passwordPage(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	return u.showPassword(c, fiber.StatusOK, passwordBody{Next: safeNext(c.Query("next")), Forced: cur.officer.PasswordTemporary})
}

func (u authPages) showPassword(c *fiber.Ctx, status int, body passwordBody) error {
	body.Min = minPasswordLen
	d := u.data(c, "password", "Choose a password")
	d.Body = body
	return u.renderStatus(c, status, "password", d)
}

// changePassword checks the form (the officer guard has checked its CSRF
// token): the current password, and a new one typed twice. Failed checks
// of the current password count towards the sign-in throttle of the
// officer's name, so a borrowed session cannot be used to guess it.
func (u authPages) changePassword(c *fiber.Ctx) error {
	cur, _ := u.current(c)
	body := passwordBody{Next: safeNext(formValue(c, "next")), Forced: cur.officer.PasswordTemporary}
	old, pw, again := formValue(c, "current"), formValue(c, "password"), formValue(c, "again")
	switch {
	case old == "" || pw == "":
		body.Error = "Enter your current password and a new one."
	case len(old) > maxPasswordLen || len(pw) > maxPasswordLen:
		body.Error = "That password is too long."
	case !utf8.ValidString(pw) || utf8.RuneCountInString(pw) < minPasswordLen:
		body.Error = "Choose a password of at least 12 characters."
	case pw != again:
		body.Error = "The two new passwords differ."
	case pw == old:
		body.Error = "Choose a password other than the current one."
	}
	if body.Error != "" {
		return u.showPassword(c, fiber.StatusBadRequest, body)
	}
	ctx := c.UserContext()
	now := u.d.Now()
	lim := u.d.Limits
	nameThrottle := u.throttles(cur.officer.Name, u.clientIP(c))[0]
	nameKey := nameThrottle.key
	until, err := u.throttled(c, now, nameThrottle)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		body.Error = "Too many wrong passwords. Wait " + waitText(until.Sub(now)) + ", then try again."
		return u.showPassword(c, fiber.StatusTooManyRequests, body)
	}
	actor := "officer:" + cur.officer.ID
	if !u.d.Passwords.Check(cur.officer.PasswordHash, old) {
		if _, _, err := u.d.Officers.RecordLoginFailure(ctx, nameKey, now, lim.FailureWindow); err != nil {
			return err
		}
		if _, err := u.record(ctx, actor, "password", purposeAccess, "", "ui", audit.OutcomeFailed, "wrong current password"); err != nil {
			u.d.Log.Error("audit of a failed password change", "err", err)
		}
		body.Error = "Your current password is not that."
		return u.showPassword(c, fiber.StatusUnauthorized, body)
	}
	hash, err := u.d.Passwords.Hash(pw)
	if err != nil {
		return broker.Wrap(broker.EInternal, err, "hashing the password")
	}
	// No change without its audit entry: record first.
	if _, err := u.record(ctx, actor, "password", purposeAccess, "", "ui", audit.OutcomeDone, "password changed"); err != nil {
		return err
	}
	if err := u.d.Officers.ChangePassword(ctx, cur.officer.ID, hash, cur.session.IDHash); err != nil {
		return err
	}
	if body.Next == passwordPath {
		body.Next = "/ui/overview"
	}
	return c.Redirect(body.Next, fiber.StatusSeeOther)
}
