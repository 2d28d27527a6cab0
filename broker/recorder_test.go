package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// memAppender is an audit log in memory; err fails every append.
type memAppender struct {
	entries []audit.Entry
	err     error
}

func (m *memAppender) Append(_ context.Context, e audit.Entry) error {
	if m.err != nil {
		return m.err
	}
	m.entries = append(m.entries, e)
	return nil
}

// revisionOnly is a policy engine that only names its revision.
type revisionOnly string

func (revisionOnly) Evaluate(context.Context, broker.PolicyInput) (broker.PolicyDecision, error) {
	return broker.PolicyDecision{}, errors.New("not for the recorder")
}
func (r revisionOnly) Revision() string { return string(r) }

func TestRecorder(t *testing.T) {
	pseudo, err := broker.NewPseudonymizer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	legal := broker.PartyLegal{Role: broker.RoleProcessor, Jurisdiction: "IN", TransferBasis: "none"}
	tests := []struct {
		name  string
		ev    broker.Event
		check func(t *testing.T, e audit.Entry)
	}{
		{name: "the subject is written as its pseudonym, never the id",
			ev: broker.Event{Time: at, Actor: "shopper:chat", Action: "consent", Purpose: broker.PurposeMarketing, Subject: "sub_1"},
			check: func(t *testing.T, e audit.Entry) {
				if e.Subject != pseudo.Audit("sub_1") || e.Subject == "sub_1" {
					t.Errorf("Subject = %q, want the pseudonym %q", e.Subject, pseudo.Audit("sub_1"))
				}
			}},
		{name: "a pseudonym passes as it is",
			ev: broker.Event{Time: at, Actor: "officer:o", Action: "look-up", SubjectPseudonym: "sub_pseudo"},
			check: func(t *testing.T, e audit.Entry) {
				if e.Subject != "sub_pseudo" {
					t.Errorf("Subject = %q, want sub_pseudo", e.Subject)
				}
			}},
		{name: "defaults: a new decision id, done, the revision in force",
			ev: broker.Event{Time: at, Actor: "system:keys", Action: "log.key_announced", Purpose: broker.PurposeLogIntegrity},
			check: func(t *testing.T, e audit.Entry) {
				if len(e.DecisionID) < 5 || e.DecisionID[:4] != "dec_" || e.Outcome != audit.OutcomeDone || e.PolicyRevision != "rev7" {
					t.Errorf("DecisionID %q Outcome %q PolicyRevision %q", e.DecisionID, e.Outcome, e.PolicyRevision)
				}
				if e.Purpose != "log_integrity" || !e.Time.Equal(at) {
					t.Errorf("Purpose %q Time %v", e.Purpose, e.Time)
				}
			}},
		{name: "given id, outcome and legal entry are kept",
			ev: broker.Event{Time: at, DecisionID: "dec_given", Actor: "retailer:cli_1", Action: "release",
				Purpose: broker.PurposeOrderFulfilment, Outcome: audit.OutcomeDenied, Reason: "no", Legal: legal,
				Withheld: []string{"customer.phone"}},
			check: func(t *testing.T, e audit.Entry) {
				if e.DecisionID != "dec_given" || e.Outcome != audit.OutcomeDenied || e.RecipientRole != legal.Role ||
					e.Jurisdiction != "IN" || e.TransferBasis != "none" || len(e.Withheld) != 1 {
					t.Errorf("entry %+v", e)
				}
			}},
		{name: "no time: the recorder's clock",
			ev: broker.Event{Actor: "system:retention", Action: "warning", Purpose: broker.PurposeRetention},
			check: func(t *testing.T, e audit.Entry) {
				if time.Since(e.Time) > time.Minute || e.Time.IsZero() {
					t.Errorf("Time = %v, want now", e.Time)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &memAppender{}
			rec := broker.NewRecorder(log, revisionOnly("rev7"), pseudo)
			id, err := rec.Record(context.Background(), tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(log.entries) != 1 || log.entries[0].DecisionID != id {
				t.Fatalf("appended %d entries, id %q", len(log.entries), id)
			}
			e := log.entries[0]
			if _, err := e.ValidLeaf(); err != nil {
				t.Fatalf("recorded entry is not a valid leaf: %v", err)
			}
			tt.check(t, e)
		})
	}
}

// A write that fails is reported: the caller must not act as if recorded.
func TestRecorderFailsClosed(t *testing.T) {
	boom := errors.New("log down")
	rec := broker.NewRecorder(&memAppender{err: boom}, nil, nil)
	if _, err := rec.Record(context.Background(), broker.Event{Actor: "a", Action: "b"}); !errors.Is(err, boom) {
		t.Fatalf("Record: %v, want %v", err, boom)
	}
	var none *broker.Recorder
	if _, err := none.Record(context.Background(), broker.Event{Actor: "a", Action: "b"}); err == nil {
		t.Fatal("a nil recorder recorded")
	}
}

// A new log key is announced as the log's own action, with no subject, and
// an announcement that cannot be written fails (the rotation must stop).
func TestAnnounceLogKey(t *testing.T) {
	const vkey = "sieve.example+1a2b3c4d+AbCdEf"
	log := &memAppender{}
	rec := broker.NewRecorder(log, revisionOnly("rev-1"), nil)
	if err := rec.AnnounceLogKey(context.Background(), vkey); err != nil {
		t.Fatal(err)
	}
	if len(log.entries) != 1 {
		t.Fatalf("%d entries, want 1", len(log.entries))
	}
	e := log.entries[0]
	if e.Action != broker.ActionLogKeyAnnounced || e.Actor != "system:keys" || e.Purpose != string(broker.PurposeLogIntegrity) ||
		e.Resource != vkey || e.Subject != "" || e.Outcome != audit.OutcomeDone || e.PolicyRevision != "rev-1" {
		t.Errorf("announcement entry %+v", e)
	}
	if _, err := e.ValidLeaf(); err != nil {
		t.Errorf("not a valid leaf: %v", err)
	}
	if err := rec.AnnounceLogKey(context.Background(), ""); broker.ErrorCode(err) != broker.EInvalid {
		t.Errorf("empty key: %v, want EInvalid", err)
	}
	boom := errors.New("log down")
	failing := broker.NewRecorder(&memAppender{err: boom}, nil, nil)
	if err := failing.AnnounceLogKey(context.Background(), vkey); !errors.Is(err, boom) {
		t.Errorf("failed write: %v, want it reported", err)
	}
}
