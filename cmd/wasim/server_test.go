package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

const testToken = "test-access-token"

func newTestSim(t *testing.T) (*Store, *httptest.Server) {
	t.Helper()
	store := NewStore()
	srv := httptest.NewServer((&SendAPI{Store: store, AccessToken: testToken}).Handler())
	t.Cleanup(srv.Close)
	return store, srv
}

func post(t *testing.T, url, token, contentType, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not a JSON object: %s", raw)
	}
	return resp.StatusCode, out, resp.Header
}

func graphCode(t *testing.T, body map[string]any) int {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no Graph error in %v", body)
	}
	if e["type"] != "OAuthException" || e["fbtrace_id"] == "" {
		t.Errorf("Graph error shape: %v", e)
	}
	return int(e["code"].(float64))
}

func getRecords(t *testing.T, url string) []Record {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	var recs []Record
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

const textBody = `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+919811112222","type":"text","text":{"body":"Hello"}}`

func TestSendAPIAuth(t *testing.T) {
	store, srv := newTestSim(t)
	for name, token := range map[string]string{"missing": "", "wrong": "nope", "prefix": testToken + "x"} {
		status, body, _ := post(t, srv.URL+"/v25.0/100000000000001/messages", token, "application/json", textBody)
		if status != http.StatusUnauthorized || graphCode(t, body) != 190 {
			t.Errorf("%s token: %d %v", name, status, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/100000000000001/messages", strings.NewReader(textBody))
	req.Header.Set("Authorization", "Basic "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Basic auth: %d", resp.StatusCode)
	}
	if n := len(store.Query("", 0, 0)); n != 0 {
		t.Errorf("%d records after unauthorised sends", n)
	}
}

func TestSendAPIValidation(t *testing.T) {
	store, srv := newTestSim(t)
	buttons := func(n int) string {
		var b []string
		for i := range n {
			b = append(b, fmt.Sprintf(`{"type":"reply","reply":{"id":"b%d","title":"B%d"}}`, i, i))
		}
		return `{"messaging_product":"whatsapp","to":"+919811112222","type":"interactive","interactive":{"type":"button","body":{"text":"x"},"action":{"buttons":[` + strings.Join(b, ",") + `]}}}`
	}
	tests := map[string]struct {
		body, contentType string
		status            int
	}{
		"malformed":          {`{"messaging_product":`, "application/json", 400},
		"not whatsapp":       {strings.Replace(textBody, `"whatsapp"`, `"sms"`, 1), "application/json", 400},
		"no plus":            {strings.Replace(textBody, `+9198`, `9198`, 1), "application/json", 400},
		"no recipient":       {`{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, "application/json", 400},
		"unknown type":       {`{"messaging_product":"whatsapp","to":"+919811112222","type":"sticker"}`, "application/json", 400},
		"unknown field":      {strings.Replace(textBody, `"type"`, `"colour":"red","type"`, 1), "application/json", 400},
		"4 buttons":          {buttons(4), "application/json", 400},
		"empty text":         {strings.Replace(textBody, `Hello`, ``, 1), "application/json", 400},
		"form content type":  {textBody, "application/x-www-form-urlencoded", 400},
		"two JSON documents": {textBody + textBody, "application/json", 400},
		"3 buttons ok":       {buttons(3), "application/json; charset=utf-8", 200},
		"text ok":            {textBody, "application/json", 200},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			status, body, _ := post(t, srv.URL+"/v25.0/100000000000001/messages", testToken, tt.contentType, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if status == 400 && graphCode(t, body) != 100 {
				t.Errorf("code %v", body)
			}
		})
	}
	if n := len(store.Query("", 0, 0)); n != 2 {
		t.Errorf("%d records, want the 2 valid sends", n)
	}
	status, body, _ := post(t, srv.URL+"/v25.0/not-a-number/messages", testToken, "application/json", textBody)
	if status != 400 || graphCode(t, body) != 100 {
		t.Errorf("bad pnid: %d %v", status, body)
	}
	status, body, _ = post(t, srv.URL+"/latest/100000000000001/messages", testToken, "application/json", textBody)
	if status != 400 || graphCode(t, body) != 100 {
		t.Errorf("bad version: %d %v", status, body)
	}
}

func TestSendAPIRecording(t *testing.T) {
	store, srv := newTestSim(t)
	c := whatsapp.NewClient(srv.URL+"/v25.0", testToken)
	ctx := context.Background()
	m1, _ := whatsapp.NewText("919811112222", "one")
	r1, err := c.Send(ctx, "100000000000001", m1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r1.MessageID, "wamid.") || r1.WaID != "919811112222" {
		t.Errorf("result %+v", r1)
	}
	// The path without a version works too.
	c2 := whatsapp.NewClient(srv.URL, testToken)
	m2, _ := whatsapp.NewReplyButtons("919811112222", whatsapp.ButtonMessage{Body: "ok?", Buttons: []whatsapp.Button{{ID: "consent:accept", Title: "Yes"}}})
	r2, err := c2.Send(ctx, "100000000000001", m2)
	if err != nil {
		t.Fatal(err)
	}
	m3, _ := whatsapp.NewText("919822223333", "other shopper")
	if _, err := c.Send(ctx, "100000000000001", m3); err != nil {
		t.Fatal(err)
	}
	m4, _ := whatsapp.NewText("IN.1410823456789012", "bsuid shopper")
	r4, err := c.Send(ctx, "100000000000001", m4)
	if err != nil || r4.UserID != "IN.1410823456789012" || r4.WaID != "" {
		t.Fatalf("bsuid send: %+v %v", r4, err)
	}
	if err := c.MarkRead(ctx, "100000000000001", "wamid.IN"); err != nil {
		t.Fatal(err)
	}

	recs := getRecords(t, srv.URL+"/_sim/messages?to=919811112222")
	if len(recs) != 2 || recs[0].MessageID != r1.MessageID || recs[1].MessageID != r2.MessageID {
		t.Fatalf("records for shopper: %+v", recs)
	}
	if recs[0].Seq != 1 || recs[1].Seq != 2 || recs[1].Kind() != "interactive/button" || recs[0].PhoneNumberID != "100000000000001" {
		t.Errorf("records: %+v", recs)
	}
	want, _ := m2.Marshal()
	if !bytes.Equal(recs[1].Body, want) {
		t.Errorf("recorded body %s, want %s", recs[1].Body, want)
	}
	if got := getRecords(t, srv.URL+"/_sim/messages?to=%2B919811112222&after=1"); len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("after=1: %+v", got)
	}
	if got := getRecords(t, srv.URL+"/_sim/messages?to=IN.1410823456789012"); len(got) != 1 || got[0].Recipient != "IN.1410823456789012" {
		t.Errorf("bsuid records: %+v", got)
	}
	all := getRecords(t, srv.URL+"/_sim/messages")
	if len(all) != 5 || all[4].Type != TypeMarkRead || all[4].MessageID != "wamid.IN" {
		t.Errorf("all records: %+v", all)
	}
	if got := getRecords(t, srv.URL+"/_sim/messages?limit=2&after=1"); len(got) != 2 || got[0].Seq != 2 {
		t.Errorf("limit: %+v", got)
	}
	resp, _ := http.Get(srv.URL + "/_sim/messages?after=-1")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after=-1: %d", resp.StatusCode)
	}
	if store.LastSeq() != 5 {
		t.Errorf("last seq %d", store.LastSeq())
	}
}

func TestSendAPILongPoll(t *testing.T) {
	_, srv := newTestSim(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		post(t, srv.URL+"/100000000000001/messages", testToken, "application/json", textBody)
	}()
	start := time.Now()
	recs := getRecords(t, srv.URL+"/_sim/messages?to=919811112222&wait=5s")
	if len(recs) != 1 {
		t.Fatalf("long poll returned %d records", len(recs))
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("long poll took %s", d)
	}
	start = time.Now()
	if recs := getRecords(t, srv.URL+"/_sim/messages?to=919811112222&after=1&wait=150ms"); len(recs) != 0 {
		t.Errorf("unexpected records %+v", recs)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("empty long poll returned after %s", d)
	}
}

func TestSendAPIFailureInjection(t *testing.T) {
	store, srv := newTestSim(t)
	status, body, _ := post(t, srv.URL+"/_sim/fail", "", "application/json", `{"count":2,"code":130429,"retry_after":3}`)
	if status != 200 || body["pending"].(float64) != 2 {
		t.Fatalf("inject: %d %v", status, body)
	}
	post(t, srv.URL+"/_sim/fail", "", "application/json", `{"count":1,"code":131047}`)
	c := whatsapp.NewClient(srv.URL+"/v25.0", testToken)
	m, _ := whatsapp.NewText("919811112222", "hi")
	for i := range 2 {
		_, err := c.Send(context.Background(), "100000000000001", m)
		var se *whatsapp.SendError
		if !errors.As(err, &se) || se.Code != 130429 || se.HTTPStatus != 429 || !se.Retryable || se.RetryAfter != 3*time.Second {
			t.Fatalf("send %d: %v (%+v)", i, err, se)
		}
	}
	_, err := c.Send(context.Background(), "100000000000001", m)
	var se *whatsapp.SendError
	if !errors.As(err, &se) || se.Code != 131047 || se.HTTPStatus != 400 || se.Retryable {
		t.Fatalf("third send: %v", err)
	}
	if _, err := c.Send(context.Background(), "100000000000001", m); err != nil {
		t.Fatalf("send after the injected failures: %v", err)
	}
	if n := len(store.Query("", 0, 0)); n != 1 {
		t.Errorf("%d records, want only the successful send", n)
	}
	// A 500 without a code is retryable; DELETE clears pending failures.
	post(t, srv.URL+"/_sim/fail", "", "application/json", `{"count":5,"http_status":500}`)
	if _, err := c.Send(context.Background(), "100000000000001", m); !errors.As(err, &se) || !se.Retryable || se.HTTPStatus != 500 {
		t.Fatalf("500: %v", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/_sim/fail", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := c.Send(context.Background(), "100000000000001", m); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
	status, _, _ = post(t, srv.URL+"/_sim/fail", "", "application/json", `{"count":1,"http_status":200}`)
	if status != 400 {
		t.Errorf("http_status 200 accepted: %d", status)
	}
}

func TestSendAPIPayments(t *testing.T) {
	store, srv := newTestSim(t)
	c := whatsapp.NewClient(srv.URL+"/v25.0", testToken)
	ctx := context.Background()
	od, err := whatsapp.NewOrderDetails("919811112222", whatsapp.OrderDetails{
		Body: "Pay", ReferenceID: "pay_test_1", ConfigurationName: "cfg-1",
		Items: []whatsapp.PaymentItem{{RetailerID: "SKU-A", Name: "A", Amount: whatsapp.Paise(28950), Quantity: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, "100000000000001", od); err != nil {
		t.Fatal(err)
	}
	r, err := c.PaymentLookup(ctx, "100000000000001", "cfg-1", "pay_test_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Payments) != 1 || r.Payments[0].Status != whatsapp.PaymentPending || r.Payments[0].Amount != whatsapp.Paise(57900) || len(r.Payments[0].Transactions) != 0 {
		t.Fatalf("before paying: %+v", r)
	}
	if _, err := store.CapturePayment(ctx, Capture{ConfigurationName: "other", ReferenceID: "pay_test_1"}); !errors.Is(err, ErrUnknownPayment) {
		t.Errorf("capture with the wrong configuration: %v", err)
	}
	status, body, _ := post(t, srv.URL+"/_sim/payments", "", "application/json", `{"configuration_name":"cfg-1","reference_id":"pay_test_1"}`)
	if status != 200 || body["status"] != "captured" {
		t.Fatalf("capture: %d %v", status, body)
	}
	r, err = c.PaymentLookup(ctx, "100000000000001", "cfg-1", "pay_test_1")
	if err != nil || !r.Payments[0].Captured() || r.Payments[0].Transactions[0].Method.Type != "upi" {
		t.Fatalf("after paying: %+v %v", r, err)
	}
	// Resending the same order_details does not reset a captured payment.
	if _, err := c.Send(ctx, "100000000000001", od); err != nil {
		t.Fatal(err)
	}
	if r, _ = c.PaymentLookup(ctx, "100000000000001", "cfg-1", "pay_test_1"); !r.Payments[0].Captured() {
		t.Error("payment reset by a resend")
	}
	var se *whatsapp.SendError
	if _, err := c.PaymentLookup(ctx, "100000000000001", "cfg-1", "pay_unknown"); !errors.As(err, &se) || se.HTTPStatus != 404 || se.Retryable {
		t.Errorf("unknown reference: %v", err)
	}
	if _, err := c.PaymentLookup(ctx, "100000000000001", "cfg-2", "pay_test_1"); !errors.As(err, &se) || se.HTTPStatus != 404 {
		t.Errorf("wrong configuration: %v", err)
	}
	bad := whatsapp.NewClient(srv.URL, "wrong")
	if _, err := bad.PaymentLookup(ctx, "100000000000001", "cfg-1", "pay_test_1"); !errors.As(err, &se) || se.Code != 190 {
		t.Errorf("lookup with a bad token: %v", err)
	}
}

func TestStoreTrim(t *testing.T) {
	s := NewStore()
	s.max = 8
	for range 20 {
		s.add(Record{To: "911111111111", Type: "text"})
	}
	recs := s.Query("911111111111", 0, 0)
	if len(recs) > 8 || recs[len(recs)-1].Seq != 20 {
		t.Fatalf("after trimming: %d records, last %d", len(recs), recs[len(recs)-1].Seq)
	}
	if got := s.Query("", 15, 0); len(got) != 5 {
		t.Errorf("after=15: %d records", len(got))
	}
}
