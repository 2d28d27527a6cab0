package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestCrashUnderLoad kills brokerd with SIGKILL while `wasim load` streams
// webhooks at it (with redeliveries) and scripted purchases are under way,
// restarts it on the same database, and checks that everything a 200
// acknowledged was processed exactly once, that every reply went out once,
// that no order was duplicated, and that the audit log verifies.
//
// The Send API (and the retailer's endpoint) hold every request from just
// before the kill: the process dies with sends on the wire, which its
// successor must retry once their lease ends. The Cloud API has no
// idempotency key, so a kill between its accepting a message and the
// outbox recording that would look, to the broker, like a send that
// failed: the outbox sends again (at least once, by design). Holding the
// answers off while the process dies makes "exactly one reply per Hi" an
// exact check of everything else: the inbox, the lease after a crash,
// retries.
func TestCrashUnderLoad(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	dbURL := pgtest.NewURL(t)
	w := newWorld(t, dbURL)
	sp := newSendProxy(t, w.sim)
	w.apiBase = sp.URL + "/v25.0"
	hook := newPartnerHook(t)
	st := openStore(t, dbURL)

	addr := pgtest.FreeAddr(t)
	first := w.startBroker("brokerd (first)", addr)
	_, secret := w.seedRetailer(hook.URL)
	hook.setSecret(secret)
	hp := newHookProxy(t, first.url)

	began := time.Now()
	ingest := w.wasimLoad("--shoppers", "200", "--rate", "150", "--duration", "6s", "--batch", "2",
		"--dup-rate", "0.1", "--seed", "101", "--webhook-url", hp.URL)
	flows := w.wasimLoad("--flow", "--shoppers", "8", "--rate", "1", "--duration", "8s", "--seed", "102",
		"--no-serve", "--sim-url", w.sim, "--webhook-url", hp.URL, "--timeout", "150s")

	// Let the load run and the first purchases get going.
	waitFor(t, "300 messages acknowledged before the crash", 60*time.Second, func() (bool, string) {
		n := len(hp.acked())
		return n >= 300, fmt.Sprintf("%d acknowledged", n)
	})

	// Hold the sends off: from now on the Send API and the retailer answer
	// nothing until the broker hangs up. Once sends are held on the wire and
	// every message accepted before is recorded as sent, no send is between
	// acceptance and record when the process dies.
	hold := func(int) fault { return fault{Delay: 10 * time.Minute} }
	sp.set(hold)
	hook.set(hold)
	waitFor(t, "sends to be held and every accepted send recorded in the outbox", 60*time.Second, func() (bool, string) {
		missing := st.unrecordedSends(w, w.simRecords())
		delivered := 0
		for _, ds := range hook.delivered() {
			delivered += len(ds)
		}
		sentHooks := scalar[int64](st, `SELECT count(*) FROM outbox WHERE kind = 'partner' AND status = 'sent'`)
		held := sp.inflight.Load()
		return held > 0 && missing == 0 && int64(delivered) == sentHooks,
			fmt.Sprintf("%d sends held; %d accepted sends not yet recorded; %d partner deliveries, %d recorded",
				held, missing, delivered, sentHooks)
	})
	held := sp.inflight.Load()

	killedAt := time.Now()
	first.kill9(t)
	t.Logf("killed brokerd (pid %d) with SIGKILL %s into the load, %d messages acknowledged, %d sends on the wire",
		first.pid(), killedAt.Sub(began).Round(time.Millisecond), len(hp.acked()), held)

	second := w.startBroker("brokerd (restarted)", addr)
	restartedAt := time.Now()
	t.Logf("restarted on the same database in %s", restartedAt.Sub(killedAt).Round(time.Millisecond))
	sp.set(noFault)
	hook.set(noFault)

	ingestRep, flowRep := ingest(), flows()
	t.Logf("ingest: %d requests, %d acknowledged, %d failed, %d duplicates; flows: %d orders, errors %v",
		ingestRep.Requests, ingestRep.Acknowledged, ingestRep.Failed, ingestRep.Duplicates, flowRep.Orders, flowRep.FlowErrors)

	// The items the killed process had leased come back when their lease
	// (a minute) ends.
	st.waitDrained("the inbox, the outbox and the audit log to drain after the restart", 180*time.Second)
	t.Logf("drained %s after the restart", time.Since(restartedAt).Round(time.Millisecond))

	if hp.acknowledgedAfter(restartedAt) == 0 {
		t.Errorf("no webhook was acknowledged after the restart: the load did not straddle the crash")
	}
	sent, _ := checkOutboxOnce(t, w, st, time.Time{})
	his := checkHisOnce(t, w, st, hp, "9198", nil)
	if his.Acked < ingestRep.MessagesAcked {
		t.Errorf("wasim counted %d messages acknowledged, the recording proxy only %d", ingestRep.MessagesAcked, his.Acked)
	}
	retried := 0
	for _, o := range st.outbox() {
		if o.Kind == "whatsapp" && o.Attempts >= 2 {
			retried++
		}
	}
	if retried < int(held) {
		t.Errorf("%d sends were on the wire when brokerd died, but only %d outbox items took a second attempt", held, retried)
	}
	placed := checkOrdersOnce(t, st, hook)
	if flowRep.Orders < 1 || placed < flowRep.Orders {
		t.Errorf("%d purchases completed, %d orders placed; want at least one, and every completed one placed",
			flowRep.Orders, placed)
	}
	size := checkAuditClean(t, w, st)
	t.Logf("%d Hi acknowledged, %d stored, %d notices; %d messages sent once; %d orders placed; audit ok at %d entries",
		his.Acked, his.Stored, his.Notices, sent, placed, size)
	second.terminate(t)
}
