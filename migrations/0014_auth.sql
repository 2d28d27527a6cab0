-- A per-partner "not before" for access tokens. RFC 9068 tokens cannot be
-- recalled one by one, so the broker refuses every token of the partner
-- issued (iat) before this instant: disabling a partner sets it, so a
-- token minted before `partner disable` stays dead after `partner enable`,
-- and `partner rotate-secret --revoke-tokens` sets it, so the tokens got
-- with the old secret die at once rather than at their exp. NULL: none.
ALTER TABLE partners ADD COLUMN not_before timestamptz;

-- Partners disabled already may hold tokens minted before their disable;
-- without this they would work again after an enable.
UPDATE partners SET not_before = now() WHERE disabled;

-- Officer sign-in: progressive delays instead of a lock. A run of failed
-- sign-ins under a key (a hash of the name tried, or of the client
-- address) lasts until a window passes without a new failure, and each
-- failure past a free few doubles the wait before the next attempt is
-- checked; the wait counts from the last failure, which rows now keep.
ALTER TABLE officer_login_failures ADD COLUMN last_failure timestamptz;
UPDATE officer_login_failures SET last_failure = window_start;
ALTER TABLE officer_login_failures ALTER COLUMN last_failure SET NOT NULL;
CREATE INDEX officer_login_failures_last ON officer_login_failures (last_failure);
