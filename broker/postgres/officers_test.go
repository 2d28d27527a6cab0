package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/postgres"
	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

const testPHC = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

func mustOfficer(t *testing.T, db *postgres.DB, id, name string) broker.Officer {
	t.Helper()
	o, err := db.Officers().Create(context.Background(), broker.Officer{ID: id, Name: name, PasswordHash: testPHC})
	if err != nil {
		t.Fatalf("CreateOfficer(%s): %v", name, err)
	}
	return o
}

func sessionHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func mustSession(t *testing.T, db *postgres.DB, secret, officer string, at time.Time) broker.OfficerSession {
	t.Helper()
	s := broker.OfficerSession{IDHash: sessionHash(secret), OfficerID: officer, CSRF: "csrf-" + secret,
		CreatedAt: at, LastSeen: at, ExpiresAt: at.Add(8 * time.Hour)}
	if err := db.Officers().CreateSession(context.Background(), s); err != nil {
		t.Fatalf("CreateOfficerSession: %v", err)
	}
	return s
}

func TestOfficerAccounts(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	a := mustOfficer(t, db, "off_a", "asha")
	if a.CreatedAt.Before(before) || a.PasswordSetAt.Before(before) || a.Disabled {
		t.Errorf("created officer = %+v: want times set by the database and enabled", a)
	}
	mustOfficer(t, db, "off_b", "bala")

	tests := []struct {
		name     string
		err      error
		wantCode string
	}{
		{"duplicate name", func() error {
			_, err := db.Officers().Create(ctx, broker.Officer{ID: "off_c", Name: "asha", PasswordHash: testPHC})
			return err
		}(), broker.EConflict},
		{"duplicate id", func() error {
			_, err := db.Officers().Create(ctx, broker.Officer{ID: "off_a", Name: "chitra", PasswordHash: testPHC})
			return err
		}(), broker.EConflict},
		{"empty name", func() error {
			_, err := db.Officers().Create(ctx, broker.Officer{ID: "off_d", Name: "", PasswordHash: testPHC})
			return err
		}(), broker.EInvalid},
		{"empty password hash", func() error {
			_, err := db.Officers().Create(ctx, broker.Officer{ID: "off_e", Name: "dev", PasswordHash: ""})
			return err
		}(), broker.EInvalid},
		{"unknown id", func() error { _, err := db.Officers().Get(ctx, "off_none"); return err }(), broker.ENotFound},
		{"unknown name", func() error { _, err := db.Officers().OfficerByName(ctx, "nobody"); return err }(), broker.ENotFound},
		{"password of unknown", db.Officers().SetPassword(ctx, "off_none", testPHC), broker.ENotFound},
		{"disable unknown", db.Officers().SetDisabled(ctx, "off_none", true), broker.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code := broker.ErrorCode(tc.err); code != tc.wantCode {
				t.Errorf("error = %v, want code %q", tc.err, tc.wantCode)
			}
		})
	}

	got, err := db.Officers().OfficerByName(ctx, "asha")
	if err != nil || got.ID != "off_a" || got.PasswordHash != testPHC {
		t.Errorf("OfficerByName(asha) = %+v, %v", got, err)
	}
	list, err := db.Officers().List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "off_a" || list[1].ID != "off_b" {
		t.Errorf("ListOfficers = %+v, %v: want off_a, off_b", list, err)
	}
}

func TestOfficerSessions(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustOfficer(t, db, "off_a", "asha")
	mustOfficer(t, db, "off_b", "bala")
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	sa := mustSession(t, db, "a1", "off_a", t0)
	mustSession(t, db, "a2", "off_a", t0)
	mustSession(t, db, "b1", "off_b", t0)

	s, o, err := db.Officers().Session(ctx, sa.IDHash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.IDHash, sa.IDHash) || s.CSRF != sa.CSRF || !s.ExpiresAt.Equal(sa.ExpiresAt) || o.Name != "asha" {
		t.Errorf("OfficerSession = %+v, %+v; want %+v of asha", s, o, sa)
	}

	// Touch moves last_seen forward only.
	if err := db.Officers().TouchSession(ctx, sa.IDHash, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.Officers().TouchSession(ctx, sa.IDHash, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := db.Officers().Session(ctx, sa.IDHash); !s.LastSeen.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("last_seen = %v, want %v", s.LastSeen, t0.Add(10*time.Minute))
	}

	// A duplicate session id is refused.
	if err := db.Officers().CreateSession(ctx, sa); broker.ErrorCode(err) != broker.EConflict {
		t.Errorf("duplicate session: %v, want conflict", err)
	}
	// A session of an unknown officer is refused.
	bad := sa
	bad.IDHash, bad.OfficerID = sessionHash("x"), "off_none"
	if err := db.Officers().CreateSession(ctx, bad); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("session of unknown officer: %v, want invalid", err)
	}

	// A new password ends every session of that officer, and only theirs.
	if err := db.Officers().SetPassword(ctx, "off_a", "$argon2id$new"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		secret string
		alive  bool
	}{{"first session of a", "a1", false}, {"second session of a", "a2", false}, {"session of b", "b1", true}} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := db.Officers().Session(ctx, sessionHash(tc.secret))
			if alive := err == nil; alive != tc.alive || (err != nil && !broker.IsNotFound(err)) {
				t.Errorf("after password reset: err = %v, want alive %v", err, tc.alive)
			}
		})
	}
	if o, _ := db.Officers().Get(ctx, "off_a"); o.PasswordHash != "$argon2id$new" {
		t.Errorf("password hash = %q after reset", o.PasswordHash)
	}

	// Disabling ends sessions; re-enabling does not bring them back.
	if err := db.Officers().SetDisabled(ctx, "off_b", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Officers().Session(ctx, sessionHash("b1")); !broker.IsNotFound(err) {
		t.Errorf("session of a disabled officer: %v, want not found", err)
	}
	if o, _ := db.Officers().Get(ctx, "off_b"); !o.Disabled {
		t.Error("officer b is not disabled")
	}
	if err := db.Officers().SetDisabled(ctx, "off_b", false); err != nil {
		t.Fatal(err)
	}

	// Sign-out.
	mustSession(t, db, "b2", "off_b", t0)
	if err := db.Officers().DeleteSession(ctx, sessionHash("b2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Officers().Session(ctx, sessionHash("b2")); !broker.IsNotFound(err) {
		t.Errorf("signed-out session: %v, want not found", err)
	}
	if err := db.Officers().DeleteSession(ctx, sessionHash("b2")); err != nil {
		t.Errorf("second sign-out: %v, want no error", err)
	}
}

func TestPruneOfficerAuth(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	mustOfficer(t, db, "off_a", "asha")
	now := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	for _, s := range []broker.OfficerSession{
		{IDHash: sessionHash("fresh"), CreatedAt: now.Add(-time.Hour), LastSeen: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)},
		{IDHash: sessionHash("idle"), CreatedAt: now.Add(-time.Hour), LastSeen: now.Add(-31 * time.Minute), ExpiresAt: now.Add(time.Hour)},
		{IDHash: sessionHash("expired"), CreatedAt: now.Add(-9 * time.Hour), LastSeen: now.Add(-time.Minute), ExpiresAt: now},
	} {
		s.OfficerID, s.CSRF = "off_a", "c"
		if err := db.Officers().CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	oldKey, newKey := sessionHash("old failures"), sessionHash("new failures")
	if _, _, err := db.Officers().RecordLoginFailure(ctx, oldKey, now.Add(-time.Hour), 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Officers().RecordLoginFailure(ctx, newKey, now.Add(-time.Minute), 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.Officers().Prune(ctx, now, now.Add(-30*time.Minute), now.Add(-15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		alive  bool
	}{{"fresh session kept", "fresh", true}, {"idle session pruned", "idle", false}, {"expired session pruned", "expired", false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := db.Officers().Session(ctx, sessionHash(tc.secret))
			if (err == nil) != tc.alive {
				t.Errorf("err = %v, want alive %v", err, tc.alive)
			}
		})
	}
	// The failure rows themselves: the old window is gone even when asked
	// with a window long enough to still cover it.
	if n, _, _ := db.Officers().LoginFailures(ctx, oldKey, now, 24*time.Hour); n != 0 {
		t.Errorf("old failure window kept: %d failures", n)
	}
	if n, _, _ := db.Officers().LoginFailures(ctx, newKey, now, 15*time.Minute); n != 1 {
		t.Errorf("new failure window: %d failures, want 1", n)
	}
}

func TestLoginFailureWindows(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	key := sessionHash("name\x00asha")
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	const window = 15 * time.Minute

	steps := []struct {
		name      string
		at        time.Time
		record    bool
		wantN     int
		wantStart time.Time
	}{
		// wantStart is the time of the run's last failure.
		{"nothing yet", t0, false, 0, time.Time{}},
		{"first failure starts a run", t0, true, 1, t0},
		{"second failure in the run", t0.Add(5 * time.Minute), true, 2, t0.Add(5 * time.Minute)},
		{"a run outlives the window from its first failure", t0.Add(19 * time.Minute), false, 2, t0.Add(5 * time.Minute)},
		{"a window without failure ends it", t0.Add(20 * time.Minute), false, 0, time.Time{}},
		{"a failure after that starts a new run", t0.Add(21 * time.Minute), true, 1, t0.Add(21 * time.Minute)},
		{"an older failure seen late counts but does not move the last one back", t0.Add(20 * time.Minute), true, 2, t0.Add(21 * time.Minute)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var n int
			var start time.Time
			var err error
			if st.record {
				n, start, err = db.Officers().RecordLoginFailure(ctx, key, st.at, window)
			} else {
				n, start, err = db.Officers().LoginFailures(ctx, key, st.at, window)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != st.wantN || !start.Equal(st.wantStart) {
				t.Errorf("failures = %d, last %v, want %d, last %v", n, start, st.wantN, st.wantStart)
			}
		})
	}

	// Concurrent failures all count.
	other := sessionHash("ip\x00127.0.0.1")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := db.Officers().RecordLoginFailure(ctx, other, t0, window); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, _, _ := db.Officers().LoginFailures(ctx, other, t0.Add(time.Minute), window); n != 20 {
		t.Errorf("20 concurrent failures counted as %d", n)
	}

	if err := db.Officers().ClearLoginFailures(ctx, key); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := db.Officers().LoginFailures(ctx, key, t0.Add(22*time.Minute), window); n != 0 {
		t.Errorf("after clearing: %d failures", n)
	}
}

// An operator-issued password (create, reset) is temporary; the one the
// officer chooses is not, and choosing it ends their other sessions only.
func TestOfficerChoosesPassword(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if o := mustOfficer(t, db, "off_a", "asha"); !o.PasswordTemporary {
		t.Error("a created officer's password is not temporary")
	}
	mustOfficer(t, db, "off_b", "bala")
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	mine := mustSession(t, db, "a1", "off_a", t0)
	mustSession(t, db, "a2", "off_a", t0)
	mustSession(t, db, "b1", "off_b", t0)
	if _, o, err := db.Officers().Session(ctx, mine.IDHash); err != nil || !o.PasswordTemporary {
		t.Fatalf("the session's officer: %+v, %v; want a temporary password", o, err)
	}

	if err := db.Officers().ChangePassword(ctx, "off_a", "$argon2id$chosen", mine.IDHash); err != nil {
		t.Fatal(err)
	}
	if o, _ := db.Officers().Get(ctx, "off_a"); o.PasswordTemporary || o.PasswordHash != "$argon2id$chosen" {
		t.Errorf("after the change: %+v", o)
	}
	for _, tc := range []struct {
		secret string
		alive  bool
	}{{"a1", true}, {"a2", false}, {"b1", true}} {
		_, _, err := db.Officers().Session(ctx, sessionHash(tc.secret))
		if alive := err == nil; alive != tc.alive {
			t.Errorf("session %s after the change: err = %v, want alive %v", tc.secret, err, tc.alive)
		}
	}
	if err := db.Officers().ChangePassword(ctx, "off_none", "$argon2id$x", mine.IDHash); !broker.IsNotFound(err) {
		t.Errorf("change for an unknown officer: %v, want not found", err)
	}

	// A reset by the operator makes it temporary again.
	if err := db.Officers().SetPassword(ctx, "off_a", "$argon2id$issued"); err != nil {
		t.Fatal(err)
	}
	if o, _ := db.Officers().Get(ctx, "off_a"); !o.PasswordTemporary {
		t.Error("a reset password is not temporary")
	}
	if list, _ := db.Officers().List(ctx); len(list) != 2 || !list[0].PasswordTemporary || !list[1].PasswordTemporary {
		t.Errorf("ListOfficers = %+v: want both temporary", list)
	}
}
