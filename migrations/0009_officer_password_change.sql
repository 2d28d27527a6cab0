-- An officer's password issued by the operator (`brokerctl officer create`,
-- or `--reset`) is one-time: it was shown on a terminal and may have
-- travelled by chat or e-mail, so the first sign-in with it leads only to
-- choosing a new password, and nothing else of the dashboard or the
-- compliance API opens until then. Officers who exist already hold
-- operator-issued passwords too: the default marks them.

ALTER TABLE officers ADD COLUMN password_temporary boolean NOT NULL DEFAULT true;
