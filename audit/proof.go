package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// MaxProofHashes bounds the hashes of any proof: 2·64 covers every tree a
// uint64 size can describe. Decoders reject more before doing any work.
const MaxProofHashes = 128

// NodeReader reads node hashes of a log. Each id names a perfect subtree
// (level, index) lying entirely within the tree the proof is built for;
// ReadNodes returns their hashes in the same order.
type NodeReader interface {
	ReadNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
}

// BuildInclusion returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, reading the nodes it needs from r.
func BuildInclusion(ctx context.Context, r NodeReader, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d not below tree size %d", ErrOutOfRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return rehash(ctx, r, nodes)
}

// BuildConsistency returns the RFC 6962 consistency proof between the trees
// of sizes size1 ≤ size2, reading the nodes it needs from r.
func BuildConsistency(ctx context.Context, r NodeReader, size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("%w: size %d greater than %d", ErrOutOfRange, size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return rehash(ctx, r, nodes)
}

func rehash(ctx context.Context, r NodeReader, nodes proof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := r.ReadNodes(ctx, nodes.IDs)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(nodes.IDs) {
		return nil, fmt.Errorf("audit: node reader returned %d hashes for %d nodes", len(hashes), len(nodes.IDs))
	}
	for i, h := range hashes {
		if len(h) != HashSize {
			return nil, fmt.Errorf("audit: node %+v has a %d-byte hash", nodes.IDs[i], len(h))
		}
	}
	return nodes.Rehash(hashes, hashChildren)
}

// VerifyInclusion checks that the leaf with hash leafHash is at index in
// the tree of the given size and root. Errors wrap ErrInvalidProof (the
// proof cannot be right for these sizes) or ErrRootMismatch (it leads to
// another root; the error is a *MismatchError).
func VerifyInclusion(leafHash []byte, index, size uint64, hashes [][]byte, root []byte) error {
	if err := checkHashes(hashes); err != nil {
		return err
	}
	if len(leafHash) != HashSize || len(root) != HashSize {
		return fmt.Errorf("%w: leaf hash or root of the wrong length", ErrInvalidProof)
	}
	if index >= size {
		return fmt.Errorf("%w: index %d not below tree size %d", ErrInvalidProof, index, size)
	}
	return proofError(proof.VerifyInclusion(Hasher, index, size, leafHash, hashes, root),
		fmt.Sprintf("root of tree size %d from the inclusion proof of entry %d", size, index))
}

// VerifyConsistency checks that the tree of size1 and root1 is a prefix of
// the tree of size2 and root2. Errors wrap ErrInvalidProof or
// ErrRootMismatch (a *MismatchError).
func VerifyConsistency(size1, size2 uint64, hashes [][]byte, root1, root2 []byte) error {
	if err := checkHashes(hashes); err != nil {
		return err
	}
	if len(root1) != HashSize || len(root2) != HashSize {
		return fmt.Errorf("%w: root of the wrong length", ErrInvalidProof)
	}
	if size1 > size2 {
		return fmt.Errorf("%w: size %d greater than %d", ErrInvalidProof, size1, size2)
	}
	return proofError(proof.VerifyConsistency(Hasher, size1, size2, hashes, root1, root2),
		fmt.Sprintf("roots of tree sizes %d and %d from the consistency proof", size1, size2))
}

func checkHashes(hashes [][]byte) error {
	if len(hashes) > MaxProofHashes {
		return fmt.Errorf("%w: %d hashes", ErrInvalidProof, len(hashes))
	}
	for i, h := range hashes {
		if len(h) != HashSize {
			return fmt.Errorf("%w: hash %d has %d bytes", ErrInvalidProof, i, len(h))
		}
	}
	return nil
}

func proofError(err error, what string) error {
	if err == nil {
		return nil
	}
	var rm proof.RootMismatchError
	if errors.As(err, &rm) {
		return &MismatchError{Err: ErrRootMismatch, What: what, Expected: rm.ExpectedRoot, Computed: rm.CalculatedRoot}
	}
	return fmt.Errorf("%w: %v", ErrInvalidProof, err)
}

// InclusionProof is the body of GET /v1/audit/proof/inclusion: the proof
// that the leaf with hash LeafHash is entry Index of the tree of Size.
// Hashes are standard base64 in JSON.
type InclusionProof struct {
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leaf_hash"`
	Hashes   [][]byte `json:"hashes"`
}

// Verify checks the proof against the trusted root of its tree size.
func (p InclusionProof) Verify(root []byte) error {
	return VerifyInclusion(p.LeafHash, p.Index, p.Size, p.Hashes, root)
}

// MarshalJSON writes hashes as [] rather than null when there are none.
func (p InclusionProof) MarshalJSON() ([]byte, error) {
	type plain InclusionProof
	if p.Hashes == nil {
		p.Hashes = [][]byte{}
	}
	return json.Marshal(plain(p))
}

// ConsistencyProof is the body of GET /v1/audit/proof/consistency: the proof
// that the tree of size From is a prefix of the tree of size To.
type ConsistencyProof struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// Verify checks the proof against the trusted roots of both sizes.
func (p ConsistencyProof) Verify(root1, root2 []byte) error {
	return VerifyConsistency(p.From, p.To, p.Hashes, root1, root2)
}

// MarshalJSON writes hashes as [] rather than null when there are none.
func (p ConsistencyProof) MarshalJSON() ([]byte, error) {
	type plain ConsistencyProof
	if p.Hashes == nil {
		p.Hashes = [][]byte{}
	}
	return json.Marshal(plain(p))
}

// DecodeInclusionProof decodes an untrusted inclusion proof body strictly:
// unknown fields, trailing data, more than MaxProofHashes hashes or hashes
// of the wrong length are rejected with ErrInvalidProof.
func DecodeInclusionProof(b []byte) (InclusionProof, error) {
	var p InclusionProof
	type plain InclusionProof
	if err := decodeStrict(b, (*plain)(&p)); err != nil {
		return InclusionProof{}, err
	}
	if len(p.LeafHash) != HashSize {
		return InclusionProof{}, fmt.Errorf("%w: leaf_hash has %d bytes", ErrInvalidProof, len(p.LeafHash))
	}
	if err := checkHashes(p.Hashes); err != nil {
		return InclusionProof{}, err
	}
	return p, nil
}

// DecodeConsistencyProof decodes an untrusted consistency proof body
// strictly, like DecodeInclusionProof.
func DecodeConsistencyProof(b []byte) (ConsistencyProof, error) {
	var p ConsistencyProof
	type plain ConsistencyProof
	if err := decodeStrict(b, (*plain)(&p)); err != nil {
		return ConsistencyProof{}, err
	}
	if err := checkHashes(p.Hashes); err != nil {
		return ConsistencyProof{}, err
	}
	return p, nil
}

func decodeStrict(b []byte, v any) error {
	if len(b) > 64<<10 {
		return fmt.Errorf("%w: body of %d bytes", ErrInvalidProof, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", ErrInvalidProof)
	}
	return nil
}
