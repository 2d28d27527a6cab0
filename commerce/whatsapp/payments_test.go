package whatsapp

import (
	"context"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
)

func TestPaymentPaise(t *testing.T) {
	for _, tt := range []struct {
		a    Amount
		want int64
	}{
		{Amount{Value: 115500, Offset: 100}, 115500},
		{Amount{Value: 1155, Offset: 1}, -1},       // rupees: never rescaled into a match
		{Amount{Value: 1155000, Offset: 1000}, -1}, // likewise
		{Amount{Value: 115500}, -1},                // no offset
		{Amount{Value: -5, Offset: 100}, -1},
	} {
		if got := paymentPaise(tt.a); got != tt.want {
			t.Errorf("paymentPaise(%+v) = %d, want %d", tt.a, got, tt.want)
		}
	}
}

// TestPaymentLookupAdapter: the lookup's answers, as the Cloud API gives
// them, become what commerce checks; a 404 or an answer about another
// reference is "not found" (refuse), a 5xx "unavailable" (ask again).
func TestPaymentLookupAdapter(t *testing.T) {
	const ref = "ord_abc-1"
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   commerce.Payment
		code   string // broker error code, "" for none
	}{
		{"captured", 200, `{"payments":[{"reference_id":"ord_abc-1","status":"captured","currency":"INR","amount":{"value":115500,"offset":100},
			"transactions":[{"id":"order_1","type":"razorpay","status":"failed"},{"id":"order_2","type":"razorpay","status":"success"}]}]}`,
			commerce.Payment{ReferenceID: ref, Status: "captured", Currency: "INR", Amount: 115500, TxnID: "order_2", TxnStatus: "success"}, ""},
		{"pending, no transaction", 200, `{"payments":[{"reference_id":"ord_abc-1","status":"pending","currency":"INR","amount":{"value":115500,"offset":100}}]}`,
			commerce.Payment{ReferenceID: ref, Status: "pending", Currency: "INR", Amount: 115500}, ""},
		{"another reference", 200, `{"payments":[{"reference_id":"ord_xyz-1","status":"captured","currency":"INR","amount":{"value":115500,"offset":100}}]}`,
			commerce.Payment{}, broker.ENotFound},
		{"none", 200, `{"payments":[]}`, commerce.Payment{}, broker.ENotFound},
		{"unknown", 404, `{"error":{"message":"Object does not exist","type":"OAuthException","code":100}}`, commerce.Payment{}, broker.ENotFound},
		{"down", 503, `{"error":{"message":"unavailable","type":"OAuthException","code":2}}`, commerce.Payment{}, broker.EUnavailable},
		{"garbage", 200, `{"payments":`, commerce.Payment{}, broker.EUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, &graphServer{status: tt.status, body: tt.body})
			l := &PaymentLookup{Client: c, ConfigName: "sieve-razorpay"}
			got, err := l.LookupPayment(ctx, "100000000000001", ref)
			if tt.code != "" {
				if broker.ErrorCode(err) != tt.code {
					t.Fatalf("err = %v (%s), want %s", err, broker.ErrorCode(err), tt.code)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("LookupPayment = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
