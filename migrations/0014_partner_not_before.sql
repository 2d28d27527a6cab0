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
