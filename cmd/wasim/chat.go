package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// Chat is an interactive shopper in the terminal: it prints what the broker
// sends and turns typed lines into WhatsApp messages.
type Chat struct {
	WaID string
	// User, when set, is who the shopper is to WhatsApp (phone, BSUID,
	// parent BSUID, username); WaID then follows its address.
	User     *User
	Name     string
	Webhooks *WebhookSender
	Sim      SimAPI
	Prices   map[string]whatsapp.Amount
	In       io.Reader
	Out      io.Writer
	// Linger is how long to keep printing the broker's answers after the
	// input ends (default 2 s), so that piped input sees the replies.
	Linger time.Duration
	// SaveDir is where documents the broker sends (the "export my data"
	// file) are saved; "" is the current directory.
	SaveDir string

	mu      sync.Mutex
	options []Option
	payment *PaymentRequest
}

const chatHelp = `Type a message and press Enter. Also:
  <n>                     pick option n of the last buttons or list
  order SKU QTY [SKU QTY] send a cart (an order message)
  location                share a demo location
  pay                     pay the last order_details (WhatsApp Pay, UPI)
  /change-number N [BSUID] WhatsApp's user_changed_number: you now write from N
  /change-user-id BSUID   WhatsApp's user_changed_user_id: your BSUID changed
  /help                   this help
  /quit                   leave (or end the input)`

func (c *Chat) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.Out, format, args...)
}

// Run chats until the input ends, /quit, or ctx is done.
func (c *Chat) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.User != nil {
		c.WaID = c.User.Address()
	}
	old, err := c.Sim.Sent(ctx, c.WaID, 0, 0)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	var after int64
	if len(old) > 0 {
		after = old[len(old)-1].Seq
	}
	who := c.WaID
	if c.User != nil {
		who = c.User.Kind() + " " + c.WaID
	}
	c.printf("Chatting as %s (%s) with the store %s. %s\n\n", c.Name, who, whatsapp.DevDisplayPhoneNumber, chatHelp)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.receive(ctx, after)
	}()
	defer wg.Wait()
	defer cancel()

	sc := bufio.NewScanner(c.In)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if line == "/quit" || line == "/exit" {
			return nil
		}
		if err := c.handleLine(ctx, line); err != nil {
			c.printf("! %v\n", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("chat: read input: %w", err)
	}
	// Input ended (e.g. a pipe): give the broker a moment to answer.
	linger := c.Linger
	if linger <= 0 {
		linger = 2 * time.Second
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// receive prints broker messages and acknowledges them with read receipts.
func (c *Chat) receive(ctx context.Context, after int64) {
	for ctx.Err() == nil {
		addr := c.addr()
		recs, err := c.Sim.Sent(ctx, addr, after, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				c.printf("! %v\n", err)
				time.Sleep(time.Second)
			}
			continue
		}
		var receipts []whatsapp.Status
		for _, rec := range recs {
			after = rec.Seq
			if rec.Type == TypeMarkRead {
				continue
			}
			r := Render(rec)
			c.mu.Lock()
			if len(r.Options) > 0 {
				c.options = r.Options
			}
			if r.Payment != nil {
				c.payment = r.Payment
			}
			if c.Prices == nil {
				c.Prices = map[string]whatsapp.Amount{}
			}
			for k, v := range r.Prices {
				c.Prices[k] = v
			}
			fmt.Fprintf(c.Out, "\nstore> %s\n", strings.ReplaceAll(r.Text, "\n", "\n       "))
			c.mu.Unlock()
			if r.Document != nil {
				c.saveDocument(ctx, r.Document)
			}
			receipts = append(receipts,
				StatusUpdate(rec.MessageID, whatsapp.StatusDelivered, addr),
				StatusUpdate(rec.MessageID, whatsapp.StatusRead, addr))
		}
		if len(receipts) > 0 {
			if _, err := c.Webhooks.Send(ctx, c.Webhooks.Notification(nil, nil, receipts)); err != nil && ctx.Err() == nil {
				c.printf("! read receipts: %v\n", err)
			}
		}
	}
}

// addr is where the broker's replies to the shopper go now.
func (c *Chat) addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.WaID
}

func (c *Chat) send(ctx context.Context, m whatsapp.Message) error {
	contact := ContactFor(c.WaID, c.Name)
	c.mu.Lock()
	if c.User != nil && m.Type != whatsapp.TypeSystem {
		c.User.Stamp(&m)
		contact = c.User.Contact(c.Name)
	}
	c.mu.Unlock()
	contacts := []whatsapp.Contact{contact}
	if m.Type == whatsapp.TypeSystem {
		contacts = nil // system messages come without a contacts array
	}
	n := c.Webhooks.Notification(contacts, []whatsapp.Message{m}, nil)
	d, err := c.Webhooks.Send(ctx, n)
	if err != nil {
		return err
	}
	c.printf("  ✓ delivered to the broker (HTTP %d, %s)\n", d.Status, d.Latency.Round(time.Millisecond))
	return nil
}

// parseOrder reads "order SKU QTY [SKU QTY …]" (a missing quantity is 1).
func parseOrder(fields []string) ([]CartItem, error) {
	var items []CartItem
	for i := 0; i < len(fields); i++ {
		it := CartItem{SKU: strings.ToUpper(fields[i]), Quantity: 1}
		if i+1 < len(fields) {
			if n, err := strconv.Atoi(fields[i+1]); err == nil {
				if n < 1 || n > 1000 {
					return nil, fmt.Errorf("quantity %d out of range", n)
				}
				it.Quantity = n
				i++
			}
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("usage: order SKU QTY [SKU QTY …]")
	}
	return items, nil
}

func (c *Chat) handleLine(ctx context.Context, line string) error {
	fields := strings.Fields(line)
	switch strings.ToLower(fields[0]) {
	case "/help":
		c.printf("%s\n", chatHelp)
		return nil
	case "/change-number", "/change-user-id":
		return c.changeIdentity(ctx, strings.ToLower(fields[0]), fields[1:])
	case "order":
		items, err := parseOrder(fields[1:])
		if err != nil {
			return err
		}
		var pis []whatsapp.ProductItem
		c.mu.Lock()
		for _, it := range items {
			price, ok := c.Prices[it.SKU]
			if !ok {
				price = whatsapp.Paise(0)
			}
			pis = append(pis, whatsapp.ProductItem{ProductRetailerID: it.SKU, Quantity: whatsapp.Quantity(it.Quantity), ItemPrice: price.JSONNumber(), Currency: whatsapp.CurrencyINR})
		}
		c.mu.Unlock()
		return c.send(ctx, OrderMessage(c.WaID, whatsapp.DevCatalogID, "", pis))
	case "location":
		return c.send(ctx, LocationMessage(c.WaID, "", DemoLocation))
	case "address":
		// Fill the India address form, in the PIN code given if any.
		pin := ""
		if len(fields) > 1 {
			pin = fields[1]
		}
		return c.send(ctx, AddressFormMessage(c.WaID, "", DemoAddress(pin)))
	case "pay":
		c.mu.Lock()
		p := c.payment
		c.mu.Unlock()
		if p == nil {
			return fmt.Errorf("nothing to pay yet: wait for the order_details message")
		}
		rec, err := c.Sim.CapturePayment(ctx, Capture{ConfigurationName: p.ConfigurationName, ReferenceID: p.ReferenceID, Method: "upi"})
		if err != nil {
			return err
		}
		c.printf("  paying %s via UPI…\n", inr(rec.Amount))
		_, err = c.Webhooks.Send(ctx, c.Webhooks.Notification(nil, nil, []whatsapp.Status{PaymentStatus(c.WaID, rec)}))
		return err
	}
	if n, err := strconv.Atoi(line); err == nil {
		c.mu.Lock()
		opts := c.options
		c.mu.Unlock()
		if n < 1 || n > len(opts) {
			return fmt.Errorf("no option %d (there are %d)", n, len(opts))
		}
		o := opts[n-1]
		if o.Kind == whatsapp.ReplyTypeList {
			return c.send(ctx, ListReplyMessage(c.WaID, o.ContextID, o.ID, o.Title, o.Description))
		}
		return c.send(ctx, ButtonReplyMessage(c.WaID, o.ContextID, o.ID, o.Title))
	}
	return c.send(ctx, TextMessage(c.WaID, line))
}

// changeIdentity sends one of WhatsApp's identity-change system messages
// and from then on writes (and reads replies) as the changed user.
func (c *Chat) changeIdentity(ctx context.Context, cmd string, args []string) error {
	c.mu.Lock()
	if c.User == nil {
		u, err := ParseUser(c.WaID, "", "", "")
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.User = &u
	}
	u := *c.User
	c.mu.Unlock()
	var m whatsapp.Message
	var next User
	switch {
	case cmd == "/change-number" && (len(args) == 1 || len(args) == 2):
		phone, err := whatsapp.NormalizePhone(args[0])
		if err != nil {
			return err
		}
		bsuid := ""
		if len(args) == 2 {
			if !whatsapp.IsBSUID(args[1]) {
				return fmt.Errorf("%q is not a BSUID", args[1])
			}
			bsuid = args[1]
		}
		m, next = u.ChangeNumber(phone, bsuid)
	case cmd == "/change-user-id" && len(args) == 1 && whatsapp.IsBSUID(args[0]):
		m, next = u.ChangeUserID(args[0])
	default:
		return fmt.Errorf("usage: /change-number DIGITS [BSUID] | /change-user-id CC.DIGITS")
	}
	if err := c.send(ctx, m); err != nil {
		return err
	}
	c.mu.Lock()
	c.User, c.WaID = &next, next.Address()
	c.mu.Unlock()
	c.printf("  now %s %s\n", next.Kind(), next.Address())
	return nil
}

// saveDocument downloads a document the broker sent and saves it.
func (c *Chat) saveDocument(ctx context.Context, d *whatsapp.DocumentBody) {
	m, err := c.Sim.Media(ctx, d.ID)
	if err != nil {
		c.printf("! download %s: %v\n", d.Filename, err)
		return
	}
	if m.Filename == "" {
		m.Filename = d.Filename
	}
	dir := c.SaveDir
	if dir == "" {
		dir = "."
	}
	path, err := saveDocument(dir, m)
	if err != nil {
		c.printf("! save %s: %v\n", d.Filename, err)
		return
	}
	c.printf("  saved %s (%d bytes)\n", path, len(m.Data))
}
