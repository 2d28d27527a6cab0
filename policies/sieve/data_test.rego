package sieve_test

# Invariants of the policy data (data.json beside this file). The release
# rules trust the data; these tests keep the data honest. The Go engine
# checks the structural ones again whenever it loads a policy directory.

_grants contains [purpose, kind, field, transform] if {
	some purpose, p in data.sieve.purposes
	some kind, g in p.parties
	some field, transform in g.fields
}

test_no_grant_releases_a_retailer_internal_field if {
	bad := {[p, k, f] | some [p, k, f, _] in _grants; data.sieve.fields[f].internal}
	bad == set()
}

test_every_granted_field_is_in_the_catalogue if {
	bad := {f | some [_, _, f, _] in _grants; not data.sieve.fields[f]}
	bad == set()
}

test_every_transform_releases_something if {
	# "drop" is what an absent field means; a grant of it would be a lie.
	bad := {[p, k, f, t] | some [p, k, f, t] in _grants; not t in {"keep", "mask", "generalise", "pseudonym"}}
	bad == set()
}

test_subject_id_is_only_ever_pseudonymous if {
	ts := {t | some [_, _, "customer.ref", t] in _grants}
	ts == {"pseudonym"}
}

test_retail_side_never_gets_name_or_chat if {
	bad := {[p, k, f] |
		some [p, k, f, _] in _grants
		data.sieve.party_kinds[k].side == "retail"
		f in {"customer.profile_name", "chat"}
	}
	bad == set()
}

test_phone_reaches_the_retail_side_masked_at_most if {
	# (The shopper is the phone's owner: their own export holds it.)
	ts := {[k, t] | some [_, k, "customer.phone", t] in _grants; data.sieve.party_kinds[k].side != "oversight"; k != "shopper"}
	ts == {["payments", "mask"]}
}

# The oversight side (officers, compliance clients) receives a shopper's
# data only to answer that shopper's own request, and never for anything
# else; no other side may use that purpose but the shopper, to whom their
# own export goes ("export my data").
test_oversight_receives_only_for_the_shoppers_own_request if {
	bad := {[p, k] |
		some [p, k, _, _] in _grants
		data.sieve.party_kinds[k].side == "oversight"
		p != "data_subject_request"
	}
	bad == set()
	others := {k | some k, _ in data.sieve.purposes.data_subject_request.parties; data.sieve.party_kinds[k].side != "oversight"}
	others == {"shopper"}
}

test_every_purpose_needs_the_notice if {
	bad := {p |
		some p, purpose in data.sieve.purposes
		not "notice" in purpose.consent
		not purpose.answers_rights_request
	}
	bad == set()
}

# Only a legal obligation to answer the shopper's own request may go
# without the notice, and only to the oversight side or the shopper.
test_only_rights_requests_go_without_the_notice if {
	bad := {p |
		some p, purpose in data.sieve.purposes
		purpose.answers_rights_request
		some k, _ in purpose.parties
		not _oversight_rights_request(purpose, k)
	}
	bad == set()
}

_oversight_rights_request(purpose, k) if {
	purpose.lawful_basis == "legal_obligation"
	data.sieve.party_kinds[k].side == "oversight"
}

# The shopper's own chat: a rights answer goes to the data subject too.
_oversight_rights_request(purpose, "shopper") if {
	purpose.lawful_basis == "legal_obligation"
}

test_consent_based_purposes_need_an_opt_in if {
	bad := {p |
		some p, purpose in data.sieve.purposes
		purpose.lawful_basis == "consent"
		count({c | some c in purpose.consent} - {"notice"}) == 0
	}
	bad == set()
}

test_every_lawful_basis_is_declared if {
	bad := {p | some p, purpose in data.sieve.purposes; not data.sieve.lawful_bases[purpose.lawful_basis]}
	bad == set()
}

test_every_field_category_has_a_retention_period if {
	bad := {f | some f, field in data.sieve.fields; not data.sieve.retention[field.category]}
	bad == set()
}

test_retention_is_at_most_three_years if {
	# DPDP Rules, Third Schedule: 3 years after the last interaction; only
	# a category a law keeps longer (a legal minimum under a hold) exceeds it.
	bad := {c | some c, r in data.sieve.retention; r.days > 1095; r.days > object.get(r, "legal_minimum_days", 0)}
	bad == set()
	data.sieve.retention.chat.days < data.sieve.retention.orders.days
}

test_delivery_is_open_only_out_for_delivery if {
	data.sieve.purposes.delivery.states == ["out_for_delivery"]
}

test_only_known_party_kinds_get_grants if {
	bad := {k | some [_, k, _, _] in _grants; not data.sieve.party_kinds[k]}
	bad == set()
	not _grants_to_broker_side
}

_grants_to_broker_side if {
	some [_, k, _, _] in _grants
	data.sieve.party_kinds[k].side == "broker"
}

test_invoices_are_held_for_the_tax_law if {
	# CGST Act s.36: 72 months, through an erasure.
	data.sieve.retention.invoice.legal_minimum_days >= 2190
	data.sieve.retention.invoice.hold
}
