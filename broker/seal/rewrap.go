package seal

import (
	"context"
	"runtime"
	"sync"

	"github.com/sieve-broker/sieve/broker"
)

// RewrapBatch is how many data keys RewrapAll re-wraps per batch (and per
// transaction, when the store is a broker.Transactor).
const RewrapBatch = 500

// rewrapPasses bounds how often RewrapAll starts over to catch keys created
// behind its cursor by processes that had not yet seen the rotation.
const rewrapPasses = 3

// RewrapAll re-wraps every data key that is not wrapped to the keyring's
// current identity, for "brokerctl keys rotate". Sealed records are not
// touched: the data keys stay the same, only their wrapping changes.
//
// Keys move in batches of RewrapBatch, each committed on its own, so an
// interrupted run loses at most one batch of work and rerunning continues
// where it stopped. When the store is a broker.Transactor each batch runs in
// a transaction that locks its rows, so a concurrent erasure waits for the
// batch instead of racing it. progress, if not nil, is called after each
// batch with the keys re-wrapped so far and the total expected (which grows
// if keys appear meanwhile).
func (s *Sealer) RewrapAll(ctx context.Context, progress func(done, total int64)) error {
	s.kr.reloadIfRotated()
	counts, err := s.store.CountSubjectKeys(ctx)
	if err != nil {
		return err
	}
	var total, done int64
	for id, n := range counts {
		if id != s.kr.Current() {
			total += n
		}
	}
	for range rewrapPasses {
		moved, err := s.rewrapPass(ctx, &done, &total, progress)
		if err != nil || moved == 0 {
			return err
		}
	}
	return nil
}

// rewrapPass walks the keys once in subject order.
func (s *Sealer) rewrapPass(ctx context.Context, done, total *int64, progress func(done, total int64)) (int64, error) {
	var moved int64
	after := ""
	for {
		target := s.kr.Current()
		var batch []broker.WrappedKey
		err := s.inTx(ctx, func(ctx context.Context) error {
			keys, err := s.store.SubjectKeysNotWrappedTo(ctx, target, after, RewrapBatch)
			if err != nil || len(keys) == 0 {
				batch = nil
				return err
			}
			rewrapped, err := s.rewrapKeys(keys)
			if err != nil {
				return err
			}
			if err := s.store.ReplaceSubjectKeys(ctx, rewrapped); err != nil {
				return err
			}
			batch = keys
			return nil
		})
		if err != nil {
			return moved, err
		}
		if len(batch) == 0 {
			return moved, nil
		}
		after = batch[len(batch)-1].Subject
		n := int64(len(batch))
		moved += n
		*done += n
		*total = max(*total, *done)
		if progress != nil {
			progress(*done, *total)
		}
		if len(batch) < RewrapBatch {
			return moved, nil
		}
	}
}

func (s *Sealer) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if tx, ok := s.store.(broker.Transactor); ok {
		return tx.InTx(ctx, fn)
	}
	return fn(ctx)
}

// rewrapKeys unwraps and re-wraps keys on every core: each key costs two
// age operations, about 0.4 ms.
func (s *Sealer) rewrapKeys(keys []broker.WrappedKey) ([]broker.WrappedKey, error) {
	out := make([]broker.WrappedKey, len(keys))
	errs := make([]error, len(keys))
	workers := min(runtime.GOMAXPROCS(0), len(keys))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(keys); i += workers {
				dek, err := s.kr.Unwrap(keys[i])
				if err != nil {
					errs[i] = err
					continue
				}
				out[i], errs[i] = s.kr.Wrap(keys[i].Subject, dek)
				clear(dek)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
