package commerce

import (
	"slices"
	"testing"
)

func TestCheckCapture(t *testing.T) {
	o := &Order{ID: "ord_1", ReferenceID: "ord_1-1", Total: 77100}
	good := Payment{ReferenceID: "ord_1-1", Status: PaymentCaptured, Currency: CurrencyINR, Amount: 77100,
		TxnID: "order_9", TxnStatus: "success"}
	for _, tt := range []struct {
		name string
		mod  func(p *Payment)
		want string
	}{
		{"good", func(*Payment) {}, ""},
		{"USD", func(p *Payment) { p.Currency = "USD" }, PaymentRefusedCurrency},
		{"lower-case inr", func(p *Payment) { p.Currency = "inr" }, PaymentRefusedCurrency},
		{"no currency", func(p *Payment) { p.Currency = "" }, PaymentRefusedCurrency},
		{"no transaction", func(p *Payment) { p.TxnID, p.TxnStatus = "", "" }, PaymentRefusedNoTxn},
		{"failed transaction", func(p *Payment) { p.TxnStatus = "failed" }, PaymentRefusedTxnStatus},
		{"pending transaction", func(p *Payment) { p.TxnStatus = "pending" }, PaymentRefusedTxnStatus},
		{"transaction without a status", func(p *Payment) { p.TxnStatus = "" }, PaymentRefusedTxnStatus},
		{"short", func(p *Payment) { p.Amount-- }, PaymentRefusedAmount},
		{"over", func(p *Payment) { p.Amount++ }, PaymentRefusedAmount},
		{"not in offset 100", func(p *Payment) { p.Amount = -1 }, PaymentRefusedAmount},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.mod(&p)
			got := CheckCapture(o, p)
			if got != tt.want {
				t.Errorf("CheckCapture = %q, want %q", got, tt.want)
			}
			if got != "" && !slices.Contains(PaymentRefusalReasons, got) {
				t.Errorf("reason %q is not in PaymentRefusalReasons", got)
			}
		})
	}
}
