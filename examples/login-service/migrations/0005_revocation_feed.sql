-- Revocations are mirrored in every instance's memory (and published to
-- Redis when configured) instead of queried per request. Without Redis the
-- mirror polls for what changed since its last poll, by `revoked_at`.
ALTER TABLE revoked_access_tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX revoked_access_tokens_revoked_at ON revoked_access_tokens (revoked_at);
CREATE INDEX refresh_families_revoked_at ON refresh_families (revoked_at);

-- "Log out everywhere": every access token of the user issued before
-- `issued_before` is refused until `expires_at` (the last of them expires).
CREATE TABLE subject_revocations (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    issued_before BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT NOT NULL
);
CREATE INDEX subject_revocations_revoked_at ON subject_revocations (revoked_at);
