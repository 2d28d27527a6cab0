package commerce

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// The WhatsApp system messages that move a shopper's identifiers (SPEC §10
// "Identity"); they are also the reason codes of identity.relinked entries.
const (
	// IdentityChangedNumber: the user changed their phone number; the new
	// number (and, since the BSUID changes with it, the new BSUID) is given.
	IdentityChangedNumber = "user_changed_number"
	// IdentityChangedUserID: the user's BSUID changed; no phone is given.
	IdentityChangedUserID = "user_changed_user_id"
)

// Audit actions and reasons of identity events (never an identifier).
const (
	ActionIdentityLinked   = "identity.linked"
	ActionIdentityRelinked = "identity.relinked"
	ReasonNewIdentifier    = "new_identifier"
	// ReasonIdentifierTaken: the system message moved an identifier that
	// pointed to another shopper (a recycled number); that shopper lost it.
	ReasonIdentifierTaken = "identifier_moved_away"
)

// identities is the Service's shopper-identity job: it resolves an
// event's identifiers (phone number, BSUID, username) to one shopper
// through a short cache and the blind indexes, creates shoppers, and keeps
// their sealed identity and identifier links current. A view of the
// Service, not a copy: the cache lives in Service.subjectIDs.
type identities struct{ *Service }

// identifiers returns the blind index of every identifier e names for its
// sender, most stable first: the phone, the BSUID, the parent BSUID, an
// opaque id.
func (s identities) identifiers(e Event) []IdentifierIndex {
	var out []IdentifierIndex
	out = s.addIdentifier(out, IDPhone, e.WaID)
	out = s.addIdentifier(out, IDBSUID, e.BSUID)
	out = s.addIdentifier(out, IDParent, e.ParentBSUID)
	return s.addIdentifier(out, IDOpaque, e.Opaque)
}

func (s identities) addIdentifier(out []IdentifierIndex, kind, value string) []IdentifierIndex {
	if value == "" {
		return out
	}
	return append(out, IdentifierIndex{Kind: kind, Index: s.Releaser.Pseudonyms().BlindIndex(kind, value)})
}

func indexesOf(ids []IdentifierIndex) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = id.Index
	}
	return out
}

// cachedFor returns the shopper every one of ids points to, when the cache
// knows them all (the hot path of ingest: no round trip).
func (s identities) cachedFor(ids []IdentifierIndex) (string, bool) {
	sub, now := "", time.Now()
	for _, id := range ids {
		c, ok := s.subjectIDs.Load(string(id.Index))
		if !ok || !now.Before(c.(cachedSubject).exp) {
			return "", false
		}
		if sub != "" && c.(cachedSubject).id != sub {
			return "", false
		}
		sub = c.(cachedSubject).id
	}
	return sub, sub != ""
}

func (s identities) cacheIndexes(subject string, ids []IdentifierIndex) {
	exp := time.Now().Add(subjectCacheTTL)
	for _, id := range ids {
		s.subjectIDs.Store(string(id.Index), cachedSubject{subject, exp})
	}
}

// resolveSubject finds the shopper behind an event through every
// identifier it carries; a message from nobody known creates one, and a
// message that carries an identifier not yet indexed links it to the
// shopper the others name (the first message with a phone and a BSUID
// joins them). Two identifiers of two shoppers are a conflict: the most
// stable one (the phone) decides, nothing is moved, and it is counted.
func (s identities) resolveSubject(ctx context.Context, e Event) (string, error) {
	ids := s.identifiers(e)
	if len(ids) == 0 {
		return "", nil
	}
	if sub, ok := s.cachedFor(ids); ok {
		return sub, nil
	}
	for attempt := 0; ; attempt++ {
		found, err := s.Subjects.SubjectsByIndexes(ctx, indexesOf(ids))
		if err != nil {
			return "", err
		}
		primary, conflict := "", false
		var missing, mine []IdentifierIndex
		for _, id := range ids {
			sub, ok := found[string(id.Index)]
			switch {
			case !ok:
				missing = append(missing, id)
				continue
			case primary == "":
				primary = sub
			case sub != primary:
				conflict = true
				continue
			}
			mine = append(mine, id)
		}
		if primary == "" {
			if e.Class != EventMessage {
				return "", nil // statuses of unknown shoppers are dropped
			}
			sub, err := s.createSubject(ctx, e, ids)
			if broker.ErrorCode(err) == broker.EConflict && attempt < 3 {
				continue // a concurrent message created them: look again
			}
			if err != nil {
				return "", err
			}
			s.cacheIndexes(sub, ids)
			return sub, nil
		}
		if conflict {
			s.inc("sieve_identity_conflicts_total")
		}
		if len(missing) > 0 && e.Class == EventMessage {
			n, err := s.linkIdentifiers(ctx, primary, e, missing)
			if err != nil {
				return "", err
			}
			if n == len(missing) {
				// All ours now (a concurrent message may have taken one
				// for another shopper: then none is cached).
				mine = append(mine, missing...)
			}
		}
		s.cacheIndexes(primary, mine)
		return primary, nil
	}
}

// createSubject creates a shopper with its identifiers, data key and
// sealed identity in one transaction (one WAL flush, and never a subject
// without its key); EConflict when a concurrent message took one.
func (s identities) createSubject(ctx context.Context, e Event, ids []IdentifierIndex) (string, error) {
	if ks, ok := s.Sealer.(newSubjectKeyer); ok {
		if cs, ok := s.Subjects.(sealedSubjectCreator); ok {
			return s.createSealedSubject(ctx, e, ids, ks, cs)
		}
	}
	var row SubjectRow
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		row, err = s.Subjects.CreateSubject(ctx, broker.NewID("shp"), ids)
		if err != nil {
			return err
		}
		// The country of the phone, for the transfer rules (SPEC §5.10),
		// goes in with the sealed identity: one statement, not two, on
		// the ingest path of every new shopper.
		b := identityOf(e)
		bind := broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: row.ID}
		var sealed []byte
		if ns, ok := s.Sealer.(newSubjectSealer); ok {
			sealed, err = ns.SealNew(ctx, row.ID, bind, b) // no key to look for yet
		} else {
			sealed, err = s.Sealer.Seal(ctx, row.ID, bind, b)
		}
		if err != nil {
			return err
		}
		if cc := JurisdictionOfPhone(e.WaID); cc != "" {
			if js, ok := s.Subjects.(identityJurisdictionStore); ok {
				return js.SetSubjectIdentityJurisdiction(ctx, row.ID, sealed, cc)
			}
		}
		return s.Subjects.SetSubjectIdentity(ctx, row.ID, sealed)
	})
	if err != nil {
		return "", err
	}
	s.inc("sieve_identity_events_total", "created")
	return row.ID, nil
}

// newSubjectKeyer is what a Sealer may offer for a shopper not yet stored:
// a data key to seal their identity under before their row is written.
type newSubjectKeyer interface {
	NewSubjectKey(subject string) (broker.PendingKey, error)
}

// createSealedSubject creates a shopper, their identifiers, data key,
// sealed identity and jurisdiction in one statement: the path of every new
// shopper's first message, at one round trip and one commit.
func (s identities) createSealedSubject(ctx context.Context, e Event, ids []IdentifierIndex, ks newSubjectKeyer, cs sealedSubjectCreator) (string, error) {
	id := broker.NewID("shp")
	k, err := ks.NewSubjectKey(id)
	if err != nil {
		return "", err
	}
	defer k.Discard()
	sealed, err := k.Seal(broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: id}, identityOf(e))
	if err != nil {
		return "", err
	}
	if err := cs.CreateSealedSubject(ctx, NewSubject{ID: id, Identifiers: ids, Key: k.Wrapped(), SealedIdentity: sealed,
		Jurisdiction: JurisdictionOfPhone(e.WaID)}); err != nil {
		return "", err
	}
	k.Keep(ctx)
	s.inc("sieve_identity_events_total", "created")
	return id, nil
}

// identityOf is the identity record of a new shopper, as sealed.
func identityOf(e Event) []byte {
	id := Identity{WaID: e.WaID, BSUID: e.BSUID, Parent: e.ParentBSUID, Name: e.Name}
	if id.WaID == "" && e.Opaque != "" {
		id.WaID = e.Opaque // addressed as given
	}
	b, _ := json.Marshal(id)
	return b
}

// newSubjectSealer is what a Sealer may offer for a shopper created in the
// transaction at hand: sealing without first looking for their key (see
// seal.Sealer.SealNew), a round trip less on the path of every new shopper.
type newSubjectSealer interface {
	SealNew(ctx context.Context, subject string, b broker.Binding, plaintext []byte) ([]byte, error)
}

func (s identities) sealIdentity(ctx context.Context, subject string, id Identity) error {
	sealed, err := s.sealedIdentity(ctx, subject, id)
	if err != nil {
		return err
	}
	return s.Subjects.SetSubjectIdentity(ctx, subject, sealed)
}

// sealedIdentity seals the shopper's identity record.
func (s identities) sealedIdentity(ctx context.Context, subject string, id Identity) ([]byte, error) {
	b, _ := json.Marshal(id)
	return s.Sealer.Seal(ctx, subject, broker.Binding{Table: "subjects", Column: "sealed_identity", RowID: subject}, b)
}

// rewriteIdentity unseals the shopper's identity, lets fn change it, and
// seals it again.
func (s identities) rewriteIdentity(ctx context.Context, subject string, fn func(*Identity)) error {
	row, err := s.Subjects.GetSubject(ctx, subject)
	if err != nil {
		return err
	}
	if row.Erased {
		return nil
	}
	id, err := s.identity(ctx, row)
	if err != nil {
		return err
	}
	fn(&id)
	return s.sealIdentity(ctx, subject, id)
}

// setIdentifier puts the value of an identifier kind into id.
func setIdentifier(id *Identity, kind, value string) {
	switch kind {
	case IDPhone:
		id.WaID = value
	case IDBSUID:
		id.BSUID = value
	case IDParent:
		id.Parent = value
	}
}

// eventValue returns the value of kind that e carries for its sender.
func eventValue(e Event, kind string) string {
	switch kind {
	case IDPhone:
		return e.WaID
	case IDBSUID:
		return e.BSUID
	case IDParent:
		return e.ParentBSUID
	}
	return e.Opaque
}

// linkIdentifiers indexes identifiers seen for the first time with the
// shopper, records them in the sealed identity (so replies can go to a
// phone learned later) and audits it, in one transaction; it returns how
// many it linked.
func (s identities) linkIdentifiers(ctx context.Context, subject string, e Event, ids []IdentifierIndex) (int, error) {
	var n int
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.Subjects.LinkIdentifiers(ctx, subject, ids)
		if err != nil || n == 0 {
			return err
		}
		if err := s.rewriteIdentity(ctx, subject, func(id *Identity) {
			for _, x := range ids {
				setIdentifier(id, x.Kind, eventValue(e, x.Kind))
			}
		}); err != nil {
			return err
		}
		s.inc("sieve_identity_events_total", "linked")
		return s.auditIdentity(ctx, subject, ActionIdentityLinked, ReasonNewIdentifier)
	})
	return n, err
}

func (s identities) auditIdentity(ctx context.Context, subject, action, reason string) error {
	return s.record(ctx, broker.Event{Actor: "whatsapp", Action: action, Purpose: broker.PurposeIdentity,
		Subject: subject, Outcome: audit.OutcomeDone,
		Reason: reason})
}

// moveIdentity applies a user_changed_number / user_changed_user_id system
// message: for every kind of identifier the message gives a new value
// of, the old values' indexes are removed and the new one points to the
// shopper (taken from whoever held it: WhatsApp says the identifier is
// this person's now), the sealed identity follows, and an
// identity.relinked entry (the change type as reason, no identifier) is
// appended, all in one transaction. A replay finds the move done.
func (s identities) moveIdentity(ctx context.Context, e Event) error {
	if e.Change != IdentityChangedNumber && e.Change != IdentityChangedUserID {
		return nil
	}
	old := s.identifiers(e)
	old = s.addIdentifier(old, IDBSUID, e.PrevBSUID)
	old = s.addIdentifier(old, IDParent, e.PrevParent)
	var fresh []IdentifierIndex
	fresh = s.addIdentifier(fresh, IDPhone, e.NewWaID)
	fresh = s.addIdentifier(fresh, IDBSUID, e.NewBSUID)
	fresh = s.addIdentifier(fresh, IDParent, e.NewParent)
	if len(old) == 0 || len(fresh) == 0 {
		s.inc("sieve_identity_events_total", "change_ignored")
		return nil
	}
	found, err := s.Subjects.SubjectsByIndexes(ctx, append(indexesOf(old), indexesOf(fresh)...))
	if err != nil {
		return err
	}
	subject := ""
	for _, id := range old {
		if sub, ok := found[string(id.Index)]; ok {
			subject = sub
			break
		}
	}
	if subject == "" {
		// Nobody known had the old identifiers (or the move was applied
		// already): nothing to move.
		s.inc("sieve_identity_events_total", "change_unknown")
		return nil
	}
	newKinds := map[string]string{}
	for _, id := range fresh {
		newKinds[id.Kind] = eventValue(Event{WaID: e.NewWaID, BSUID: e.NewBSUID, ParentBSUID: e.NewParent}, id.Kind)
	}
	var drop [][]byte
	for _, id := range old {
		if _, replaced := newKinds[id.Kind]; replaced && found[string(id.Index)] == subject && !containsIndex(fresh, id.Index) {
			drop = append(drop, id.Index)
		}
	}
	done := len(drop) == 0
	for _, id := range fresh {
		done = done && found[string(id.Index)] == subject
	}
	if done {
		return nil // a redelivery: the move was applied
	}
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		for _, id := range fresh {
			other, ok := found[string(id.Index)]
			if !ok || other == subject {
				continue
			}
			if _, err := s.Subjects.UnlinkIdentifiers(ctx, other, [][]byte{id.Index}); err != nil {
				return err
			}
			kind := id.Kind
			if err := s.rewriteIdentity(ctx, other, func(x *Identity) { setIdentifier(x, kind, "") }); err != nil {
				return err
			}
			if err := s.auditIdentity(ctx, other, ActionIdentityRelinked, ReasonIdentifierTaken); err != nil {
				return err
			}
		}
		if _, err := s.Subjects.UnlinkIdentifiers(ctx, subject, drop); err != nil {
			return err
		}
		if _, err := s.Subjects.LinkIdentifiers(ctx, subject, fresh); err != nil {
			return err
		}
		if err := s.rewriteIdentity(ctx, subject, func(x *Identity) {
			for k, v := range newKinds {
				setIdentifier(x, k, v)
			}
		}); err != nil {
			return err
		}
		return s.auditIdentity(ctx, subject, ActionIdentityRelinked, e.Change)
	})
	if err != nil {
		return err
	}
	for _, id := range append(old, fresh...) {
		s.subjectIDs.Delete(string(id.Index))
	}
	s.inc("sieve_identity_events_total", "relinked")
	return nil
}

func containsIndex(ids []IdentifierIndex, ix []byte) bool {
	for _, id := range ids {
		if string(id.Index) == string(ix) {
			return true
		}
	}
	return false
}
