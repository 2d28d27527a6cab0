package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/sieve-broker/sieve/broker"
	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// Option is an answer the shopper can pick: a reply button or a list row.
type Option struct {
	// Kind is whatsapp.ReplyTypeButton or whatsapp.ReplyTypeList.
	Kind        string
	ID          string
	Title       string
	Description string
	// ContextID is the wamid of the message that offered the option.
	ContextID string
}

// Rendered is a broker message made readable for a terminal.
type Rendered struct {
	Kind    string
	Text    string
	Options []Option
	// SKUs are the products the message offers (product_list, SKU lines).
	SKUs []string
	// Prices are prices the message states ("SKU-X — Name — ₹289.50").
	Prices map[string]whatsapp.Amount
	// Payment is set for order_details messages.
	Payment *PaymentRequest
	// Document is set for document messages (an uploaded file).
	Document *whatsapp.DocumentBody
}

// PaymentRequest is what the shopper needs to pay an order_details message.
type PaymentRequest struct {
	ReferenceID       string
	ConfigurationName string
	Total             whatsapp.Amount
}

var (
	skuRe     = regexp.MustCompile(`\bSKU-[A-Za-z0-9][A-Za-z0-9_-]*`)
	priceRe   = regexp.MustCompile(`(?:₹|\bRs\.?|\bINR)\s?([0-9][0-9,]*(?:\.[0-9]{1,2})?)`)
	orderIDRe = regexp.MustCompile(`\bord_[A-Za-z0-9_-]+`)
)

// skusAndPrices finds SKU tokens in text, and the first price on each SKU's line.
func skusAndPrices(text string) ([]string, map[string]whatsapp.Amount) {
	var skus []string
	prices := map[string]whatsapp.Amount{}
	for _, line := range strings.Split(text, "\n") {
		found := skuRe.FindAllString(line, -1)
		for i := range found {
			found[i] = strings.TrimRight(found[i], "-_")
		}
		skus = appendUnique(skus, found...)
		if len(found) == 1 {
			if m := priceRe.FindStringSubmatch(line); m != nil {
				if a, err := whatsapp.ParseAmount(strings.ReplaceAll(m[1], ",", "")); err == nil {
					prices[found[0]] = a
				}
			}
		}
	}
	return skus, prices
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, have := range list {
			if have == it {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}

func inr(a whatsapp.Amount) string { return "₹" + a.String() }

// Render turns a recorded broker message into terminal text with numbered
// options.
func Render(rec Record) Rendered {
	r := Rendered{Kind: rec.Kind(), Prices: map[string]whatsapp.Amount{}}
	if rec.Type == TypeMarkRead {
		r.Text = "✓✓ (read)"
		return r
	}
	m, err := rec.Message()
	if err != nil {
		r.Text = "(undecodable message)"
		return r
	}
	var b strings.Builder
	line := func(s string) {
		if s != "" {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	switch {
	case m.Text != nil:
		line(m.Text.Body)
		r.SKUs, r.Prices = skusAndPrices(m.Text.Body)
	case m.Document != nil:
		line(fmt.Sprintf("[document %s, media %s]", m.Document.Filename, m.Document.ID))
		line(m.Document.Caption)
		r.Document = m.Document
	case m.Template != nil:
		line(fmt.Sprintf("[template %s (%s)]", m.Template.Name, m.Template.Language.Code))
		for _, c := range m.Template.Components {
			for _, p := range c.Parameters {
				line("  " + p.Text)
			}
		}
	case m.Interactive != nil:
		in := m.Interactive
		if in.Header != nil {
			line("*" + in.Header.Text + "*")
		}
		if in.Body != nil {
			line(in.Body.Text)
			skus, prices := skusAndPrices(in.Body.Text)
			r.SKUs = appendUnique(r.SKUs, skus...)
			for k, v := range prices {
				r.Prices[k] = v
			}
		}
		a := in.Action
		if a == nil {
			a = &whatsapp.Action{}
		}
		switch in.Type {
		case whatsapp.InteractiveButton:
			for _, btn := range a.Buttons {
				r.Options = append(r.Options, Option{Kind: whatsapp.ReplyTypeButton, ID: btn.Reply.ID, Title: btn.Reply.Title, ContextID: rec.MessageID})
			}
		case whatsapp.InteractiveList:
			line("[" + a.Button + "]")
			for _, s := range a.Sections {
				if s.Title != "" {
					line("  " + s.Title + ":")
				}
				for _, row := range s.Rows {
					r.Options = append(r.Options, Option{Kind: whatsapp.ReplyTypeList, ID: row.ID, Title: row.Title, Description: row.Description, ContextID: rec.MessageID})
				}
			}
		case whatsapp.InteractiveProductList:
			for _, s := range a.Sections {
				var ids []string
				for _, p := range s.ProductItems {
					ids = append(ids, p.ProductRetailerID)
				}
				r.SKUs = appendUnique(r.SKUs, ids...)
				line(fmt.Sprintf("  %s: %s", s.Title, strings.Join(ids, ", ")))
			}
			line("[View items] (type: order SKU QTY [SKU QTY …])")
		case whatsapp.InteractiveCatalogMessage:
			line("[View catalog] (type: order SKU QTY [SKU QTY …])")
		case whatsapp.InteractiveLocationRequest:
			line("[Send location] (type: location, or type your address)")
		case whatsapp.InteractiveAddress:
			line("[Add delivery address] (type: address [PINCODE] to fill the form, location, or type your address)")
		case whatsapp.InteractiveOrderDetails:
			renderOrderDetails(&r, a.Parameters, line)
		case whatsapp.InteractiveOrderStatus:
			if p := a.Parameters; p != nil && p.Order != nil {
				line(fmt.Sprintf("[order %s: %s] %s", p.ReferenceID, p.Order.Status, p.Order.Description))
			}
		case whatsapp.InteractiveProduct:
			r.SKUs = appendUnique(r.SKUs, a.ProductRetailerID)
			line("  product: " + a.ProductRetailerID)
		}
		if in.Footer != nil {
			line("_" + in.Footer.Text + "_")
		}
	}
	for i, o := range r.Options {
		desc := ""
		if o.Description != "" {
			desc = " — " + o.Description
		}
		line(fmt.Sprintf("  %d) %s%s  [%s]", i+1, o.Title, desc, o.ID))
	}
	r.Text = strings.TrimRight(b.String(), "\n")
	return r
}

func renderOrderDetails(r *Rendered, p *whatsapp.ActionParameters, line func(string)) {
	if p == nil || p.Order == nil || p.TotalAmount == nil {
		return
	}
	for _, it := range p.Order.Items {
		line(fmt.Sprintf("  %d × %s @ %s", it.Quantity, it.Name, inr(it.UnitAmount())))
	}
	if p.Order.Subtotal != nil {
		line("  Subtotal " + inr(*p.Order.Subtotal))
	}
	if p.Order.Tax != nil && p.Order.Tax.Value != 0 {
		line("  Tax " + inr(p.Order.Tax.Amount()))
	}
	if p.Order.Shipping != nil {
		line("  Delivery " + inr(p.Order.Shipping.Amount()))
	}
	if p.Order.Discount != nil && p.Order.Discount.Value != 0 {
		line("  Discount -" + inr(p.Order.Discount.Amount()))
	}
	line(fmt.Sprintf("  Total %s  (ref %s)", inr(*p.TotalAmount), p.ReferenceID))
	line("[Review and pay] (type: pay)")
	pr := &PaymentRequest{ReferenceID: p.ReferenceID, Total: *p.TotalAmount}
	if len(p.PaymentSettings) > 0 && p.PaymentSettings[0].PaymentGateway != nil {
		pr.ConfigurationName = p.PaymentSettings[0].PaymentGateway.ConfigurationName
	}
	r.Payment = pr
}

// CatalogItem is a catalog entry in the brokerctl import format.
type CatalogItem struct {
	SKU   string          `json:"sku"`
	Name  string          `json:"name"`
	Price whatsapp.Amount `json:"price"`
}

// LoadCatalogPrices reads a catalog file in the `brokerctl catalog import`
// formats (a JSON array of {sku, name, price{value, offset}}, or CSV with the
// header sku,name,price_paise,…) and returns the prices by SKU.
func LoadCatalogPrices(path string) (map[string]whatsapp.Amount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	prices := map[string]whatsapp.Amount{}
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "[") {
		var items []CatalogItem
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", path, err)
		}
		for _, it := range items {
			if it.Price.Offset == 0 {
				it.Price.Offset = broker.OffsetINR
			}
			prices[it.SKU] = it.Price
		}
		return prices, nil
	}
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, errors.New("catalog: empty file")
	}
	skuCol, priceCol := -1, -1
	for i, h := range rows[0] {
		switch strings.TrimSpace(h) {
		case "sku":
			skuCol = i
		case "price_paise":
			priceCol = i
		}
	}
	if skuCol < 0 || priceCol < 0 {
		return nil, errors.New("catalog: CSV header needs sku and price_paise")
	}
	for _, row := range rows[1:] {
		if len(row) <= max(skuCol, priceCol) {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(row[priceCol]), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("catalog: bad price_paise for %s", row[skuCol])
		}
		prices[strings.TrimSpace(row[skuCol])] = whatsapp.Paise(v)
	}
	return prices, nil
}
