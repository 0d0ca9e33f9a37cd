-- Uploads the pipeline refused after the API accepted them (bytes that pass the magic-byte check
-- but do not decode, say): copied from the dead-letter topic by `picnix serve`, so such a post
-- reads as rejected, with the reason, instead of pending for ever. Its position in the topic is
-- kept in sink_offsets (consumer 'api-rejections') in the same transaction.
CREATE TABLE api_rejections (
    post_id    text PRIMARY KEY,
    stage      text NOT NULL,
    reason     text NOT NULL,
    detail     text NOT NULL,
    failed_at  text NOT NULL
);
