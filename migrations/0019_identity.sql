-- One shopper, every identifier (SPEC §10 "Identity"). WhatsApp names a
-- person by phone number, by business-scoped user id (BSUID), by a parent
-- BSUID that spans the business portfolio, or by several of them at once.
-- Each identifier seen gets its own blind index, HMAC(pseudonym key, kind,
-- value), and all of a shopper's indexes point to the one subject. Each
-- index is unique: an identifier belongs to one shopper at a time, and the
-- system messages user_changed_number / user_changed_user_id move it.
CREATE TABLE subject_identifiers (
    blind_index bytea PRIMARY KEY,
    subject_id  text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    -- wa | bsuid | parent | opaque; unknown for the indexes carried over
    -- from subjects.wa_index (the hash does not say which kind it was).
    kind        text NOT NULL CHECK (kind IN ('wa', 'bsuid', 'parent', 'opaque', 'unknown')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_identifiers_subject ON subject_identifiers (subject_id);

-- What is linkable in existing data: each stored shopper was keyed by one
-- identifier (the phone when WhatsApp gave one, else the BSUID), its sealed
-- identity holds only that one, and the inbox keeps no identity hints, so no
-- stored row proves that a phone shopper and a BSUID shopper are the same
-- person. Every existing index carries over unchanged (the HMAC input is
-- the same), so every shopper keeps being found; the first message that
-- carries a phone and a BSUID together links them from then on.
INSERT INTO subject_identifiers (blind_index, subject_id, kind)
SELECT wa_index, id, 'unknown' FROM subjects WHERE wa_index IS NOT NULL AND erased_at IS NULL
ON CONFLICT DO NOTHING;
-- subjects.wa_index is no longer read or written: one copy of an index.
UPDATE subjects SET wa_index = NULL WHERE wa_index IS NOT NULL;

-- Restriction of processing (GDPR Art. 18, SPEC §5.11): set while the
-- shopper has paused their data ("pause my data"), cleared by "resume".
ALTER TABLE subjects ADD COLUMN restricted_at timestamptz;
