package sieve.release_test

import data.sieve.release

# The 15 fields of an order record, as the broker asks for them.
_order_fields := [
	"order.id", "order.status", "order.created_at",
	"customer.ref", "customer.phone", "customer.profile_name", "chat",
	"items", "total",
	"delivery.address", "delivery.postal_code", "delivery.slot", "delivery.location",
	"payment.status", "payment.reference_id",
]

_status_update_fields := [
	"status", "eta", "note_to_customer",
	"internal_note", "staff_name", "cost_price", "picker_id", "supplier",
]

_consent_all := {"notice": true, "marketing": true, "analytics": true}

_consent_notice := {"notice": true, "marketing": false, "analytics": false}

_in(kind, purpose, scopes, consent, state) := {
	"party": {"id": "p1", "kind": kind},
	"purpose": purpose,
	"scopes": scopes,
	"consent": consent,
	"state": state,
	"fields": _order_fields,
}

# The fields released, with their transforms.
_released(d) := {f: r.transform | some f, r in d.fields; r.allow}

_withheld(d) := {f: r.reason | some f, r in d.fields; not r.allow}

test_retailer_order_fulfilment_gets_fulfilment_fields_only if {
	d := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
	d.allow
	d.reason == ""
	_released(d) == {
		"order.id": "keep", "order.status": "keep", "order.created_at": "keep",
		"customer.ref": "pseudonym", "items": "keep", "total": "keep",
		"delivery.address": "keep", "delivery.postal_code": "keep", "delivery.slot": "keep",
		"payment.status": "keep",
	}
	_withheld(d) == {
		"customer.phone": "not needed for order_fulfilment",
		"customer.profile_name": "not needed for order_fulfilment",
		"chat": "not needed for order_fulfilment",
		"delivery.location": "not needed for order_fulfilment",
		"payment.reference_id": "not needed for order_fulfilment",
	}
}

test_every_asked_field_gets_a_verdict if {
	d := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
	object.keys(d.fields) == {f | some f in _order_fields}
	every r in d.fields {
		object.keys(r) == {"allow", "transform", "reason"}
	}
}

test_denied_decision_withholds_every_field_with_the_reason if {
	d := release.decision with input as _in("logistics", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
	not d.allow
	d.reason == "party kind \"logistics\" may not use purpose \"order_fulfilment\""
	object.keys(d.fields) == {f | some f in _order_fields}
	every r in d.fields {
		r == {"allow": false, "transform": "drop", "reason": d.reason}
	}
}

test_denials[name] if {
	some name, c in {
		"unknown purpose": {
			"in": _in("retailer", "profiling", ["orders:read"], _consent_all, "placed"),
			"reason": "unknown purpose",
		},
		"empty purpose": {
			"in": _in("retailer", "", ["orders:read"], _consent_all, "placed"),
			"reason": "unknown purpose",
		},
		"officer has no grant": {
			"in": _in("officer", "support", ["data:request", "audit:read"], _consent_all, "placed"),
			"reason": "party kind \"officer\" may not use purpose \"support\"",
		},
		"scope missing": {
			"in": _in("retailer", "order_fulfilment", ["orders:write"], _consent_all, "placed"),
			"reason": "missing scope: orders:read",
		},
		"no scopes at all": {
			"in": _in("payments", "payment", [], _consent_all, "placed"),
			"reason": "missing scope: data:request",
		},
		"notice not accepted": {
			"in": _in(
				"retailer", "order_fulfilment", ["orders:read"],
				{"notice": false, "marketing": true, "analytics": true}, "placed",
			),
			"reason": "missing consent: notice",
		},
		"marketing without opt-in": {
			"in": _in("retailer", "marketing", ["data:request"], _consent_notice, ""),
			"reason": "missing consent: marketing",
		},
		"analytics without opt-in": {
			"in": _in("analytics", "analytics", ["data:request"], {"notice": true, "marketing": true, "analytics": false}, ""),
			"reason": "missing consent: analytics",
		},
		"no consent at all names each": {
			"in": _in("analytics", "analytics", ["data:request"], {}, ""),
			"reason": "missing consent: analytics, notice",
		},
		"delivery before out_for_delivery": {
			"in": _in("logistics", "delivery", ["delivery:read"], _consent_notice, "packed"),
			"reason": "purpose \"delivery\" is not open in order state \"packed\"",
		},
		"delivery after delivered": {
			"in": _in("logistics", "delivery", ["delivery:read"], _consent_notice, "delivered"),
			"reason": "purpose \"delivery\" is not open in order state \"delivered\"",
		},
		"retailer may not use delivery": {
			"in": _in("retailer", "delivery", ["delivery:read", "orders:read"], _consent_notice, "out_for_delivery"),
			"reason": "party kind \"retailer\" may not use purpose \"delivery\"",
		},
	}
	d := release.decision with input as c["in"]
	d.allow == false
	d.reason == c.reason
}

test_checks_run_in_order_purpose_kind_scope_consent_state if {
	# Everything is wrong: the scope is reported first after the kind.
	d := release.decision with input as _in("logistics", "delivery", [], {}, "placed")
	d.reason == "missing scope: delivery:read"

	e := release.decision with input as _in("logistics", "delivery", ["delivery:read"], {}, "placed")
	e.reason == "missing consent: notice"
}

test_logistics_gets_delivery_view_while_out_for_delivery if {
	d := release.decision with input as _in(
		"logistics", "delivery", ["delivery:read"],
		_consent_notice, "out_for_delivery",
	)
	d.allow
	_released(d) == {
		"order.id": "keep", "customer.ref": "pseudonym", "items": "keep",
		"delivery.address": "keep", "delivery.postal_code": "keep",
		"delivery.slot": "keep", "delivery.location": "keep",
	}
	_withheld(d)["customer.phone"] == "not needed for delivery"
}

test_payments_gets_masked_phone if {
	d := release.decision with input as _in("payments", "payment", ["data:request"], _consent_notice, "placed")
	d.allow
	_released(d) == {
		"order.id": "keep", "customer.ref": "pseudonym", "customer.phone": "mask",
		"total": "keep", "payment.status": "keep", "payment.reference_id": "keep",
	}
}

test_support_gets_order_and_items if {
	d := release.decision with input as _in("retailer", "support", ["data:request"], _consent_notice, "delivered")
	d.allow
	_released(d) == {"order.id": "keep", "order.status": "keep", "customer.ref": "pseudonym", "items": "keep"}
}

test_marketing_with_opt_in_gets_pseudonym_and_district if {
	every kind in ["retailer", "analytics"] {
		d := release.decision with input as _in(kind, "marketing", ["data:request"], _consent_all, "")
		d.allow
		_released(d) == {"customer.ref": "pseudonym", "delivery.postal_code": "generalise"}
	}
}

test_analytics_with_opt_in_gets_generalised_fields if {
	d := release.decision with input as _in("analytics", "analytics", ["data:request"], _consent_all, "delivered")
	d.allow
	_released(d) == {
		"order.created_at": "generalise", "customer.ref": "pseudonym", "items": "keep",
		"total": "generalise", "delivery.postal_code": "generalise",
	}
}

test_shopper_gets_status_and_eta_never_internal_fields if {
	d := release.decision with input as {
		"party": {"id": "chat", "kind": "shopper"},
		"purpose": "order_fulfilment",
		"scopes": [],
		"consent": _consent_notice,
		"state": "packed",
		"fields": _status_update_fields,
	}
	d.allow
	_released(d) == {"status": "keep", "eta": "keep", "note_to_customer": "keep"}
	_withheld(d) == {
		"internal_note": "retailer-internal field",
		"staff_name": "retailer-internal field",
		"cost_price": "retailer-internal field",
		"picker_id": "retailer-internal field",
		"supplier": "retailer-internal field",
	}
}

test_shopper_does_not_get_the_order_record if {
	d := release.decision with input as _in("shopper", "order_fulfilment", [], _consent_notice, "placed")
	d.allow
	_released(d) == {}
}

test_unknown_field_is_withheld if {
	i := object.union(
		_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed"),
		{"fields": ["order.id", "customer.aadhaar"]},
	)
	d := release.decision with input as i
	d.fields["customer.aadhaar"] == {"allow": false, "transform": "drop", "reason": "unknown field"}
	d.fields["order.id"].allow
}

test_no_fields_asked_is_an_empty_verdict if {
	i := object.union(
		_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed"),
		{"fields": []},
	)
	d := release.decision with input as i
	d.allow
	d.fields == {}
}

test_missing_input_is_denied if {
	d := release.decision with input as {}
	not d.allow
	d.reason == "unknown purpose"
	d.fields == {}
}

test_partial_inputs_are_denied[name] if {
	full := _in("logistics", "delivery", ["delivery:read"], _consent_notice, "out_for_delivery")
	some name, c in {
		"no state": {"drop": "state", "reason": "purpose \"delivery\" is not open in order state \"\""},
		"no party": {"drop": "party", "reason": "party kind \"\" may not use purpose \"delivery\""},
		"no scopes": {"drop": "scopes", "reason": "missing scope: delivery:read"},
		"no consent": {"drop": "consent", "reason": "missing consent: notice"},
		"no purpose": {"drop": "purpose", "reason": "unknown purpose"},
	}
	d := release.decision with input as object.remove(full, {c.drop})
	d.allow == false
	d.reason == c.reason
	every r in d.fields {
		r == {"allow": false, "transform": "drop", "reason": c.reason}
	}
}

test_without_policy_data_everything_is_denied if {
	d := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
		with data.sieve.purposes as {}
	not d.allow
	every r in d.fields {
		not r.allow
	}
}

test_notice_is_needed_even_if_data_forgets_it if {
	purposes := {"order_fulfilment": {"parties": {"retailer": {"scopes": [], "fields": {"order.id": "keep"}}}}}
	d := release.decision with input as _in("retailer", "order_fulfilment", [], {"notice": false}, "placed")
		with data.sieve.purposes as purposes
	not d.allow
	d.reason == "missing consent: notice"

	e := release.decision with input as _in("retailer", "order_fulfilment", [], {"notice": true}, "placed")
		with data.sieve.purposes as purposes
	e.allow
	e.fields["order.id"] == {"allow": true, "transform": "keep", "reason": ""}
}

test_empty_states_list_closes_the_purpose if {
	purposes := {"support": {
		"consent": ["notice"], "states": [],
		"parties": {"retailer": {"scopes": [], "fields": {"order.id": "keep"}}},
	}}
	d := release.decision with input as _in("retailer", "support", [], _consent_notice, "placed")
		with data.sieve.purposes as purposes
	not d.allow
}

test_consent_must_be_literally_true if {
	d := release.decision with input as _in(
		"retailer", "marketing", ["data:request"],
		{"notice": true, "marketing": "yes"}, "",
	)
	d.reason == "missing consent: marketing"
}

# A shopper who never accepted the notice still has the right of access:
# the answer to their own request is owed whatever their consent says.
test_rights_request_is_answered_without_the_notice if {
	d := release.decision with input as _in("officer", "data_subject_request", [], {}, "")
	d.allow
	d.fields["customer.phone"].allow
}

# Every other purpose still fails closed without the notice.
test_other_purposes_still_need_the_notice if {
	d := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], {}, "placed")
	not d.allow
	d.reason == "missing consent: notice"
}

_consent_child_all := {"notice": true, "marketing": true, "analytics": true, "child": true}

test_child_never_marketed_or_analysed_whatever_the_flags if {
	every c in [
		_in("retailer", "marketing", ["data:request"], _consent_child_all, ""),
		_in("analytics", "marketing", ["data:request"], _consent_child_all, ""),
		_in("analytics", "analytics", ["data:request"], _consent_child_all, ""),
	] {
		d := release.decision with input as c
		d.allow == false
		d.reason == "subject is a child: no tracking or targeted advertising"
		count(_released(d)) == 0
	}
}

test_child_order_is_still_fulfilled if {
	d := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], _consent_child_all, "placed")
	d.allow
	_released(d)["delivery.address"] == "keep"
}

test_child_barred_from_any_purpose_needing_an_opt_in if {
	d := release.decision with input as _in("retailer", "offers", ["data:request"], _consent_child_all, "")
		with data.sieve.purposes.offers as {
			"lawful_basis": "consent", "consent": ["notice", "marketing"],
			"parties": {"retailer": {"scopes": ["data:request"], "fields": {"customer.ref": "pseudonym"}}},
		}
	d.allow == false
	d.reason == "subject is a child: no tracking or targeted advertising"
}

# Restriction (GDPR Art. 18): a paused shopper's data goes nowhere but
# where the law requires, whatever the consent, scopes or state.
_restricted_in(kind, purpose, scopes, consent, state) := object.union(_in(kind, purpose, scopes, consent, state), {"restricted": true})

test_restricted_denies_fulfilment if {
	d := release.decision with input as _restricted_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
	not d.allow
	d.reason == "restricted"
	every r in d.fields {
		not r.allow
		r.reason == "restricted"
	}
}

test_restricted_denies_marketing_with_consent if {
	d := release.decision with input as _restricted_in("retailer", "marketing", ["data:request"], _consent_all, "")
	not d.allow
	d.reason == "restricted"
}

test_restricted_denies_delivery if {
	d := release.decision with input as _restricted_in("logistics", "delivery", ["delivery:read"], _consent_notice, "out_for_delivery")
	not d.allow
	d.reason == "restricted"
}

test_restricted_allows_the_rights_answer if {
	unrestricted := release.decision with input as _in("compliance", "data_subject_request", ["subjects:write"], _consent_notice, "")
	d := release.decision with input as _restricted_in("compliance", "data_subject_request", ["subjects:write"], _consent_notice, "")
	d == unrestricted
}

test_unrestricted_flag_false_changes_nothing if {
	plain := release.decision with input as _in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed")
	d := release.decision with input as object.union(_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed"), {"restricted": false})
	d == plain
	d.allow
}

test_restricted_unknown_purpose_still_unknown if {
	d := release.decision with input as _restricted_in("retailer", "nope", ["orders:read"], _consent_notice, "placed")
	d.reason == "unknown purpose"
}

# The legal registry (SPEC §5.10): a retailer's order_fulfilment request
# with the recipient's registry entry and the shopper's jurisdiction.
_legal_in(party, shopper_at) := object.union(
	_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "placed"),
	{
		"party": object.union({"id": "p1", "kind": "retailer"}, party),
		"subject": {"jurisdiction": shopper_at},
		"today": "2026-12-04",
	},
)

test_legal_denials[name] if {
	some name, c in {
		"processor without an agreement": {
			"party": {"role": "processor", "jurisdiction": "IN"}, "shopper": "IN", "reason": "no_agreement",
		},
		"joint controller without an arrangement": {
			"party": {"role": "joint_controller", "jurisdiction": "IN"}, "shopper": "IN", "reason": "no_agreement",
		},
		"processor whose agreement expired yesterday": {
			"party": {"role": "processor", "agreement": "DPA-7", "agreement_expires": "2026-12-03", "jurisdiction": "IN"},
			"shopper": "IN", "reason": "agreement_expired",
		},
		"EEA shopper, recipient in India without SCC": {
			"party": {"role": "controller", "jurisdiction": "IN", "transfer_basis": "none"},
			"shopper": "DE", "reason": "no_transfer_basis",
		},
		"EEA shopper, recipient in India on consent alone": {
			"party": {"role": "controller", "jurisdiction": "IN", "transfer_basis": "consent"},
			"shopper": "FR", "reason": "no_transfer_basis",
		},
	}
	d := release.decision with input as _legal_in(c.party, c.shopper)
	not d.allow
	d.reason == c.reason
	every r in d.fields {
		r == {"allow": false, "transform": "drop", "reason": c.reason}
	}
}

test_legal_allowed[name] if {
	some name, c in {
		"legacy partner without a registry entry": {"party": {}, "shopper": "IN"},
		"controller without an agreement": {"party": {"role": "controller", "jurisdiction": "IN"}, "shopper": "IN"},
		"processor whose agreement ends today": {
			"party": {"role": "processor", "agreement": "DPA-7", "agreement_expires": "2026-12-04", "jurisdiction": "IN"},
			"shopper": "IN",
		},
		"processor with an open-ended agreement": {"party": {"role": "processor", "agreement": "DPA-7"}, "shopper": "IN"},
		"EEA shopper, recipient in India under SCC": {
			"party": {"role": "processor", "agreement": "DPA-7", "jurisdiction": "IN", "transfer_basis": "scc"},
			"shopper": "DE",
		},
		"EEA shopper, recipient in India under BCR": {
			"party": {"role": "controller", "jurisdiction": "IN", "transfer_basis": "bcr"}, "shopper": "IE",
		},
		"EEA shopper, recipient in the EEA": {"party": {"role": "controller", "jurisdiction": "NL"}, "shopper": "DE"},
		"EEA shopper, recipient in an adequacy country": {
			"party": {"role": "controller", "jurisdiction": "JP", "transfer_basis": "adequacy"}, "shopper": "DE",
		},
		"Indian shopper, recipient abroad, nothing restricted": {
			"party": {"role": "controller", "jurisdiction": "SG", "transfer_basis": "none"}, "shopper": "IN",
		},
	}
	d := release.decision with input as _legal_in(c.party, c.shopper)
	d.allow
	d.reason == ""
}

test_restricted_country_for_an_indian_shopper if {
	x := _legal_in({"role": "controller", "jurisdiction": "XK", "transfer_basis": "scc"}, "IN")
	d := release.decision with input as x with data.sieve.transfers.dpdp_restricted as ["XK"]
	not d.allow
	d.reason == "restricted_country"

	# Only Indian shoppers' data is bound by the DPDP list.
	other := release.decision with input as object.union(x, {"subject": {"jurisdiction": "SG"}})
		with data.sieve.transfers.dpdp_restricted as ["XK"]
	other.allow
}

test_expiring_agreement_without_a_date_fails_closed if {
	x := object.remove(_legal_in({"role": "processor", "agreement": "DPA-7", "agreement_expires": "2027-01-01"}, "IN"), ["today"])
	d := release.decision with input as x
	not d.allow
	d.reason == "agreement_expired"
}

test_earlier_denials_keep_their_reason if {
	x := object.union(_legal_in({"role": "processor"}, "IN"), {"scopes": []})
	d := release.decision with input as x
	d.reason == "missing scope: orders:read"
}

# The structured address (SPEC §9): a store gets the locality and landmark,
# never the house or building; the courier everything, while out for
# delivery only.
_address_fields := [
	"delivery.house", "delivery.building", "delivery.landmark", "delivery.locality",
	"delivery.city", "delivery.state",
]

test_store_never_gets_the_house if {
	x := object.union(_in("retailer", "order_fulfilment", ["orders:read"], _consent_notice, "routing"), {"fields": _address_fields})
	d := release.decision with input as x
	_released(d) == {"delivery.landmark": "keep", "delivery.locality": "keep", "delivery.city": "keep", "delivery.state": "keep"}
	_withheld(d) == {"delivery.house": "not needed for order_fulfilment", "delivery.building": "not needed for order_fulfilment"}
}

test_courier_gets_the_full_address_only_out_for_delivery if {
	x := object.union(_in("logistics", "delivery", ["delivery:read"], _consent_notice, "out_for_delivery"), {"fields": _address_fields})
	d := release.decision with input as x
	object.keys(_released(d)) == {f | some f in _address_fields}
	y := object.union(x, {"state": "packed"})
	not release.decision.allow with input as y
}
