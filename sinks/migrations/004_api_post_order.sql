-- The HTTP API lists posts newest decision first and pages by (decided_seq, post_id): in that
-- order a page reads its own rows from the index instead of sorting every post (10 ms at 8,000
-- posts, linear beyond).
CREATE INDEX posts_decided_order_idx ON posts (decided_seq DESC, post_id DESC);
