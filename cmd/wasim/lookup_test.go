package main

import (
	"context"
	"testing"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// TestLookupServesTheBroker: the broker's payment lookup adapter, pointed
// at wasim, sees the payment wasim recorded from the order_details it was
// sent: pending (which places nothing) until the shopper pays, then
// captured in INR for the order's amount with a successful transaction
// (which commerce accepts); a reference wasim never saw is not found.
func TestLookupServesTheBroker(t *testing.T) {
	_, srv := newTestSim(t)
	ctx := context.Background()
	c := whatsapp.NewClient(srv.URL+"/"+whatsapp.DefaultAPIVersion, testToken)
	lookup := &whatsapp.PaymentLookup{Client: c, ConfigName: whatsapp.DevPaymentConfiguration}
	const pnid, ref = whatsapp.DevPhoneNumberID, "ord_lookup-1"
	od, err := whatsapp.NewOrderDetails("919811112222", whatsapp.OrderDetails{Body: "Pay", ReferenceID: ref,
		ConfigurationName: whatsapp.DevPaymentConfiguration,
		Items:             []whatsapp.PaymentItem{{RetailerID: "SKU-A", Name: "A", Amount: whatsapp.Paise(28950), Quantity: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, pnid, od); err != nil {
		t.Fatal(err)
	}
	order := &commerce.Order{ID: "ord_lookup", ReferenceID: ref, Total: 57900}

	p, err := lookup.LookupPayment(ctx, pnid, ref)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != commerce.PaymentPending || captureOK(order, p) {
		t.Fatalf("before paying the lookup says %+v", p)
	}
	status, body, _ := post(t, srv.URL+"/_sim/payments", "", "application/json",
		`{"configuration_name":"`+whatsapp.DevPaymentConfiguration+`","reference_id":"`+ref+`"}`)
	if status != 200 {
		t.Fatalf("capture: %d %v", status, body)
	}
	p, err = lookup.LookupPayment(ctx, pnid, ref)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != commerce.PaymentCaptured || !captureOK(order, p) {
		t.Fatalf("after paying the lookup says %+v (%s)", p, commerce.CheckCapture(order, p))
	}
	if _, err := lookup.LookupPayment(ctx, pnid, "ord_never-1"); broker.ErrorCode(err) != broker.ENotFound {
		t.Errorf("an unknown reference: %v", err)
	}
}

// captureOK reports whether commerce accepts p as the capture of o.
func captureOK(o *commerce.Order, p commerce.Payment) bool { return commerce.CheckCapture(o, p) == "" }
