package wire

import (
	"context"
	"time"

	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// Reports builds the reports an auditor asks for from the policy in force
// and the audit log.
type Reports struct{ s *System }

// ProcessingRecord is the GDPR Art. 30 record (policies.ProcessingRecord,
// built from the policy data) with the grievance desk's service level.
type ProcessingRecord struct {
	policies.ProcessingRecord
	// Grievances is the grievance desk's service level (share resolved in
	// time); absent when the record is built without a database.
	Grievances *commerce.SLAReport `json:"grievance_sla,omitempty"`
}

// Processing implements httpapi.Reports.
func (r *Reports) Processing(ctx context.Context) (any, error) {
	return r.Record(ctx)
}

// Record builds the Art. 30 record from the live policy data, the partner
// registry (when the database answers) and the grievance desk.
func (r *Reports) Record(ctx context.Context) (ProcessingRecord, error) {
	rec := ProcessingRecord{ProcessingRecord: r.PolicyRecord(ctx)}
	if r.s.Desk != nil && r.s.DB != nil {
		sla, err := r.s.Desk.SLA(ctx)
		if err != nil {
			return rec, err
		}
		rec.Grievances = &sla
	}
	return rec, nil
}

// PolicyRecord is the Art. 30 record of the policy data and the partner
// registry alone (the dashboard shows the desk's service level itself).
func (r *Reports) PolicyRecord(ctx context.Context) policies.ProcessingRecord {
	in := policies.RecordInput{Now: time.Now(), Revision: r.s.Policy.Revision(),
		Controller: r.s.Config.WhatsApp.StoreName + " (controller), Sieve broker (processor)",
		Home:       commerce.StoreJurisdiction}
	if r.s.DB != nil {
		if ps, err := r.s.DB.Partners().ListPartners(ctx); err == nil {
			in.Partners, in.RegistryRead = ps, true
		}
	}
	return r.s.Policy.Data().ProcessingRecord(in)
}

// With binds the reports to a system.
func (r *Reports) With(s *System) *Reports { r.s = s; return r }
