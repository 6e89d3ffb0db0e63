-- Signing in to the pages (callcenter/auth.py, docs/auth.md): a password per user and session cookies.
-- A user without a password (token-only, for API clients) keeps working with its bearer token.
ALTER TABLE users ADD COLUMN password_hash TEXT;      -- "scrypt$n$r$p$salt_b64$hash_b64", NULL: token only
ALTER TABLE users ADD COLUMN password_set_at TEXT;    -- ISO 8601 UTC

-- One row per signed-in browser. Only the SHA-256 of the cookie value is stored: a copy of the
-- database does not let anyone sign in. expires_at is the earlier of created_at + the maximum age
-- and last_seen_at + the idle timeout; it moves forward as the session is used.
CREATE TABLE sessions (
    id_sha256    TEXT PRIMARY KEY,                  -- hex SHA-256 of the cc_session cookie value
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    address      TEXT NOT NULL DEFAULT '',          -- the client address it was created from
    user_agent   TEXT NOT NULL DEFAULT ''           -- (truncated)
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
