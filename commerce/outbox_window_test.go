package commerce

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/broker/seal"
)

type recordingSender struct{ sent []Reply }

// memKeys keeps wrapped keys in memory: what a Sealer needs of a store.
type memKeys map[string]broker.WrappedKey

func (m memKeys) GetSubjectKey(_ context.Context, s string) (broker.WrappedKey, error) {
	if k, ok := m[s]; ok {
		return k, nil
	}
	return broker.WrappedKey{}, broker.ErrNotFound
}
func (m memKeys) PutSubjectKey(_ context.Context, k broker.WrappedKey) (broker.WrappedKey, error) {
	if old, ok := m[k.Subject]; ok {
		return old, nil
	}
	m[k.Subject] = k
	return k, nil
}
func (m memKeys) DeleteSubjectKey(_ context.Context, s string) error { delete(m, s); return nil }
func (m memKeys) SubjectKeysNotWrappedTo(context.Context, string, string, int) ([]broker.WrappedKey, error) {
	return nil, nil
}
func (m memKeys) ReplaceSubjectKeys(context.Context, []broker.WrappedKey) error { return nil }
func (m memKeys) CountSubjectKeys(context.Context) (map[string]int64, error)    { return nil, nil }

func (r *recordingSender) SendMessage(_ context.Context, _, _ string, rep Reply) (string, error) {
	r.sent = append(r.sent, rep)
	return "wamid.test", nil
}

// The customer service window is counted from the later of the shopper's
// last inbound message as the sender reads it and the message a reply
// answers: a sender that reads a stale row (Citus shows a two-phase
// commit on one node before another) must not refuse a fresh answer, and
// a reply to nothing recent still becomes its template or is refused.
func TestDeliveryWindowCountsTheAnsweredMessage(t *testing.T) {
	kr, err := seal.LoadKeyring(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewSealer(kr, memKeys{}, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stale := Window{LastInbound: time.Now().Add(-48 * time.Hour)}
	for _, tc := range []struct {
		name     string
		inbound  time.Time
		template string
		wantSent bool
		wantKind ReplyKind
	}{
		{"a reply to a message just received goes out as it is", time.Now().Add(-time.Minute), "", true, ReplyText},
		{"a reply to nothing recent, without a template, is refused", time.Time{}, "", false, ""},
		{"a reply to nothing recent goes out as its template", time.Time{}, "order_update", true, "template"},
		{"a reply to a message two days old goes out as its template", time.Now().Add(-47 * time.Hour), "order_update", true, "template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snd := &recordingSender{}
			s := &Service{Clients: Clients{Sealer: sealer, Sender: snd}}
			item, err := s.sealAnswer(ctx, "shp_w", "pnid", "+919800000001",
				Reply{Kind: ReplyText, Body: "hello", Template: tc.template}, false, tc.inbound)
			if err != nil {
				t.Fatal(err)
			}
			var pid string
			err = sender{s}.deliverOne(ctx, item, &sendRound{windows: map[string]Window{"shp_w": stale}}, &pid)
			if tc.wantSent != (err == nil) {
				t.Fatalf("deliverOne = %v, want sent %v", err, tc.wantSent)
			}
			if !tc.wantSent {
				return
			}
			if len(snd.sent) != 1 || snd.sent[0].Kind != tc.wantKind {
				t.Fatalf("sent %+v, want one %s", snd.sent, tc.wantKind)
			}
		})
	}
}
