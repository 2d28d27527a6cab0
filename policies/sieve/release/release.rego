# METADATA
# title: Release decisions
# description: |
#   Decides which fields of a record may cross between the messaging side
#   (the shopper's chat) and the retail side (retailer, logistics, payments,
#   analytics), for one declared purpose, and with which transform.
#
#   The input never carries record values, only the request's shape:
#   party {id, kind, role, agreement, agreement_expires, jurisdiction,
#   transfer_basis}, purpose, scopes, consent {notice, marketing,
#   analytics, child}, restricted (the shopper paused processing, GDPR
#   Art. 18), state (the order's status), fields, subject {jurisdiction}
#   and today (YYYY-MM-DD). The Go engine evaluates
#   data.sieve.release.decision and the broker caches the answer per input,
#   so the policy must stay a pure function of input and data.
#
#   Everything is denied unless data.sieve.purposes grants it. The rules use
#   object lookups and set operations only (no nested iteration over data),
#   so a decision costs the same whatever the size of the policy data.
# scope: package
package sieve.release

# The purpose asked for, as declared in data.sieve.purposes.
_purpose := data.sieve.purposes[input.purpose]

# What the purpose grants to the asking party's kind: scopes and fields.
_grant := _purpose.parties[input.party.kind]

# Scopes the grant needs that the party does not hold.
_missing_scopes := {s | some s in _grant.scopes} - {s | some s in input.scopes}

# The privacy notice is needed, whatever the data says: a purpose whose
# consent list is lost or mistyped must fail closed, not open. The one
# exception is answering the shopper's own rights request (access,
# portability): the broker owes that answer whether or not they ever
# accepted the notice, so a purpose that says so explicitly, on the
# legal_obligation basis, needs only the consents it lists.
_needed_consent := {c | some c in _purpose.consent} if {
	_purpose.answers_rights_request == true
	_purpose.lawful_basis == "legal_obligation"
} else := {c | some c in _purpose.consent} | {"notice"}

_given_consent contains c if {
	some c, given in input.consent
	given == true
}

_missing_consent := _needed_consent - _given_consent

# A child (DPDP Act s. 9(3)) is never tracked, monitored or targeted:
# marketing and analytics are closed to them whatever the consent flags or
# the data say, and so is any purpose that needs those opt-ins.
_child_barred if {
	input.consent.child == true
	input.purpose in {"marketing", "analytics"}
}

_child_barred if {
	input.consent.child == true
	some c in _purpose.consent
	c in {"marketing", "analytics"}
}

# Restriction of processing (GDPR Art. 18, SPEC §5.11): while the shopper
# has paused their data, only a release the law requires passes, that is
# purpose legal_obligation or a purpose on that lawful basis (answering the
# shopper's own rights request). Anything but an explicit false counts as
# restricted only when it is true: a missing flag is an unrestricted
# shopper, as before the flag existed.
_restricted if {
	input.restricted == true
	not _restriction_exempt
}

_restriction_exempt if input.purpose == "legal_obligation"

_restriction_exempt if _purpose.lawful_basis == "legal_obligation"

# A purpose without a states list is open in every state (including none,
# for subject-level data requests); otherwise only in the listed ones.
_state_open if not _purpose.states

_state_open if input.state in _purpose.states

# Inputs named in reasons, "" when absent: sprintf of an undefined value is
# undefined, and a reason must exist whenever the purpose is closed. The
# purpose is only named once the data knows it: an unknown one is whatever
# a caller sent, and reasons end up in the audit log.
default _kind_name := ""

_kind_name := input.party.kind

default _state_name := ""

_state_name := input.state

# The first failed check, in the order a reader would ask them. An else
# chain gives exactly one reason and lets later checks assume earlier ones;
# it always has a value (the default when every check passes), and is only
# read when allow is false.
default _deny := "purpose is closed"

_deny := "unknown purpose" if {
	not _purpose
} else := "restricted" if {
	_restricted
} else := sprintf("party kind %q may not use purpose %q", [_kind_name, input.purpose]) if {
	not _grant
} else := concat("", ["missing scope: ", concat(", ", sort(_missing_scopes))]) if {
	count(_missing_scopes) > 0
} else := "subject is a child: no tracking or targeted advertising" if {
	_child_barred
} else := concat("", ["missing consent: ", concat(", ", sort(_missing_consent))]) if {
	count(_missing_consent) > 0
} else := sprintf("purpose %q is not open in order state %q", [input.purpose, _state_name]) if {
	not _state_open
} else := _legal_deny if {
	_legal_deny
}

# The recipient's legal registry entry (SPEC §5.10). Each is "" when the
# input does not carry it: the shopper's chat, officers and the system are
# not recipients outside the broker, and a partner registered before the
# registry existed has no role (legacy: the broker treats it as a
# controller, as every deployment did until then).
default _role := ""

_role := input.party.role

default _agreement := ""

_agreement := input.party.agreement

default _expires := ""

_expires := input.party.agreement_expires

default _recipient_at := ""

_recipient_at := input.party.jurisdiction

default _basis := ""

_basis := input.party.transfer_basis

default _shopper_at := ""

_shopper_at := input.subject.jurisdiction

default _today := ""

_today := input.today

# Roles that act on the broker's behalf or jointly with it need a written
# agreement (GDPR Art. 28(3) for a processor, Art. 26(1) for joint
# controllers), in force today. Dates are YYYY-MM-DD, so they compare as
# strings; an agreement is valid through its expiry date. With no date to
# compare against, an expiring agreement fails closed.
_needs_agreement if _role in {"processor", "joint_controller"}

_agreement_expired if {
	_expires != ""
	not _expires >= _today
}

_agreement_expired if {
	_expires != ""
	_today == ""
}

_eea := {c | some c in data.sieve.transfers.eea}

_adequate := {c | some c in data.sieve.transfers.adequacy}

_dpdp_restricted := {c | some c in data.sieve.transfers.dpdp_restricted}

# A transfer: the recipient's jurisdiction is known and differs from the
# shopper's. GDPR Ch. V: from the EEA only to the EEA, an adequacy country,
# or under SCC or BCR (consent, Art. 49(1)(a), is a derogation for
# occasional transfers, not a basis for a routine flow). DPDP §16: from
# India never to a restricted country.
_transfer if {
	_recipient_at != ""
	_shopper_at != ""
	_recipient_at != _shopper_at
}

_transfer_denied := "no_transfer_basis" if {
	_transfer
	_shopper_at in _eea
	not _recipient_at in _eea
	not _recipient_at in _adequate
	not _basis in {"scc", "bcr"}
} else := "restricted_country" if {
	_transfer
	_shopper_at == "IN"
	_recipient_at in _dpdp_restricted
}

# The legal check's denial code, undefined when the registry allows it.
_legal_deny := "no_agreement" if {
	_needs_agreement
	_agreement == ""
} else := "agreement_expired" if {
	_needs_agreement
	_agreement_expired
} else := _transfer_denied

# METADATA
# title: Purpose open
# scope: document
# description: |
#   True when the party's kind may use the purpose, holds the scopes it
#   needs, the shopper gave the consent it needs, and the order's state
#   opens it. Field verdicts still apply on top. Written as the positive
#   conjunction, not as "no denial reason", so that it never depends on a
#   reason string being computable.
default allow := false

allow if {
	_grant
	not _restricted
	count(_missing_scopes) == 0
	count(_missing_consent) == 0
	not _child_barred
	_state_open
	not _legal_deny
}

# METADATA
# title: Denial reason
# scope: document
# description: Why the purpose is closed to this request; "" when allowed.
default reason := ""

reason := _deny if not allow

_asked := {f | some f in input.fields}

_granted := object.keys(_grant.fields)

_not_needed := concat("", ["not needed for ", input.purpose])

# A withheld field's reason: retailer-internal fields are called out, so an
# audit reader sees they were never candidates for release.
_withheld_reason(f) := "retailer-internal field" if {
	data.sieve.fields[f].internal == true
} else := _not_needed if {
	data.sieve.fields[f]
} else := "unknown field"

_released[f] := {"allow": true, "transform": _grant.fields[f], "reason": ""} if some f in (_asked & _granted)

_withheld[f] := {"allow": false, "transform": "drop", "reason": _withheld_reason(f)} if some f in (_asked - _granted)

# METADATA
# title: Field verdicts
# description: |
#   One verdict per asked field: {allow, transform, reason}. When the
#   purpose is closed every field is withheld with the denial reason.
fields := object.union(_withheld, _released) if {
	allow
} else := {f: {"allow": false, "transform": "drop", "reason": reason} | some f in _asked}

# METADATA
# title: Release decision
# description: |
#   The engine's entrypoint: {"allow": bool, "reason": string,
#   "fields": {<field>: {"allow": bool, "transform": string, "reason": string}}}
#   covering every field of input.fields. Transforms are keep, mask,
#   generalise, pseudonym (released) and drop (withheld).
# entrypoint: true
decision := {"allow": allow, "reason": reason, "fields": fields}
