package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
	shopapi "github.com/sieve-broker/sieve/commerce/httpapi"
)

func TestPartnerAuthentication(t *testing.T) {
	s := newServer(t, nil) // no port func set: reaching one is a 500
	cases := []struct {
		name, tok, method, target string
		status                    int
		code                      string
	}{
		{"no token", "", "GET", "/v1/orders", 401, broker.EUnauthorized},
		{"unknown token", "tok-nobody", "GET", "/v1/orders", 401, broker.EUnauthorized},
		{"store reading deliveries", "tok-store", "GET", "/v1/orders/ord_1/delivery", 403, broker.EForbidden},
		{"courier listing orders", "tok-courier", "GET", "/v1/orders", 403, broker.EForbidden},
		{"courier changing a status", "tok-courier", "POST", "/v1/orders/ord_1/status", 403, broker.EForbidden},
		{"courier taking offers", "tok-courier", "GET", "/v1/offers", 403, broker.EForbidden},
		{"compliance client asking for data", "tok-dpo", "POST", "/v1/data-requests", 403, broker.EForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := s.as(t, tc.tok, tc.method, tc.target, "")
			if a.Status != tc.status || a.ErrorCode(t) != tc.code {
				t.Fatalf("%d %s", a.Status, a.Body)
			}
		})
	}
}

func TestListOrders(t *testing.T) {
	t.Run("the filter reaches the port, the answer keeps its shape", func(t *testing.T) {
		s := newServer(t, nil)
		var got commerce.OrderFilter
		var who broker.Partner
		s.shop.PartnerOrdersFn = func(p broker.Partner, f commerce.OrderFilter) ([]commerce.RetailerView, string, string, error) {
			got, who = f, p
			return nil, "", "dec_list", nil
		}
		a := s.as(t, "tok-store", "GET", "/v1/orders?status=packed&since=2026-12-01T10:00:00Z&limit=7&cursor=c1", "")
		if a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_list" ||
			!strings.Contains(a.Body, `"orders":[]`) || !strings.Contains(a.Body, `"next_cursor":null`) {
			t.Fatalf("%d %v %s", a.Status, a.Header, a.Body)
		}
		if got.Status != "packed" || got.Limit != 7 || got.Cursor != "c1" || !got.Since.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("filter %+v", got)
		}
		// The partner reaches the port with the scopes its kind allows.
		if who.ID != store.ID || len(who.Scopes) != len(store.Scopes) {
			t.Fatalf("partner %+v", who)
		}
		s.shop.PartnerOrdersFn = func(broker.Partner, commerce.OrderFilter) ([]commerce.RetailerView, string, string, error) {
			return []commerce.RetailerView{{OrderID: "ord_1"}}, "c2", "dec_2", nil
		}
		m := s.as(t, "tok-store", "GET", "/v1/orders", "").JSON(t)
		if m["next_cursor"] != "c2" || len(m["orders"].([]any)) != 1 {
			t.Fatalf("page %v", m)
		}
	})
	for _, q := range []string{"status=eaten", "since=yesterday", "limit=0", "limit=101", "limit=x",
		"cursor=" + strings.Repeat("c", 201)} {
		t.Run("refuses "+q[:min(len(q), 16)], func(t *testing.T) {
			s := newServer(t, nil)
			if a := s.as(t, "tok-store", "GET", "/v1/orders?"+q, ""); a.Status != 400 || a.ErrorCode(t) != broker.EInvalid {
				t.Fatalf("%d %s", a.Status, a.Body)
			}
		})
	}
}

func TestOrderViews(t *testing.T) {
	s := newServer(t, nil)
	var purposes []broker.Purpose
	s.shop.PartnerOrderFn = func(_ broker.Partner, id string, purpose broker.Purpose) (commerce.RetailerView, broker.Decision, error) {
		purposes = append(purposes, purpose)
		switch id {
		case "ord_denied":
			return commerce.RetailerView{}, broker.Decision{ID: "dec_d", Outcome: "denied", Reason: "consent_withdrawn"}, nil
		case "ord_other":
			// A refusal the shop audited names its entry, even as a 404.
			return commerce.RetailerView{}, broker.Decision{}, &broker.Error{Code: broker.ENotFound,
				Message: "order not found", Err: &commerce.NotFound{DecisionID: "dec_nf"}}
		}
		return commerce.RetailerView{OrderID: id, Status: "packed"}, broker.Decision{ID: "dec_ok", Outcome: "released"}, nil
	}
	if a := s.as(t, "tok-store", "GET", "/v1/orders/ord_1", ""); a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_ok" ||
		a.JSON(t)["order_id"] != "ord_1" {
		t.Fatalf("view %d %v %s", a.Status, a.Header, a.Body)
	}
	if a := s.as(t, "tok-courier", "GET", "/v1/orders/ord_1/delivery", ""); a.Status != 200 {
		t.Fatalf("delivery %d %s", a.Status, a.Body)
	}
	if len(purposes) != 2 || purposes[0] != broker.PurposeOrderFulfilment || purposes[1] != broker.PurposeDelivery {
		t.Fatalf("purposes %v", purposes)
	}
	if a := s.as(t, "tok-store", "GET", "/v1/orders/ord_denied", ""); a.Status != 403 || a.ErrorCode(t) != broker.EDenied ||
		a.Header.Get("X-Decision-Id") != "dec_d" || !strings.Contains(a.Body, "consent_withdrawn") {
		t.Fatalf("denied %d %v %s", a.Status, a.Header, a.Body)
	}
	if a := s.as(t, "tok-store", "GET", "/v1/orders/ord_other", ""); a.Status != 404 || a.Header.Get("X-Decision-Id") != "dec_nf" {
		t.Fatalf("not found %d %v %s", a.Status, a.Header, a.Body)
	}
}

func TestOrderChanges(t *testing.T) {
	t.Run("status: extra members go with it, status is required", func(t *testing.T) {
		s := newServer(t, nil)
		var got commerce.StatusUpdate
		s.shop.UpdateStatusFn = func(_ broker.Partner, id string, u commerce.StatusUpdate) (commerce.StatusResult, error) {
			got = u
			return commerce.StatusResult{OrderID: id, Status: u.Status, Decision: "dec_st"}, nil
		}
		a := s.as(t, "tok-store", "POST", "/v1/orders/ord_1/status", `{"status":"packed","eta_minutes":20}`)
		if a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_st" || got.Status != "packed" || got.Extra["eta_minutes"] != float64(20) {
			t.Fatalf("%d %s, update %+v", a.Status, a.Body, got)
		}
		if _, ok := got.Extra["status"]; ok {
			t.Fatal("status left in Extra")
		}
		for _, body := range []string{`{}`, `{"status":7}`, `[1]`, `{"status":"packed"`, `{"status":"packed"} {}`} {
			if a := s.as(t, "tok-store", "POST", "/v1/orders/ord_1/status", body); a.Status != 400 {
				t.Errorf("%s: %d %s", body, a.Status, a.Body)
			}
		}
		// A conflict from the shop keeps its code.
		s.shop.UpdateStatusFn = func(broker.Partner, string, commerce.StatusUpdate) (commerce.StatusResult, error) {
			return commerce.StatusResult{}, broker.Errorf(broker.EConflict, "order is delivered")
		}
		if a := s.as(t, "tok-store", "POST", "/v1/orders/ord_1/status", `{"status":"packed"}`); a.Status != 409 {
			t.Fatalf("conflict %d %s", a.Status, a.Body)
		}
	})
	t.Run("dispatch names a courier, strictly", func(t *testing.T) {
		s := newServer(t, nil)
		s.shop.DispatchFn = func(_ broker.Partner, id, logistics string) (commerce.DispatchResult, error) {
			return commerce.DispatchResult{OrderID: id, Logistics: logistics, Decision: "dec_dp"}, nil
		}
		if a := s.as(t, "tok-store", "POST", "/v1/orders/ord_1/dispatch", `{"logistics":"courier-1"}`); a.Status != 200 ||
			a.JSON(t)["logistics"] != "courier-1" || a.Header.Get("X-Decision-Id") != "dec_dp" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		if a := s.as(t, "tok-store", "POST", "/v1/orders/ord_1/dispatch", `{"logistics":"courier-1","phone":"9"}`); a.Status != 400 {
			t.Fatalf("unknown member: %d", a.Status)
		}
	})
	t.Run("relay is queued", func(t *testing.T) {
		s := newServer(t, nil)
		var text string
		s.shop.RelayFn = func(_ broker.Partner, _, tx string) (string, error) { text = tx; return "dec_rl", nil }
		a := s.as(t, "tok-courier", "POST", "/v1/orders/ord_1/messages", `{"text":"at the gate"}`)
		if a.Status != 202 || a.JSON(t)["status"] != "queued" || a.Header.Get("X-Decision-Id") != "dec_rl" || text != "at the gate" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		if a := s.as(t, "tok-courier", "POST", "/v1/orders/ord_1/messages", `{"text":"x"}`+" "); a.Status != 202 {
			t.Fatalf("trailing space: %d %s", a.Status, a.Body)
		}
		if a := s.as(t, "tok-courier", "POST", "/v1/orders/ord_1/messages", "{\"text\":\"\xff\"}"); a.Status != 400 {
			t.Fatalf("invalid UTF-8: %d %s", a.Status, a.Body)
		}
	})
}

func TestDataRequest(t *testing.T) {
	s := newServer(t, nil)
	var got []string
	s.shop.DataRequestFn = func(_ broker.Partner, ref string, purpose broker.Purpose, fields []string) (broker.Decision, error) {
		got = append([]string{ref, string(purpose)}, fields...)
		return broker.Decision{ID: "dec_dr", Purpose: purpose, Withheld: nil}, nil
	}
	a := s.as(t, "tok-store", "POST", "/v1/data-requests", `{"subject":"ref_1","purpose":"order_fulfilment","fields":["name"]}`)
	if a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_dr" || strings.Join(got, ",") != "ref_1,order_fulfilment,name" {
		t.Fatalf("%d %s (%v)", a.Status, a.Body, got)
	}
	// Nothing released is an object, nothing withheld a list: never null.
	if !strings.Contains(a.Body, `"released":{}`) || !strings.Contains(a.Body, `"denied":[]`) || strings.Contains(a.Body, "retain_until") {
		t.Fatalf("shape %s", a.Body)
	}
	for _, body := range []string{`{"purpose":"order_fulfilment"}`, `{"subject":"ref_1"}`, `{"subject":"ref_1","purpose":"x","why":1}`} {
		if a := s.as(t, "tok-store", "POST", "/v1/data-requests", body); a.Status != 400 {
			t.Errorf("%s: %d", body, a.Status)
		}
	}
}

func TestOffers(t *testing.T) {
	s := newServer(t, nil)
	s.shop.OpenOffersFn = func(broker.Partner) ([]map[string]any, error) {
		return []map[string]any{{"offer_id": "off_1"}}, nil
	}
	s.shop.AcceptOfferFn = func(_ broker.Partner, id string) (commerce.OfferResult, error) {
		return commerce.OfferResult{OfferID: id, Status: "accepted", Decision: "dec_acc"}, nil
	}
	s.shop.DeclineOfferFn = func(_ broker.Partner, id string) (commerce.OfferResult, error) {
		return commerce.OfferResult{}, broker.Errorf(broker.EConflict, "offer expired")
	}
	if a := s.as(t, "tok-store", "GET", "/v1/offers", ""); a.Status != 200 || len(a.JSON(t)["offers"].([]any)) != 1 {
		t.Fatalf("list %d %s", a.Status, a.Body)
	}
	if a := s.as(t, "tok-store", "POST", "/v1/offers/off_1/accept", ""); a.Status != 200 || a.Header.Get("X-Decision-Id") != "dec_acc" {
		t.Fatalf("accept %d %s", a.Status, a.Body)
	}
	if a := s.as(t, "tok-store", "POST", "/v1/offers/off_1/decline", ""); a.Status != 409 {
		t.Fatalf("decline %d %s", a.Status, a.Body)
	}
}

func TestEventsAndAcks(t *testing.T) {
	s := newServer(t, nil)
	var cursor string
	var limit int
	s.notices.EventsFn = func(p broker.Partner, c string, l int) ([]json.RawMessage, string, error) {
		cursor, limit = c, l
		return nil, "", nil
	}
	// Any partner token reads its own notices.
	a := s.as(t, "tok-courier", "GET", "/v1/events?cursor=41&limit=5", "")
	if a.Status != 200 || cursor != "41" || limit != 5 || !strings.Contains(a.Body, `"events":[]`) {
		t.Fatalf("%d %s (%q %d)", a.Status, a.Body, cursor, limit)
	}
	for _, q := range []string{"limit=0", "limit=101", "cursor=" + strings.Repeat("9", 33)} {
		if a := s.as(t, "tok-courier", "GET", "/v1/events?"+q, ""); a.Status != 400 {
			t.Errorf("%s: %d", q, a.Status)
		}
	}
	var ack commerce.Ack
	s.notices.AcknowledgeFn = func(_ broker.Partner, x commerce.Ack) (commerce.AckResult, error) {
		ack = x
		return commerce.AckResult{EventID: x.EventID, Status: x.Status, DecisionID: "dec_ack"}, nil
	}
	a = s.as(t, "tok-store", "POST", "/v1/acks", `{"event_id":"evt_1","status":"done"}`)
	if a.Status != 200 || ack.EventID != "evt_1" || a.Header.Get("X-Decision-Id") != "dec_ack" {
		t.Fatalf("ack %d %s", a.Status, a.Body)
	}
	if a := s.as(t, "tok-store", "POST", "/v1/acks", `{"event_id":"evt_1","status":"done","note":"x"}`); a.Status != 400 {
		t.Fatalf("unknown member: %d", a.Status)
	}

	// Served without notices, the routes are still the contract's: 503.
	s = newServer(t, func(d *shopapi.Deps) { d.Notices = nil })
	if a := s.as(t, "tok-store", "GET", "/v1/events", ""); a.Status != 503 || a.ErrorCode(t) != broker.EUnavailable {
		t.Fatalf("without notices %d %s", a.Status, a.Body)
	}
}
