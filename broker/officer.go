package broker

import "time"

// Officer is a compliance officer's account on the dashboard.
type Officer struct {
	ID            string // off_…; how the audit log names the officer
	Name          string // the sign-in name, unique
	PasswordHash  string // argon2id PHC string
	CreatedAt     time.Time
	PasswordSetAt time.Time
	Disabled      bool
	// PasswordTemporary marks a password the operator issued (create or
	// reset): the officer must choose a new one at the next sign-in.
	PasswordTemporary bool
}

// OfficerSession is a signed-in officer's dashboard session. Only the
// SHA-256 of the cookie's secret is stored.
type OfficerSession struct {
	IDHash    []byte // SHA-256 of the session secret, 32 bytes
	OfficerID string
	CSRF      string // the session's anti-CSRF token
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time // absolute end of the session
}
