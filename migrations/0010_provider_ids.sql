-- Provider ids are personal data (SPEC §5.8): a WhatsApp message id is
-- base64 of a structure holding the phone number. From now on they are
-- stored only as keyed hashes, "k:" + base32(HMAC(sub-key, subject, id)):
-- inbox.dedup_key, message_status.provider_id, outbox.provider_id.
--
-- The HMAC key is not in the database, so converting what is stored cannot
-- happen here: brokerd (at start) and `brokerctl migrate` run the
-- conversion right after the migrations, once, under an advisory lock, and
-- record it in app_upgrades (broker/postgres UpgradeProviderIDs). What needs no
-- key is done here.
CREATE TABLE app_upgrades (
    name    text PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now()
);

-- Processed events older than Meta's 7-day redelivery window deduplicate
-- nothing any more: their plaintext keys go now rather than be hashed.
DELETE FROM inbox WHERE processed_at IS NOT NULL AND received_at < now() - interval '7 days'
    AND dedup_key NOT LIKE 'k:%';

-- Erased shoppers keep no provider id, and no subject id on the outbox;
-- the last words to an erased shopper (vault-sealed messages) name nobody.
DELETE FROM message_status WHERE subject_id IS NULL
    OR subject_id IN (SELECT id FROM subjects WHERE erased_at IS NOT NULL);
UPDATE outbox SET provider_id = NULL, subject_id = NULL
    WHERE subject_id IN (SELECT id FROM subjects WHERE erased_at IS NOT NULL)
       OR (vault_sealed AND kind = 'whatsapp');

-- Nothing left to convert (a new database): record the conversion as done.
INSERT INTO app_upgrades (name)
SELECT '0010_provider_ids'
WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE dedup_key NOT LIKE 'k:%')
  AND NOT EXISTS (SELECT 1 FROM message_status WHERE provider_id NOT LIKE 'k:%')
  AND NOT EXISTS (SELECT 1 FROM outbox WHERE provider_id NOT LIKE 'k:%');

COMMENT ON COLUMN inbox.dedup_key IS 'k: + keyed hash of the subject and "m:<wamid>", "s:<id>:<status>" or "p:<id>:<status>:<txn>"';
COMMENT ON COLUMN message_status.provider_id IS 'k: + keyed hash of the subject and the wamid';
COMMENT ON COLUMN outbox.provider_id IS 'k: + keyed hash of the subject and the wamid the Send API returned';
