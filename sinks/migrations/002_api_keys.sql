-- The HTTP API's own state (written by `picnix serve` and `picnix keys create`, never by a sink).

-- Only a key's SHA-256 is kept: the key itself is shown once, when it is created. A platform's
-- keys share its name, so a rotated key keeps seeing the platform's posts.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    name        text NOT NULL CHECK (name <> ''),
    role        text NOT NULL CHECK (role IN ('platform', 'operator')),
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Which platform published each upload through the API (written once Kafka acknowledged it):
-- what scopes a platform key to its own posts, and what a pending post shows.
CREATE TABLE api_uploads (
    post_id              text PRIMARY KEY,
    platform             text NOT NULL,
    key_id               text NOT NULL REFERENCES api_keys (key_id),
    author               text NOT NULL,
    title                text NOT NULL,
    description          text NOT NULL,
    sha256               text NOT NULL,
    byte_size            bigint NOT NULL,
    topic_partition      integer NOT NULL,
    topic_offset         bigint NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_uploads_platform_idx ON api_uploads (platform, post_id);

-- A deletion asked through the API, so the post reads as deleting, then gone, not pending.
CREATE TABLE api_deletions (
    post_id       text PRIMARY KEY,
    key_id        text NOT NULL REFERENCES api_keys (key_id),
    requested_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key: per platform, the body's hash and the answer given, so a retried upload
-- gets the same answer and publishes nothing new, and a reused key with another body is refused.
CREATE TABLE api_idempotency (
    platform     text NOT NULL,
    idem_key     text NOT NULL,
    body_sha256  text NOT NULL,
    post_id      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, idem_key)
);
