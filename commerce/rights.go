package commerce

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// RightsStore is the persistence the data-subject rights need.
type RightsStore interface {
	// EraseSubjectRows removes or blanks every row holding the shopper's
	// data (identity, index, session, inbox, pending outbox, orders' sealed
	// parts, partner refs) and cancels open orders; it returns how many
	// orders it cancelled. The data key is destroyed separately (Shred).
	EraseSubjectRows(ctx context.Context, subject string) (cancelled []string, err error)
	// SubjectAudit returns the audit entries about the shopper (by audit
	// pseudonym), oldest first.
	SubjectAudit(ctx context.Context, pseudonym string, limit int) ([]audit.Entry, error)
	// NotifyErasure tells other processes to drop cached state.
	NotifyErasure(ctx context.Context, subject string) error
}

// Rights implements the shopper's rights — access (Art. 15, DPDP §11),
// portability (Art. 20), erasure (Art. 17) — for the chat, the officer's
// dashboard, the compliance API and brokerctl alike.
type Rights struct {
	Service *Service
	Store   RightsStore
}

// ResolveWaID finds a shopper by WhatsApp id (digits, '+' and spaces are
// ignored) through the blind index; the number itself is never stored.
func (r *Rights) ResolveWaID(ctx context.Context, waID string) (SubjectRow, error) {
	digits := NormalizeWaID(waID)
	if digits == "" {
		return SubjectRow{}, broker.Errorf(broker.EInvalid, "wa_id must be a phone number with country code")
	}
	row, err := r.Service.Subjects.SubjectByIndex(ctx, r.Service.Releaser.Pseudonyms().BlindIndex("wa", digits))
	if err != nil {
		return row, err
	}
	if row.Erased {
		return row, broker.ErrNotFound
	}
	return row, nil
}

// ResolveUserID finds a shopper by BSUID (or parent BSUID) through the
// blind index; the id itself is never stored.
func (r *Rights) ResolveUserID(ctx context.Context, userID string) (SubjectRow, error) {
	if !ValidUserID(userID) {
		return SubjectRow{}, broker.Errorf(broker.EInvalid, "user_id must be a business-scoped user id (CC.digits)")
	}
	p := r.Service.Releaser.Pseudonyms()
	row, err := r.Service.Subjects.SubjectByIndex(ctx, p.BlindIndex(IDBSUID, userID))
	if broker.IsNotFound(err) {
		row, err = r.Service.Subjects.SubjectByIndex(ctx, p.BlindIndex(IDParent, userID))
	}
	if err != nil {
		return row, err
	}
	if row.Erased {
		return row, broker.ErrNotFound
	}
	return row, nil
}

// Resolve finds a shopper by exactly one of a WhatsApp number and a BSUID.
func (r *Rights) Resolve(ctx context.Context, waID, userID string) (SubjectRow, error) {
	switch {
	case waID != "" && userID != "":
		return SubjectRow{}, broker.Errorf(broker.EInvalid, "give wa_id or user_id, not both")
	case userID != "":
		return r.ResolveUserID(ctx, userID)
	case waID != "":
		return r.ResolveWaID(ctx, waID)
	}
	return SubjectRow{}, broker.Errorf(broker.EInvalid, "wa_id or user_id is required")
}

// ValidUserID reports whether s has the form of a BSUID: "CC.digits" (a
// parent BSUID has more parts), at most 128 characters of [A-Za-z0-9._-],
// a dot not at either end.
func ValidUserID(s string) bool {
	if len(s) < 3 || len(s) > 128 || s[0] == '.' || s[len(s)-1] == '.' || !strings.Contains(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NormalizeWaID keeps the digits of a phone number ("+91 98111-12222" →
// "919811112222"); "" when it is not a plausible number.
func NormalizeWaID(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == '+' || c == ' ' || c == '-' || c == '(' || c == ')':
		default:
			return ""
		}
	}
	d := b.String()
	if len(d) < 8 || len(d) > 15 {
		return ""
	}
	return d
}

// The grounds of an erasure, as audit reason codes (SPEC §2: a fixed list,
// never text a person typed, which could hold a name or a number).
const (
	EraseRequest    = "request"     // the shopper asked (GDPR Art. 17(1)(a), DPDP §12)
	EraseWithdrawal = "withdrawal"  // consent withdrawn and no other ground (Art. 17(1)(b))
	EraseObjection  = "objection"   // the shopper objected (Art. 17(1)(c))
	EraseRetention  = "retention"   // the retention period expired (Art. 5(1)(e), DPDP §8(7))
	EraseLegalOrder = "legal_order" // ordered by an authority or a court (Art. 17(1)(e))
	EraseUnlawful   = "unlawful"    // the data was processed unlawfully (Art. 17(1)(d))
)

// EraseReasons lists the erasure reason codes.
var EraseReasons = []string{EraseRequest, EraseWithdrawal, EraseObjection, EraseRetention, EraseLegalOrder, EraseUnlawful}

// ValidEraseReason reports whether code is an erasure reason code.
func ValidEraseReason(code string) bool {
	for _, r := range EraseReasons {
		if r == code {
			return true
		}
	}
	return false
}

// Erase erases a shopper: crypto-shreds their key, removes their rows,
// cancels open orders (telling the retailers), and appends the signed
// erasure entry, all in one transaction with the entry. reason must be one
// of EraseReasons; anything else is EInvalid and erases nothing.
func (r *Rights) Erase(ctx context.Context, subject string, actor broker.Party, reason string) error {
	if !ValidEraseReason(reason) {
		return broker.Errorf(broker.EInvalid, "reason must be one of %s", strings.Join(EraseReasons, ", "))
	}
	s := r.Service
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		orders, err := s.Orders.OrdersOfSubject(ctx, subject)
		if err != nil {
			return err
		}
		// Tell retailers about cancelled orders while the order can still
		// be read (the notice carries no personal data).
		for i := range orders {
			o := &orders[i]
			if o.Erased || o.Status == StatusDelivered || o.Status == StatusCancelled || o.Status == StatusPendingPayment {
				continue
			}
			if err := s.OpenOrder(ctx, o); err != nil {
				continue
			}
			if err := s.cancelOrder(ctx, &o.Order, actor, "shopper erased"); err != nil {
				return err
			}
		}
		// Invoices are held through the erasure (CGST Act s.36): those of
		// orders placed before keys were split are written out first.
		hasInvoices := false
		if s.holds != nil {
			if hasInvoices, err = s.holds.prepare(ctx, subject); err != nil {
				return err
			}
		}
		// Every recipient of the shopper's data is told (SPEC §5.12),
		// from the audit log, which the erasure does not touch.
		if s.notices != nil {
			if _, err := s.notices.Notify(ctx, subject, NoticeErased, nil, nil); err != nil {
				return err
			}
		}
		if _, err := r.Store.EraseSubjectRows(ctx, subject); err != nil {
			return err
		}
		if s.holds != nil {
			if err := s.holds.shred(ctx, subject, hasInvoices, actor); err != nil {
				return err
			}
		} else if err := s.Sealer.Shred(ctx, subject); err != nil {
			return err
		}
		if err := s.record(ctx, broker.Event{Actor: actor.Actor(), Action: "erase", Purpose: broker.PurposeErasure, Subject: subject,
			Resource: "subject", Outcome: audit.OutcomeDone, Reason: reason}); err != nil {
			return err
		}
		return r.Store.NotifyErasure(ctx, subject)
	})
	if err != nil {
		return err
	}
	s.ForgetSubject(subject)
	s.inc("sieve_erasures_total", string(actor.Kind))
	return nil
}

// Disclosure is one party that received the shopper's data for a purpose.
type Disclosure struct {
	Party    string    `json:"party"` // kind:id of the partner
	Name     string    `json:"name,omitempty"`
	Purpose  string    `json:"purpose"`
	Fields   []string  `json:"fields"`
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Decision string    `json:"last_decision_id"`
	// Receipt is the short receipt of the latest release (its audit index
	// and a leaf-hash prefix, audit.ShortReceipt): with `brokerctl audit
	// prove` it becomes a proof anyone can check against the cosigned log.
	Receipt string `json:"receipt,omitempty"`
	// Notices are the recipient notices this party was sent about the
	// shopper (erasure, withdrawal, correction): notified at, acknowledged
	// at (SPEC §4, §5.12).
	Notices []RecipientStatus `json:"notices,omitempty"`
	// The recipient's legal registry entry as the audit log recorded it
	// at the last disclosure (SPEC §4, §5.10); empty for disclosures made
	// before the registry existed.
	Role          string `json:"role,omitempty"`
	Jurisdiction  string `json:"jurisdiction,omitempty"`
	TransferBasis string `json:"transfer_basis,omitempty"`
}

// Disclosures lists every party the shopper's data went to, for what
// purpose, which fields and when (GDPR Art. 15, DPDP §11).
func (r *Rights) Disclosures(ctx context.Context, subject string) ([]Disclosure, error) {
	entries, err := r.Store.SubjectAudit(ctx, r.Service.Releaser.Pseudonyms().Audit(subject), 100000)
	if err != nil {
		return nil, err
	}
	type key struct{ party, purpose string }
	acc := map[key]*Disclosure{}
	for _, e := range entries {
		if e.Outcome != audit.OutcomeReleased && e.Outcome != audit.OutcomePartial {
			continue
		}
		if strings.HasPrefix(e.Actor, "shopper:") {
			continue // what the shopper's own chat was told
		}
		k := key{e.Actor, e.Purpose}
		d := acc[k]
		if d == nil {
			d = &Disclosure{Party: e.Actor, Purpose: e.Purpose, First: e.Time}
			acc[k] = d
		}
		d.Count++
		d.Last, d.Decision = e.Time, e.DecisionID
		if leaf, err := e.Canonical(); err == nil {
			d.Receipt = audit.ShortReceipt(e.Index, audit.LeafHash(leaf))
		}
		if e.RecipientRole != "" || e.Jurisdiction != "" {
			d.Role, d.Jurisdiction, d.TransferBasis = e.RecipientRole, e.Jurisdiction, e.TransferBasis
		}
		for _, f := range e.Released {
			if !containsStr(d.Fields, f) {
				d.Fields = append(d.Fields, f)
			}
		}
	}
	var notices map[string][]RecipientStatus
	if r.Service.notices != nil {
		if notices, err = r.Service.notices.SubjectStatus(ctx, subject); err != nil {
			return nil, err
		}
	}
	out := make([]Disclosure, 0, len(acc))
	for _, d := range acc {
		if _, id, ok := strings.Cut(d.Party, ":"); ok {
			d.Notices = notices[id]
		}
		sort.Strings(d.Fields)
		if _, id, ok := strings.Cut(d.Party, ":"); ok {
			if p, err := r.Service.Partners.GetPartner(ctx, id); err == nil {
				d.Name = p.Name
			}
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Export is a shopper's data in machine-readable form (GDPR Art. 20).
type Export struct {
	Subject     string         `json:"subject"` // the audit pseudonym
	WaID        string         `json:"wa_id,omitempty"`
	BSUID       string         `json:"bsuid,omitempty"`
	Name        string         `json:"profile_name,omitempty"`
	Consent     broker.Consent `json:"consent"`
	CreatedAt   time.Time      `json:"created_at"`
	LastSeen    time.Time      `json:"last_interaction_at"`
	Orders      []ExportOrder  `json:"orders"`
	Disclosures []Disclosure   `json:"disclosures"`
}

// ExportOrder is an order in an export.
type ExportOrder struct {
	ID            string     `json:"order_id"`
	Status        string     `json:"status"`
	PaymentStatus string     `json:"payment_status"`
	CreatedAt     time.Time  `json:"created_at"`
	Items         []CartLine `json:"items"`
	Total         int64      `json:"total_paise"`
	Address       Location   `json:"address"`
	Slot          string     `json:"slot"`
}

// Export assembles everything held about the shopper.
func (r *Rights) Export(ctx context.Context, subject string) (Export, error) {
	s := r.Service
	row, err := s.Subjects.GetSubject(ctx, subject)
	if err != nil {
		return Export{}, err
	}
	if row.Erased {
		return Export{}, broker.ErrNotFound
	}
	ident, err := s.identity(ctx, row)
	if err != nil {
		return Export{}, err
	}
	ex := Export{Subject: s.Releaser.Pseudonyms().Audit(subject), WaID: ident.WaID, BSUID: ident.BSUID, Name: ident.Name,
		Consent: row.Consent, CreatedAt: row.CreatedAt, LastSeen: row.LastInteraction, Orders: []ExportOrder{}}
	orders, err := s.Orders.OrdersOfSubject(ctx, subject)
	if err != nil {
		return Export{}, err
	}
	for i := range orders {
		o := &orders[i]
		if s.OpenOrder(ctx, o) != nil {
			continue
		}
		ex.Orders = append(ex.Orders, ExportOrder{ID: o.ID, Status: o.Status, PaymentStatus: o.PaymentStatus,
			CreatedAt: o.CreatedAt, Items: o.Lines, Total: o.Total, Address: o.Address, Slot: o.Slot})
	}
	if ex.Disclosures, err = r.Disclosures(ctx, subject); err != nil {
		return Export{}, err
	}
	return ex, nil
}

// ExportFields are the fields of a shopper's data an export asks policy to
// release, as the policy data names them.
var ExportFields = []string{"customer.phone", "customer.bsuid", "customer.profile_name", "customer.consent", "orders"}

// ReleaseExport answers a portability or access request (GDPR Art. 15 and
// 20): the shopper's data goes to party (the compliance client or officer
// answering it) as a release through the pipeline, for purpose
// data_subject_request, with its audit entry; so the export appears in the
// shopper's disclosures like any other. Only what policy releases is in
// the export; a denial is EDenied with the decision.
func (r *Rights) ReleaseExport(ctx context.Context, subject string, party broker.Party) (Export, broker.Decision, error) {
	s := r.Service
	ex, err := r.Export(ctx, subject)
	if err != nil {
		return Export{}, broker.Decision{}, err
	}
	rec := broker.Record{"customer.consent": ex.Consent, "orders": ex.Orders}
	if ex.WaID != "" {
		rec["customer.phone"] = "+" + ex.WaID
	}
	if ex.BSUID != "" {
		rec["customer.bsuid"] = ex.BSUID
	}
	if ex.Name != "" {
		rec["customer.profile_name"] = ex.Name
	}
	d, err := s.Releaser.Release(ctx, broker.Request{Party: party, Purpose: broker.PurposeDataSubjectRequest,
		Action: "export", Subject: subject, Resource: "subject", Consent: ex.Consent, Fields: ExportFields, Record: rec})
	if err != nil {
		return Export{}, broker.Decision{}, err
	}
	if d.Outcome == audit.OutcomeDenied {
		return Export{}, d, broker.Errorf(broker.EDenied, "export denied: %s", d.Reason)
	}
	out := Export{Subject: ex.Subject, CreatedAt: ex.CreatedAt, LastSeen: ex.LastSeen, Orders: []ExportOrder{},
		Disclosures: ex.Disclosures}
	if _, ok := d.Released["customer.phone"]; ok {
		out.WaID = ex.WaID
	}
	if _, ok := d.Released["customer.bsuid"]; ok {
		out.BSUID = ex.BSUID
	}
	if _, ok := d.Released["customer.profile_name"]; ok {
		out.Name = ex.Name
	}
	if _, ok := d.Released["customer.consent"]; ok {
		out.Consent = ex.Consent
	}
	if _, ok := d.Released["orders"]; ok {
		out.Orders = ex.Orders
	}
	return out, d, nil
}

// neverShared are the identifiers "my data" names when no disclosure
// included them: the claim is computed, never assumed.
var neverShared = []struct{ field, words string }{
	{"customer.phone", "your phone number"},
	{"customer.profile_name", "your name"},
	{"chat", "this chat"},
}

// Summary is the "my data" answer in the chat.
func (r *Rights) Summary(ctx context.Context, subject string) (string, error) {
	ex, err := r.Export(ctx, subject)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("What we hold about you:\n")
	fmt.Fprintf(&b, "• your WhatsApp number and profile name (encrypted)\n• %d order(s) with their items and delivery address (encrypted)\n", len(ex.Orders))
	fmt.Fprintf(&b, "• consents: offers %s, analytics %s\n", yesNo(ex.Consent.Marketing), yesNo(ex.Consent.Analytics))
	if len(ex.Disclosures) == 0 {
		b.WriteString("\nNobody outside the store's chat has received your data.")
	} else {
		b.WriteString("\nWho received what:\n")
		for i, d := range ex.Disclosures {
			if i == 8 {
				fmt.Fprintf(&b, "…and %d more\n", len(ex.Disclosures)-8)
				break
			}
			name := d.Name
			if name == "" {
				name = d.Party
			}
			legal := ""
			if d.Role != "" {
				legal = fmt.Sprintf(" [%s in %s, transfer basis %s]", strings.ReplaceAll(d.Role, "_", " "), d.Jurisdiction,
					d.TransferBasis)
			}
			fmt.Fprintf(&b, "• %s%s, for %s: %s (%d time(s), last %s)\n", name, legal, strings.ReplaceAll(d.Purpose, "_", " "),
				strings.Join(d.Fields, ", "), d.Count, d.Last.Format("2 Jan 2006"))
			if d.Receipt != "" {
				fmt.Fprintf(&b, "  receipt %s\n", d.Receipt)
			}
			b.WriteString(noticeLines(d.Notices))
		}
		var never []string
		for _, n := range neverShared {
			shared := false
			for _, d := range ex.Disclosures {
				shared = shared || containsStr(d.Fields, n.field)
			}
			if !shared {
				never = append(never, n.words)
			}
		}
		if len(never) > 0 {
			b.WriteString("Never shared: " + strings.Join(never, ", ") + ".")
		}
	}
	b.WriteString("\n\nSay \"delete my data\" to erase it all.")
	return b.String(), nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
