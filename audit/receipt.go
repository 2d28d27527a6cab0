package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Receipts (SPEC §10). The shopper's "my data" lists each disclosure with
// a short receipt: the audit index of its entry and the first 4 bytes of
// the entry's leaf hash ("1234-9f86d081"). `brokerctl audit prove` turns an
// index into a Receipt file: the leaf hash, an inclusion proof and the
// latest cosigned checkpoint; anyone holding the log's public key and the
// witness policy checks it offline (`brokerctl audit check-receipt`). A
// receipt holds hashes and a checkpoint only: no personal data, not even
// the entry's pseudonym.

// ReceiptFormat names the receipt file format.
const ReceiptFormat = "sieve-receipt/v1"

// receiptPrefix is how many bytes of the leaf hash a short receipt shows.
const receiptPrefix = 4

// ShortReceipt is the short receipt of the entry at index with the given
// leaf hash.
func ShortReceipt(index uint64, leafHash []byte) string {
	n := min(receiptPrefix, len(leafHash))
	return strconv.FormatUint(index, 10) + "-" + hex.EncodeToString(leafHash[:n])
}

// ParseShortReceipt splits a short receipt into its index and hash prefix.
func ParseShortReceipt(s string) (uint64, []byte, error) {
	i, h, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(s), "#"), "-")
	idx, err := strconv.ParseUint(i, 10, 64)
	prefix, err2 := hex.DecodeString(h)
	if !ok || err != nil || err2 != nil || len(prefix) != receiptPrefix {
		return 0, nil, fmt.Errorf("audit: %q is not a receipt (want INDEX-8 hex digits)", s)
	}
	return idx, prefix, nil
}

// Receipt proves that an entry is in the log under a cosigned checkpoint.
type Receipt struct {
	Format     string   `json:"format"`
	Index      uint64   `json:"index"`
	LeafHash   []byte   `json:"leaf_hash"`
	Checkpoint string   `json:"checkpoint"` // the log's note with the witnesses' cosignatures
	Proof      [][]byte `json:"proof"`      // inclusion proof of LeafHash at Index in the checkpoint's tree
}

// MaxReceiptSize bounds a receipt file.
const MaxReceiptSize = 64 << 10

// ParseReceipt decodes a receipt file strictly.
func ParseReceipt(b []byte) (Receipt, error) {
	if len(b) > MaxReceiptSize {
		return Receipt{}, errors.New("audit: receipt too large")
	}
	var r Receipt
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Receipt{}, fmt.Errorf("audit: receipt: %w", err)
	}
	if r.Format != ReceiptFormat {
		return Receipt{}, fmt.Errorf("audit: receipt format %q, want %q", r.Format, ReceiptFormat)
	}
	return r, nil
}

// Short is the receipt's short form, as "my data" shows it.
func (r Receipt) Short() string { return ShortReceipt(r.Index, r.LeafHash) }

// Verify checks the receipt with only public material: the checkpoint is
// signed by one of keys, carries the witness quorum of p (nil: no
// witnesses required), and the proof puts LeafHash at Index in its tree.
// When short is not empty it must be this receipt's short form (the one
// the shopper was shown). It returns the verified checkpoint.
func (r Receipt) Verify(keys []PublicKey, p *Policy, short string) (Checkpoint, error) {
	if len(r.LeafHash) != HashSize {
		return Checkpoint{}, fmt.Errorf("%w: leaf hash of %d bytes", ErrInvalidProof, len(r.LeafHash))
	}
	if short != "" {
		idx, prefix, err := ParseShortReceipt(short)
		if err != nil {
			return Checkpoint{}, err
		}
		if idx != r.Index || !bytes.HasPrefix(r.LeafHash, prefix) {
			return Checkpoint{}, fmt.Errorf("%w: the receipt file is for %s, not %s", ErrRootMismatch, r.Short(), short)
		}
	}
	var cp Checkpoint
	err := errors.New("audit: no log key given")
	for _, k := range keys {
		if cp, err = k.VerifyCheckpoint([]byte(r.Checkpoint)); err == nil {
			break
		}
	}
	if err != nil {
		return Checkpoint{}, err
	}
	if p != nil {
		if err := p.CheckQuorum([]byte(r.Checkpoint)); err != nil {
			return Checkpoint{}, err
		}
	}
	if err := VerifyInclusion(r.LeafHash, r.Index, cp.Size, r.Proof, cp.Root); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}
