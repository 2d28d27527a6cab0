package faults

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce"
)

// TestSlowOrFailingDependencies puts a faulty Send API (and a faulty
// retailer webhook endpoint) in front of one broker and checks that the
// outbox delivers everything exactly once in the end, backing off between
// attempts rather than spinning.
func TestSlowOrFailingDependencies(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, e *depEnv)
	}{
		{"failing then recovering", failingThenRecovering},
		{"slow", slowDependencies},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newDepEnv(t))
		})
	}
}

// depEnv is one broker whose Send API and retailer endpoint the test
// controls.
type depEnv struct {
	w    *world
	st   *store
	sp   *sendProxy
	hook *partnerHook
	b    *brokerd
	hp   *hookProxy
}

func newDepEnv(t *testing.T) *depEnv {
	t.Helper()
	dbURL := pgtest.NewURL(t)
	e := &depEnv{w: newWorld(t, dbURL), st: openStore(t, dbURL), hook: newPartnerHook(t)}
	e.sp = newSendProxy(t, e.w.sim)
	e.w.apiBase = e.sp.URL + "/v25.0"
	e.b = e.w.startBroker("brokerd", "")
	_, secret := e.w.seedRetailer(e.hook.URL)
	e.hook.setSecret(secret)
	e.hp = newHookProxy(t, e.b.url)
	return e
}

// sayHi sends one "Hi" from each of the shoppers, one webhook each; each
// must be acknowledged, and the median acknowledgement must come faster
// than medianBound: ingest never waits for the Send API.
func (e *depEnv) sayHi(t *testing.T, shoppers []string, medianBound time.Duration) {
	t.Helper()
	var took []time.Duration
	for i, who := range shoppers {
		status, d, err := postMessages(e.hp.URL, hiMessage(who, i))
		if err != nil || status != http.StatusOK {
			t.Fatalf("Hi from %s: HTTP %d: %v", who, status, err)
		}
		took = append(took, d)
	}
	slices.Sort(took)
	if med := took[len(took)/2]; med >= medianBound {
		t.Errorf("webhooks acknowledged in %s (median), want under %s: ingest must not wait for the Send API",
			med.Round(time.Millisecond), medianBound)
	}
}

func shopperIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// attemptsTo groups the Send API attempts by recipient, in time order.
func attemptsTo(as []attempt) map[string][]attempt {
	out := map[string][]attempt{}
	for _, a := range as {
		out[a.To] = append(out[a.To], a)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Start.Before(list[j].Start) })
	}
	return out
}

// checkBackoff checks that consecutive attempts of one item are spaced at
// least by the outbox's backoff (commerce.Backoff: 2 s after the first
// failure, then 4 s, 8 s…) and by any Retry-After the failure carried.
func checkBackoff(t *testing.T, what string, list []attempt) {
	t.Helper()
	const slack = 100 * time.Millisecond // clock reads in two processes
	for k := 1; k < len(list); k++ {
		prev, cur := list[k-1], list[k]
		want := commerce.Backoff(k, time.Duration(prev.RetryAfter)*time.Second)
		if gap := cur.Start.Sub(prev.End); gap < want-slack {
			t.Errorf("%s: attempt %d came %s after attempt %d failed (%d), want at least %s",
				what, k+1, gap.Round(time.Millisecond), k, prev.Status, want)
		}
	}
}

// maxInWindow is the largest number of attempts that started within any
// window of length d.
func maxInWindow(as []attempt, d time.Duration) int {
	starts := make([]time.Time, 0, len(as))
	for _, a := range as {
		starts = append(starts, a.Start)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range starts {
		for starts[i].Sub(starts[j]) >= d {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// failingThenRecovering: the retailer's endpoint answers 500 from the
// start; after one purchase the Send API answers 500 (code 131000) and 429
// (code 130429, Retry-After 3) in turn for a while; then both recover.
func failingThenRecovering(t *testing.T, e *depEnv) {
	const window = 12 * time.Second
	e.hook.set(func(int) fault { return fault{Status: http.StatusInternalServerError} })
	order := e.w.wasimShop(e.hp.URL, "919600000001", 60*time.Second)
	waitFor(t, "the purchase's replies to be sent", 60*time.Second, func() (bool, string) {
		n := scalar[int64](e.st, `SELECT count(*) FROM outbox WHERE kind = 'whatsapp' AND status <> 'sent'`)
		return n == 0, fmt.Sprintf("%d WhatsApp items not sent", n)
	})

	e.sp.set(func(n int) fault {
		if n%2 == 0 {
			return fault{Status: http.StatusInternalServerError, Code: 131000}
		}
		return fault{Status: http.StatusTooManyRequests, Code: 130429, RetryAfter: 3}
	})
	failFrom := time.Now()
	cpuFrom := cpuTime(t, e.b.pid())
	shoppers := shopperIDs("91950000", 12)
	e.sayHi(t, shoppers, 2*time.Second)

	// Mid-window: the items are pending, their attempts growing, each
	// next attempt scheduled a backoff after the last one.
	waitFor(t, "every Hi's reply to have failed at least twice", window, func() (bool, string) {
		n := scalar[int64](e.st, `SELECT count(*) FROM outbox WHERE kind = 'whatsapp' AND status = 'pending' AND attempts >= 2`)
		return n == int64(len(shoppers)), fmt.Sprintf("%d of %d items with 2+ attempts", n, len(shoppers))
	})
	e.checkScheduled(t, shoppers)
	if left := time.Until(failFrom.Add(window)); left > 0 {
		time.Sleep(left) // the failure window is the scenario, not an assertion
	}
	cpu := cpuTime(t, e.b.pid()) - cpuFrom
	failed := time.Since(failFrom)
	e.sp.set(noFault)
	e.hook.set(noFault)

	// No hot loop: CPU stays low, and within any 5 s each item is tried
	// at most 3 times (the first backoff is 2 s).
	if share := cpu.Seconds() / failed.Seconds(); share > 0.25 {
		t.Errorf("brokerd used %s of CPU in %s of failing sends (%.0f%% of a core): a retry loop is spinning",
			cpu, failed.Round(time.Millisecond), 100*share)
	}
	var during []attempt
	for _, a := range e.sp.all() {
		if a.Start.After(failFrom) && a.Start.Before(failFrom.Add(failed)) {
			during = append(during, a)
		}
	}
	if n, bound := maxInWindow(during, 5*time.Second), 3*len(shoppers); n > bound {
		t.Errorf("%d Send API attempts within 5 s for %d messages, want at most %d", n, len(shoppers), bound)
	}
	t.Logf("failure window %s: %d Send API attempts (max %d in 5 s), brokerd CPU %s",
		failed.Round(time.Millisecond), len(during), maxInWindow(during, 5*time.Second), cpu)

	e.st.waitDrained("every message and webhook to be delivered after the recovery", 90*time.Second)
	for who, list := range attemptsTo(e.sp.all()) {
		if slices.Contains(shoppers, who) {
			checkBackoff(t, "Send API to "+who, list)
			if len(list) < 3 || list[len(list)-1].Status != http.StatusOK {
				t.Errorf("Send API to %s: %d attempts, last %d; want failures then a success", who, len(list), list[len(list)-1].Status)
			}
		}
	}
	var hookAttempts []attempt
	for _, a := range e.hook.all() {
		if a.OrderID == order && a.Event == "order.placed" {
			hookAttempts = append(hookAttempts, a)
		}
	}
	checkBackoff(t, "order.placed to the retailer", hookAttempts)
	if len(hookAttempts) < 3 {
		t.Errorf("order.placed: %d attempts over a %s outage of the retailer, want several", len(hookAttempts), window)
	}
	for _, o := range e.st.outbox() {
		if o.Kind == "partner" && o.Attempts != len(hookAttempts) {
			t.Errorf("partner outbox item: %d attempts recorded, the endpoint saw %d", o.Attempts, len(hookAttempts))
		}
	}
	sent, _ := checkOutboxOnce(t, e.w, e.st, time.Time{})
	his := checkHisOnce(t, e.w, e.st, e.hp, "91950000", nil)
	placed := checkOrdersOnce(t, e.st, e.hook)
	t.Logf("%d notices for %d Hi, %d messages sent once, order.placed delivered after %d attempts (%d placed)",
		his.Notices, his.Stored, sent, len(hookAttempts), placed)
	e.b.terminate(t)
}

// checkScheduled checks the pending replies to shoppers: each has a last
// error, and its next_attempt_at is its latest failure plus the backoff
// for its attempt count (and the failure's Retry-After), so the schedule
// in the database is the one the outbox promises.
func (e *depEnv) checkScheduled(t *testing.T, shoppers []string) {
	t.Helper()
	// Items retried together are claimed together: take a snapshot in which
	// they are not all being attempted at this very moment.
	var rows []outboxRow
	for range 20 {
		rows = e.st.outbox()
		scheduled := 0
		for _, o := range rows {
			if o.Kind == "whatsapp" && o.Status == "pending" && time.Until(o.NextAttempt) <= 30*time.Second {
				scheduled++
			}
		}
		if scheduled > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	byTo := attemptsTo(e.sp.all()) // after the rows: it holds every attempt they count
	checked := 0
	for _, o := range rows {
		if o.Kind != "whatsapp" || o.Status != "pending" {
			continue
		}
		if o.LastError == "" {
			t.Errorf("outbox item %s: pending after %d attempts without a last_error", o.Ref, o.Attempts)
		}
		if time.Until(o.NextAttempt) > 30*time.Second {
			continue // leased right now: being attempted
		}
		// Outbox rows name the shopper only by pseudonym: the item is the
		// one whose n-th failure, plus the backoff, is its next attempt.
		var best time.Duration = -1
		for _, who := range shoppers {
			list := byTo[who]
			if len(list) < o.Attempts || o.Attempts < 1 {
				continue
			}
			a := list[o.Attempts-1]
			want := a.End.Add(commerce.Backoff(o.Attempts, time.Duration(a.RetryAfter)*time.Second))
			if d := o.NextAttempt.Sub(want).Abs(); best < 0 || d < best {
				best = d
			}
		}
		if best < 0 || best > time.Second {
			t.Errorf("outbox item %s: next_attempt_at %s after %d failed attempts matches no failure plus its backoff (closest off by %s)",
				o.Ref, o.NextAttempt.Format("15:04:05.000"), o.Attempts, best)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no pending reply to check the schedule of")
	}
}

// slowDependencies: every send and every partner delivery takes 2 s.
// Nothing is retried (slow is not failed: the lease outlasts the send),
// webhooks are acknowledged without waiting for sends, and everything
// arrives once.
func slowDependencies(t *testing.T, e *depEnv) {
	const delay = 2 * time.Second
	e.sp.set(func(int) fault { return fault{Delay: delay} })
	e.hook.set(func(int) fault { return fault{Delay: delay} })
	shoppers := shopperIDs("91940000", 8)
	start := time.Now()
	e.sayHi(t, shoppers, delay)
	order := e.w.wasimShop(e.hp.URL, "919600000002", 90*time.Second)
	t.Logf("purchase %s completed in %s with a %s Send API", order, time.Since(start).Round(time.Millisecond), delay)
	e.st.waitDrained("every message and webhook to be delivered", 90*time.Second)
	for _, o := range e.st.outbox() {
		if o.Attempts != 1 {
			t.Errorf("outbox %s item %s: %d attempts, want 1 (a slow answer is not a failure)", o.Kind, o.Ref, o.Attempts)
		}
	}
	for _, a := range e.sp.all() {
		if a.Status != http.StatusOK {
			t.Errorf("a slow send ended with %d, want 200", a.Status)
		}
	}
	sent, _ := checkOutboxOnce(t, e.w, e.st, time.Time{})
	his := checkHisOnce(t, e.w, e.st, e.hp, "91940000", nil)
	placed := checkOrdersOnce(t, e.st, e.hook)
	if placed != 1 {
		t.Errorf("%d orders placed, want 1", placed)
	}
	t.Logf("%d notices for %d Hi, %d messages sent once, each at the first attempt", his.Notices, his.Stored, sent)
	e.b.terminate(t)
}
