// Package migrations holds the numbered SQL migrations of the broker's
// schema, embedded in the binary. Files are applied in lexical order, each
// once; see broker/postgres for the runner.
package migrations

import "embed"

// FS holds the migration files (NNNN_name.sql).
//
//go:embed *.sql
var FS embed.FS
