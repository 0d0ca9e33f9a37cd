-- The web page's sign-ins (written by `picnix serve`, never by a sink). The browser holds an
-- opaque random id in an HttpOnly cookie; only its SHA-256 is kept, so a leaked table signs no
-- one in. Each session has its own CSRF token, which every state-changing form must carry.
-- Revoking the key ends its sessions (they are read joined with a live key).
CREATE TABLE web_sessions (
    session_hash  text PRIMARY KEY,
    key_id        text NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
