package commerce

import (
	"context"
	"encoding/json"

	"github.com/sieve-broker/sieve/audit"
	"github.com/sieve-broker/sieve/broker"
)

// ExportFilename is the name of the export document sent in the chat.
const ExportFilename = "my-data.json"

// exportData answers "export my data" (GDPR Art. 20, SPEC §10): the
// shopper's own data as a JSON document in the chat.
func (c *Conversation) exportData(ctx context.Context, in Inbound, act Actions) ([]Reply, bool, error) {
	if in.Kind != InText || !isExportCommand(in.Text) {
		return nil, false, nil
	}
	doc, err := act.ExportData(ctx)
	if err != nil {
		if broker.ErrorCode(err) == broker.EDenied {
			return []Reply{{Kind: ReplyText, Body: "We could not prepare your export just now. Say \"my data\" to see " +
				"what we hold, or ask again later."}}, true, nil
		}
		return nil, true, err
	}
	return []Reply{{Kind: ReplyDocument, Body: "Your data: everything we hold about you and who received it, " +
		"as a JSON file you can keep or take elsewhere.",
		Document: &Document{Filename: ExportFilename, MIME: "application/json", Data: doc}}}, true, nil
}

// ExportData implements Actions: the export is a release to the shopper
// through the pipeline (purpose data_subject_request), so it is audited
// and listed in their disclosures like any other.
func (a *actions) ExportData(ctx context.Context) ([]byte, error) {
	if a.s.rights == nil {
		return nil, broker.Errorf(broker.EUnavailable, "export not configured")
	}
	return a.s.rights.ShopperExport(ctx, a.subject)
}

// ShopperExport releases the shopper's data to the shopper themselves
// (party "chat" of kind shopper, purpose data_subject_request) and returns
// the released export as an indented JSON document. A denial is EDenied.
func (r *Rights) ShopperExport(ctx context.Context, subject string) ([]byte, error) {
	ex, d, err := r.ReleaseExport(ctx, subject, broker.Party{ID: "chat", Kind: broker.KindShopper})
	if err != nil {
		return nil, err
	}
	if d.Outcome == audit.OutcomeDenied {
		return nil, broker.Errorf(broker.EDenied, "export denied")
	}
	return json.MarshalIndent(ex, "", "  ")
}
