package seal

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Defaults of Rotation (SPEC §3: BROKER_KEY_ROTATION, BROKER_BACKUP_RETENTION).
const (
	DefaultKeyRotation     = 7 * 24 * time.Hour
	DefaultBackupRetention = 30 * 24 * time.Hour
)

// RotationLock is the name of the lock Rotation takes.
const RotationLock = "sieve:key-rotation"

// Locker takes a named lock shared by every process on one database, without
// waiting; postgres.DB is one (a session advisory lock). ok is false when
// another process holds it.
type Locker interface {
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
}

// Rotation rotates and retires the age identities on a schedule, so that a
// database backup taken before an erasure stops opening the erased
// shopper's records once the identity that wrapped the destroyed key is
// retired.
//
// Each run, under Lock: when the current identity is Every old (or Force),
// a new one becomes current; every data key not wrapped to the current
// identity is re-wrapped (online, in batches: Sealer.RewrapAll); and every
// identity that was superseded at least BackupRetention ago and wraps no
// key any more is retired (its secret destroyed). An identity superseded at
// time S wraps only keys of backups taken before S (plus the minutes of the
// re-wrap), which are all past BackupRetention at S + BackupRetention: no
// backup still kept needs it.
//
// The bound: a shopper erased at E had the key wrapped to the identity
// current at E, created at most Every before E, so superseded by E + Every
// and retired by E + Every + BackupRetention (plus the lateness of the
// runs that rotate and retire, and any time no process ran them).
type Rotation struct {
	Sealer *Sealer
	// Every is how often a new identity is made (BROKER_KEY_ROTATION).
	Every time.Duration
	// BackupRetention is how long database backups are kept
	// (BROKER_BACKUP_RETENTION).
	BackupRetention time.Duration
	// Lock keeps several processes from rotating at once; nil means this is
	// the only process (tests).
	Lock Locker
	// PostQuantum makes new identities hybrid post-quantum. A keyring whose
	// current identity is post-quantum stays so either way.
	PostQuantum bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Progress, if not nil, follows the re-wrap (see RewrapAll).
	Progress func(done, total int64)
}

// RotationResult says what one Run did.
type RotationResult struct {
	// Skipped is set when another process held the lock: it does the work.
	Skipped bool
	// Rotated is the new current key id, if this run made one.
	Rotated string
	// Rewrapped counts the data keys moved to the current identity.
	Rewrapped int64
	// Retired lists the key ids whose secret this run destroyed.
	Retired []string
}

// Validate reports an unusable schedule.
func (r *Rotation) Validate() error {
	var errs []error
	if r.Sealer == nil {
		errs = append(errs, errors.New("seal: Rotation needs a Sealer"))
	}
	if r.Every <= 0 {
		errs = append(errs, errors.New("seal: key rotation period must be positive"))
	}
	if r.BackupRetention < 0 {
		errs = append(errs, errors.New("seal: backup retention must not be negative"))
	}
	return errors.Join(errs...)
}

func (r *Rotation) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run does one round of the schedule; force rotates even when the current
// identity is younger than Every ("brokerctl keys rotate").
func (r *Rotation) Run(ctx context.Context, force bool) (RotationResult, error) {
	var res RotationResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	kr, s := r.Sealer.kr, r.Sealer
	// Every process rereads the directory each run, locked or not, so that
	// an identity another process retired leaves this one's memory too.
	if err := kr.Reload(); err != nil {
		return res, err
	}
	if r.Lock != nil {
		release, ok, err := r.Lock.TryLock(ctx, RotationLock)
		if err != nil {
			return res, err
		}
		if !ok {
			res.Skipped = true
			return res, nil
		}
		defer release()
	}
	if err := kr.Reload(); err != nil { // what the lock's previous holder did
		return res, err
	}
	now := r.now()
	current := kr.Current()
	created, _ := kr.Created(current)
	if force || now.Sub(created) >= r.Every {
		id, err := kr.rotateAt(r.PostQuantum || kr.PostQuantum(current), now)
		if err != nil {
			return res, err
		}
		res.Rotated = id
	}
	// Most runs find nothing to do: one count (an index-only scan) says so,
	// instead of a re-wrap pass over every key.
	counts, err := s.store.CountSubjectKeys(ctx)
	if err != nil {
		return res, err
	}
	stale := false
	for id, n := range counts {
		stale = stale || (id != kr.Current() && n > 0)
	}
	if stale {
		err := s.RewrapAll(ctx, func(done, total int64) {
			res.Rewrapped = done
			if r.Progress != nil {
				r.Progress(done, total)
			}
		})
		if err != nil {
			return res, err
		}
	}
	if len(kr.IDs()) > 1 {
		res.Retired, err = r.retire(ctx, now)
	}
	return res, err
}

// retire destroys every identity superseded BackupRetention ago that wraps
// no key. An identity is superseded when the next one (by creation time) was
// made; the current identity, the newest, never is.
func (r *Rotation) retire(ctx context.Context, now time.Time) ([]string, error) {
	kr, store := r.Sealer.kr, r.Sealer.store
	type held struct {
		id      string
		created time.Time
	}
	var ids []held
	for _, id := range kr.IDs() {
		c, ok := kr.Created(id)
		if ok {
			ids = append(ids, held{id, c})
		}
	}
	slices.SortStableFunc(ids, func(a, b held) int { return a.created.Compare(b.created) })
	counts, err := store.CountSubjectKeys(ctx)
	if err != nil {
		return nil, err
	}
	current := kr.Current()
	var retired []string
	for i, h := range ids {
		if h.id == current || counts[h.id] > 0 {
			continue // in use: RewrapAll failed or lost a race; next run
		}
		// The first identity created after this one superseded it. Equal
		// creation times (hand-made files) do not count: keep until sure.
		var superseded time.Time
		for _, later := range ids[i+1:] {
			if later.created.After(h.created) {
				superseded = later.created
				break
			}
		}
		if superseded.IsZero() || now.Sub(superseded) < r.BackupRetention {
			continue
		}
		if err := kr.retireAt(ctx, h.id, store, now); err != nil {
			return retired, err
		}
		retired = append(retired, h.id)
	}
	return retired, nil
}
