package whatsapp

import (
	"fmt"
	"unicode/utf8"
)

// ValidationError describes a Send API request that breaks a Cloud API rule.
// It names the field and the rule, never the field's content.
type ValidationError struct {
	Field   string
	Problem string
}

// Error implements error.
func (e *ValidationError) Error() string {
	return "whatsapp: invalid message: " + e.Field + ": " + e.Problem
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// Validate checks that m is a well-formed Send API request within the Cloud
// API limits: messaging_product "whatsapp"; a recipient that is "+" and 8-15
// digits in To or a BSUID in Recipient; a known type with its payload; and
// the per-type limits on texts, buttons, lists, product lists, order_details
// ([ValidateOrderDetails]) and order_status. A mark-as-read request (status
// "read" with a message_id) is valid without a recipient.
func (m *OutboundMessage) Validate() error {
	if m.MessagingProduct != MessagingProduct {
		return invalid("messaging_product", "must be %q", MessagingProduct)
	}
	if m.Type == "" && m.Status != "" {
		if m.Status != StatusRead || m.MessageID == "" {
			return invalid("status", "a status request needs status \"read\" and message_id")
		}
		return nil
	}
	if m.RecipientType != "" && m.RecipientType != "individual" {
		return invalid("recipient_type", "must be individual")
	}
	switch {
	case m.To != "":
		if p, err := NormalizePhone(m.To); err != nil || p != m.To {
			return invalid("to", "must be \"+\" followed by 8-15 digits")
		}
	case m.Recipient != "":
		if !validBSUID(m.Recipient) {
			return invalid("recipient", "malformed business-scoped user id")
		}
	default:
		return invalid("to", "required")
	}
	if m.Context != nil && m.Context.MessageID == "" {
		return invalid("context.message_id", "required")
	}
	if runes(m.BizOpaqueCallbackData) > MaxCallbackData {
		return invalid("biz_opaque_callback_data", "longer than %d characters", MaxCallbackData)
	}
	payloads := 0
	for _, set := range []bool{m.Text != nil, m.Interactive != nil, m.Template != nil, m.Document != nil} {
		if set {
			payloads++
		}
	}
	if payloads > 1 {
		return invalid("type", "more than one payload object")
	}
	switch m.Type {
	case TypeText:
		if m.Text == nil || m.Text.Body == "" {
			return invalid("text.body", "required")
		}
		if runes(m.Text.Body) > MaxTextBody {
			return invalid("text.body", "longer than %d characters", MaxTextBody)
		}
	case TypeInteractive:
		if m.Interactive == nil {
			return invalid("interactive", "required")
		}
		return m.Interactive.validate()
	case TypeTemplate:
		if m.Template == nil || m.Template.Name == "" {
			return invalid("template.name", "required")
		}
		if m.Template.Language.Code == "" {
			return invalid("template.language.code", "required")
		}
	case TypeDocument:
		return m.Document.validate()
	case "":
		return invalid("type", "required")
	default:
		return invalid("type", "unsupported message type")
	}
	return nil
}

func (in *Interactive) validate() error {
	if in.Header != nil {
		if in.Header.Type != "text" {
			return invalid("interactive.header.type", "only text headers are supported")
		}
		if in.Header.Text == "" || runes(in.Header.Text) > MaxHeaderText {
			return invalid("interactive.header.text", "must be 1-%d characters", MaxHeaderText)
		}
	}
	if in.Footer != nil && (in.Footer.Text == "" || runes(in.Footer.Text) > MaxFooterText) {
		return invalid("interactive.footer.text", "must be 1-%d characters", MaxFooterText)
	}
	body := func(max int, required bool) error {
		if in.Body == nil || in.Body.Text == "" {
			if required {
				return invalid("interactive.body.text", "required")
			}
			return nil
		}
		if runes(in.Body.Text) > max {
			return invalid("interactive.body.text", "longer than %d characters", max)
		}
		return nil
	}
	a := in.Action
	if a == nil {
		return invalid("interactive.action", "required")
	}
	switch in.Type {
	case InteractiveButton:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		return validateButtons(a.Buttons)
	case InteractiveList:
		if err := body(MaxListBody, true); err != nil {
			return err
		}
		return validateList(a)
	case InteractiveProductList:
		if in.Header == nil {
			return invalid("interactive.header", "required for product_list")
		}
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		return validateProductList(a)
	case InteractiveProduct:
		if err := body(MaxInteractiveBody, false); err != nil {
			return err
		}
		if a.CatalogID == "" || a.ProductRetailerID == "" {
			return invalid("interactive.action", "catalog_id and product_retailer_id required")
		}
	case InteractiveCatalogMessage:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		if a.Name != ActionCatalogMessage {
			return invalid("interactive.action.name", "must be catalog_message")
		}
	case InteractiveLocationRequest:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		if a.Name != ActionSendLocation {
			return invalid("interactive.action.name", "must be send_location")
		}
	case InteractiveAddress:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		if a.Name != InteractiveAddress || a.Parameters == nil || a.Parameters.Country != "IN" {
			return invalid("interactive.action", "address_message needs name address_message and country IN")
		}
	case InteractiveOrderDetails:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		if a.Name != ActionReviewAndPay {
			return invalid("interactive.action.name", "must be review_and_pay")
		}
		return ValidateOrderDetails(a.Parameters)
	case InteractiveOrderStatus:
		if err := body(MaxInteractiveBody, true); err != nil {
			return err
		}
		if a.Name != ActionReviewOrder {
			return invalid("interactive.action.name", "must be review_order")
		}
		return validateOrderStatus(a.Parameters)
	default:
		return invalid("interactive.type", "unsupported interactive type")
	}
	return nil
}

func validateButtons(buttons []ReplyButton) error {
	if len(buttons) == 0 || len(buttons) > MaxButtons {
		return invalid("interactive.action.buttons", "must have 1-%d buttons", MaxButtons)
	}
	ids := make(map[string]bool, len(buttons))
	titles := make(map[string]bool, len(buttons))
	for i, b := range buttons {
		f := fmt.Sprintf("interactive.action.buttons[%d]", i)
		if b.Type != "reply" {
			return invalid(f+".type", "must be reply")
		}
		if b.Reply.ID == "" || runes(b.Reply.ID) > MaxButtonID {
			return invalid(f+".reply.id", "must be 1-%d characters", MaxButtonID)
		}
		if b.Reply.Title == "" || runes(b.Reply.Title) > MaxButtonTitle {
			return invalid(f+".reply.title", "must be 1-%d characters", MaxButtonTitle)
		}
		if ids[b.Reply.ID] {
			return invalid(f+".reply.id", "duplicate id")
		}
		if titles[b.Reply.Title] {
			return invalid(f+".reply.title", "duplicate title")
		}
		ids[b.Reply.ID], titles[b.Reply.Title] = true, true
	}
	return nil
}

func validateList(a *Action) error {
	if a.Button == "" || runes(a.Button) > MaxListButton {
		return invalid("interactive.action.button", "must be 1-%d characters", MaxListButton)
	}
	if len(a.Sections) == 0 || len(a.Sections) > MaxListSections {
		return invalid("interactive.action.sections", "must have 1-%d sections", MaxListSections)
	}
	rows := 0
	ids := make(map[string]bool)
	for i, s := range a.Sections {
		f := fmt.Sprintf("interactive.action.sections[%d]", i)
		if len(a.Sections) > 1 && s.Title == "" {
			return invalid(f+".title", "required when there are several sections")
		}
		if runes(s.Title) > MaxSectionTitle {
			return invalid(f+".title", "longer than %d characters", MaxSectionTitle)
		}
		if len(s.ProductItems) > 0 {
			return invalid(f+".product_items", "not allowed in a list")
		}
		if len(s.Rows) == 0 {
			return invalid(f+".rows", "at least one row required")
		}
		for j, r := range s.Rows {
			rf := fmt.Sprintf("%s.rows[%d]", f, j)
			if r.ID == "" || runes(r.ID) > MaxRowID {
				return invalid(rf+".id", "must be 1-%d characters", MaxRowID)
			}
			if ids[r.ID] {
				return invalid(rf+".id", "duplicate id")
			}
			ids[r.ID] = true
			if r.Title == "" || runes(r.Title) > MaxRowTitle {
				return invalid(rf+".title", "must be 1-%d characters", MaxRowTitle)
			}
			if runes(r.Description) > MaxRowDescription {
				return invalid(rf+".description", "longer than %d characters", MaxRowDescription)
			}
		}
		rows += len(s.Rows)
	}
	if rows > MaxListRows {
		return invalid("interactive.action.sections", "more than %d rows in total", MaxListRows)
	}
	return nil
}

func validateProductList(a *Action) error {
	if a.CatalogID == "" {
		return invalid("interactive.action.catalog_id", "required")
	}
	if len(a.Sections) == 0 || len(a.Sections) > MaxProductSections {
		return invalid("interactive.action.sections", "must have 1-%d sections", MaxProductSections)
	}
	products := 0
	for i, s := range a.Sections {
		f := fmt.Sprintf("interactive.action.sections[%d]", i)
		if s.Title == "" || runes(s.Title) > MaxSectionTitle {
			return invalid(f+".title", "must be 1-%d characters", MaxSectionTitle)
		}
		if len(s.Rows) > 0 {
			return invalid(f+".rows", "not allowed in a product list")
		}
		if len(s.ProductItems) == 0 {
			return invalid(f+".product_items", "at least one product required")
		}
		for j, p := range s.ProductItems {
			if p.ProductRetailerID == "" {
				return invalid(fmt.Sprintf("%s.product_items[%d].product_retailer_id", f, j), "required")
			}
		}
		products += len(s.ProductItems)
	}
	if products > MaxProducts {
		return invalid("interactive.action.sections", "more than %d products in total", MaxProducts)
	}
	return nil
}

func validateOrderStatus(p *ActionParameters) error {
	if p == nil {
		return invalid("interactive.action.parameters", "required")
	}
	if !ValidReferenceID(p.ReferenceID) {
		return invalid("interactive.action.parameters.reference_id", "must be 1-35 characters of [A-Za-z0-9_.-]")
	}
	if p.Order == nil {
		return invalid("interactive.action.parameters.order", "required")
	}
	switch p.Order.Status {
	case OrderProcessing, OrderPartiallyShipped, OrderShipped, OrderCompleted, OrderCanceled:
	default:
		return invalid("interactive.action.parameters.order.status", "must be processing, partially_shipped, shipped, completed or canceled")
	}
	if runes(p.Order.Description) > MaxStatusDesc {
		return invalid("interactive.action.parameters.order.description", "longer than %d characters", MaxStatusDesc)
	}
	return nil
}
