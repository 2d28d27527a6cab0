-- The retention sweeper deletes sent (or abandoned) outbox items, with their
-- sealed payloads, once their category's period has passed since sending:
-- this index finds them without scanning the whole outbox. Pending items,
-- the sender's hot path, are not in it.
CREATE INDEX outbox_done ON outbox (kind, (COALESCE(sent_at, created_at))) WHERE status IN ('sent', 'dead');
