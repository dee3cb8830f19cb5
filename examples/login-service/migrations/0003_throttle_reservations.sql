-- Login attempts are reserved (counted) before the password is hashed, and
-- the attempt that reaches a limit sets the lock itself. Keeping the last
-- lockout length lets that one statement double it without POWER(), whose
-- types differ between SQLite and PostgreSQL.
ALTER TABLE login_throttle ADD COLUMN lockout_secs BIGINT NOT NULL DEFAULT 0;

-- The HMAC secret of device cookies (OWASP "Slow Down Online Guessing
-- Attacks with Device Cookies"), created by the first instance to start and
-- shared by every instance on the database. `id` is always 1, so instances
-- bootstrapping at once agree on one secret.
CREATE TABLE device_cookie_secrets (
    id         BIGINT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
