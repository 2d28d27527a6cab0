package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
)

// TestThreeBrokersOneDatabase runs three brokerd processes on one database
// (distinct ports, one key directory, one issuer) under load spread over
// all three, with redeliveries landing on a different process than the
// first delivery, and checks that together they behave as one broker: one
// consistent audit tree holding exactly the entries they produced, no
// webhook processed twice, and every outbox message sent once.
func TestThreeBrokersOneDatabase(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	dbURL := pgtest.NewURL(t)
	w := newWorld(t, dbURL)
	hook := newPartnerHook(t)
	st := openStore(t, dbURL)
	w.brokerctl("keys", "init")

	// Started together: they race for the migration lock and the first
	// audit sequencer election.
	var bs []*brokerd
	for i := range 3 {
		bs = append(bs, w.launchBroker(fmt.Sprintf("brokerd #%d", i+1), pgtest.FreeAddr(t)))
	}
	for _, b := range bs {
		if err := b.waitReady(t, 90*time.Second); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
	}
	clientID, secret := w.seedRetailer(hook.URL)
	hook.setSecret(secret)
	hp := newHookProxy(t, bs[0].url, bs[1].url, bs[2].url)

	ingest := w.wasimLoad("--shoppers", "150", "--rate", "100", "--duration", "6s", "--batch", "2",
		"--dup-rate", "0.15", "--seed", "301", "--webhook-url", hp.URL)
	flows := w.wasimLoad("--flow", "--shoppers", "6", "--rate", "2", "--duration", "3s", "--seed", "302",
		"--no-serve", "--sim-url", w.sim, "--webhook-url", hp.URL, "--timeout", "90s")
	ingestRep, flowRep := ingest(), flows()
	t.Logf("ingest: %d requests, %d acknowledged, %d duplicates; flows: %d orders, errors %v",
		ingestRep.Requests, ingestRep.Acknowledged, ingestRep.Duplicates, flowRep.Orders, flowRep.FlowErrors)
	if flowRep.Orders != 6 {
		t.Errorf("%d of 6 purchases completed across three brokers: %v", flowRep.Orders, flowRep.FlowErrors)
	}
	st.waitDrained("the three brokers to drain the inbox, the outbox and the audit log", 120*time.Second)

	perBroker := map[string]int{}
	for _, r := range hp.records() {
		if r.Status == http.StatusOK {
			perBroker[r.Upstream]++
		}
	}
	for _, b := range bs {
		if perBroker[b.url] == 0 {
			t.Errorf("%s acknowledged no webhook: the load was not spread", b.name)
		}
	}

	// Partner reads through each broker in turn, concurrently: each makes
	// exactly one audit entry, so the log must grow by exactly their number.
	var orderIDs []string
	for _, o := range st.orders() {
		if o.Status == "placed" {
			orderIDs = append(orderIDs, o.ID)
		}
	}
	if len(orderIDs) == 0 {
		t.Fatal("no placed order to read")
	}
	tokens := make([]string, len(bs))
	for i, b := range bs {
		tokens[i] = partnerToken(t, b.url, clientID, secret)
	}
	before := scalar[int64](st, `SELECT size FROM audit_tree`)
	const reads = 30
	decisions, errs := make([]string, reads), make([]error, reads)
	var wg sync.WaitGroup
	for i := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decisions[i], errs[i] = readOrder(bs[i%3].url, tokens[i%3], orderIDs[i%len(orderIDs)])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("partner read %d through %s: %v", i, bs[i%3].name, err)
		}
	}
	st.waitDrained("the partner reads' audit entries to be integrated", 60*time.Second)
	after := scalar[int64](st, `SELECT size FROM audit_tree`)
	if after-before != reads {
		t.Errorf("the audit log grew by %d entries for %d partner reads through three brokers", after-before, reads)
	}
	counts := st.auditCounts(decisions)
	for i, id := range decisions {
		if counts[id] != 1 {
			t.Errorf("read %d (decision %s) is in the audit log %d times, want once", i, id, counts[id])
		}
	}

	size := checkAuditClean(t, w, st)
	sent, _ := checkOutboxOnce(t, w, st, time.Time{})
	his := checkHisOnce(t, w, st, hp, "9198", nil)
	placed := checkOrdersOnce(t, st, hook)
	t.Logf("acknowledged per broker %v; %d Hi acknowledged, %d stored, %d notices; %d sent once; %d orders; audit ok at %d",
		perBroker, his.Acked, his.Stored, his.Notices, sent, placed, size)
	for _, b := range bs {
		b.terminate(t)
	}
}

// partnerToken gets a client-credentials access token from the broker.
func partnerToken(t *testing.T, base, clientID, secret string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /oauth/token: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("POST /oauth/token: %d %s", resp.StatusCode, b)
	}
	return tok.AccessToken
}

// readOrder GETs the retailer's view of an order and returns the decision
// id the broker logged for it.
func readOrder(base, tok, orderID string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/orders/"+orderID, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var view struct {
		OrderID string `json:"order_id"`
		Privacy struct {
			DecisionID string `json:"decision_id"`
		} `json:"privacy"`
	}
	id := resp.Header.Get("X-Decision-Id")
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &view) != nil || view.OrderID != orderID || id == "" ||
		view.Privacy.DecisionID != id {
		return "", fmt.Errorf("HTTP %d, X-Decision-Id %q: %s", resp.StatusCode, id, b)
	}
	return id, nil
}
