package httpapi

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sieve-broker/sieve/broker"
)

// AuditTiles serves the audit log as C2SP tlog-tiles (height 8): an
// AuditAPI that also implements it gets the /v1/audit/tile/… routes.
type AuditTiles interface {
	// Tile returns the hashes of the tile at level and index, width of
	// them (256 for a full tile); ENotFound while the tree lacks them.
	Tile(ctx context.Context, level int, index uint64, width int) ([]byte, error)
	// EntryBundle returns the entry bundle at index with width entries.
	EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error)
}

// auditTile serves GET /v1/audit/tile/<L>/<N>[.p/<W>] and
// /v1/audit/tile/entries/<N>[.p/<W>], N in the tlog-tiles "x001/x234/067"
// form. Paths are parsed by golang.org/x/mod/sumdb/tlog (the sumdb layout
// differs from tlog-tiles only by a height segment and "data" for
// "entries").
func (s *Server) auditTile(c *fiber.Ctx) error {
	rest := c.Params("*")
	var sumdb string
	if r, ok := strings.CutPrefix(rest, "entries/"); ok {
		sumdb = "tile/8/data/" + r
	} else {
		sumdb = "tile/8/" + rest
	}
	t, err := tlog.ParseTilePath(sumdb)
	if err != nil || t.H != 8 || strings.Contains(rest, "//") {
		return broker.Errorf(broker.EInvalid, "not a tile path: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
	}
	tiles := s.deps.Audit.(AuditTiles)
	var b []byte
	if t.L == -1 {
		b, err = tiles.EntryBundle(c.UserContext(), uint64(t.N), t.W)
	} else {
		b, err = tiles.Tile(c.UserContext(), t.L, uint64(t.N), t.W)
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	// Complete subtrees never change: a tile, full or partial, is final.
	c.Set(fiber.HeaderCacheControl, "private, max-age=31536000, immutable")
	return c.Send(b)
}
