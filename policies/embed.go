package policies

import (
	"embed"
	"io/fs"
)

// tree is the policy tree compiled into the binary: Rego modules, their
// *_test.rego files and data.json, rooted so that sieve/release/release.rego
// is package sieve.release and sieve/data.json is data.sieve.
//
//go:embed sieve
var tree embed.FS

// FS returns the embedded policy tree. It has the same layout a
// BROKER_POLICY_DIR override must have, so it can be copied out, edited and
// loaded with Load.
func FS() fs.FS { return tree }
