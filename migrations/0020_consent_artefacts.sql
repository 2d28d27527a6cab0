-- Consent as artefacts (SPEC §10), the shopper's language, and children.
--
-- subjects gains the shopper's chosen language (a plain ISO 639 code: not
-- an identifier), the version (SHA-256) of the notice they accepted, and
-- whether they said they are under 18. A shopper whose notice_sha256 is not
-- the current notice's is asked again at their next message; '' is the
-- unversioned notice every shopper before this migration accepted.
ALTER TABLE subjects
    ADD COLUMN consent_child boolean NOT NULL DEFAULT false,
    ADD COLUMN lang          text    NOT NULL DEFAULT 'en' CHECK (lang ~ '^[a-z]{2,3}$'),
    ADD COLUMN notice_sha256 text    NOT NULL DEFAULT '';

-- One row per consent given or withdrawn, language chosen or parental
-- approval: never updated, kept as proof of consent (DPDP Act s. 6(10)).
-- No personal data: the subject is the internal id, evidence a keyed hash
-- of the WhatsApp message id that carried the answer.
CREATE TABLE consent_artefacts (
    id            text PRIMARY KEY,                  -- cna_…
    subject_id    text NOT NULL,
    notice_sha256 text NOT NULL,
    lang          text NOT NULL,
    purposes      text[] NOT NULL,
    status        text NOT NULL CHECK (status IN ('given', 'withdrawn')),
    at            timestamptz NOT NULL,
    evidence      text NOT NULL,                     -- ProviderKey(subject, wamid); '' when none
    method        text NOT NULL CHECK (method IN ('chat_reply', 'chat_command', 'parent_whatsapp', 'migration', 'erasure')),
    reason        text NOT NULL DEFAULT ''           -- a code: withdrawal, objection, minor, parent_declined…
);
CREATE INDEX consent_artefacts_subject ON consent_artefacts (subject_id, at, id);

-- A minor's parent (DPDP Act s. 9, Rule 10): the parent's WhatsApp number
-- as a keyed blind index (to recognise their answer) and sealed under the
-- child's data key; erased with the child.
CREATE TABLE guardians (
    id           text PRIMARY KEY,                   -- gdn_…
    subject_id   text NOT NULL,                      -- the child
    parent_index bytea NOT NULL,
    sealed       bytea NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'approved', 'declined', 'withdrawn')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX guardians_open ON guardians (subject_id) WHERE status IN ('pending', 'approved');
CREATE INDEX guardians_parent ON guardians (parent_index) WHERE status IN ('pending', 'approved');

-- Existing consents become artefacts of the unversioned notice, so every
-- shopper's consent history starts at what they had agreed to.
INSERT INTO consent_artefacts (id, subject_id, notice_sha256, lang, purposes, status, at, evidence, method)
SELECT 'cna_m' || md5(id), id, '', 'en',
       ARRAY['notice'] || CASE WHEN consent_marketing THEN ARRAY['marketing'] ELSE ARRAY[]::text[] END
                       || CASE WHEN consent_analytics THEN ARRAY['analytics'] ELSE ARRAY[]::text[] END,
       'given', coalesce(consent_updated_at, created_at), '', 'migration'
FROM subjects WHERE consent_notice AND erased_at IS NULL;
