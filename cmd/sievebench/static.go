package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gofiber/fiber/v2"
)

// staticBody is the size and shape of a retailer's order view.
const staticBody = `{"order_id":"ord_aaaaaaaaaaaaaaaaaaaaaaaaaa","status":"placed","created_at":"2026-11-21T10:00:00Z",` +
	`"customer_ref":"cus_bbbbbbbbbbbbbbbbbbbbbbbbbb","items":[{"sku":"SKU-ATTA-5KG","name":"Atta 5 kg","quantity":2,` +
	`"unit_price":{"value":28950,"offset":100}},{"sku":"SKU-MILK-1L","name":"Toned Milk 1 L","quantity":3,` +
	`"unit_price":{"value":6400,"offset":100}}],"total":{"value":77100,"offset":100,"currency":"INR"},` +
	`"delivery":{"address":"12 MG Road, Bengaluru 560001","postal_code":"560001","slot":"Sat 21 Nov, 6–8 pm"},` +
	`"payment":{"status":"captured"},"privacy":{"decision_id":"dec_cccccccccccccccccccccccccc",` +
	`"purpose":"order_fulfilment","withheld":["chat","customer.phone","customer.profile_name"]}}`

// serveStatic is the baseline server: the same framework and config as
// brokerd (Fiber, immutable buffers), answering a fixed order view.
func serveStatic(args []string) {
	fs := flag.NewFlagSet("static", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18081", "listen address")
	fs.Parse(args) //nolint:errcheck
	app := fiber.New(fiber.Config{Immutable: true, DisableStartupMessage: true, ReadBufferSize: 128 << 10})
	app.Get("/v1/orders/:id", func(c *fiber.Ctx) error {
		c.Set("X-Decision-Id", "dec_static")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(staticBody)
	})
	if err := app.Listen(*addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
