-- Posts, stored images, clusters, matches and alerts: everything derived from picnix.decisions.
CREATE TABLE clusters (
    cluster_id        text PRIMARY KEY,
    founder_image_id  text NOT NULL,
    member_count      integer NOT NULL DEFAULT 0,
    created_seq       bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE images (
    image_id       text PRIMARY KEY,
    sha256         text NOT NULL,
    blob_key       text NOT NULL,
    byte_size      bigint NOT NULL,
    width          integer NOT NULL,
    height         integer NOT NULL,
    image_format   text NOT NULL,
    cluster_id     text NOT NULL REFERENCES clusters (cluster_id),
    first_post_id  text NOT NULL,
    first_author   text NOT NULL,
    ref_count      integer NOT NULL DEFAULT 0 CHECK (ref_count >= 0),
    created_seq    bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_cluster_idx ON images (cluster_id);

CREATE TABLE cluster_members (
    image_id    text PRIMARY KEY REFERENCES images (image_id),
    cluster_id  text NOT NULL REFERENCES clusters (cluster_id),
    joined_seq  bigint NOT NULL
);
CREATE INDEX cluster_members_cluster_idx ON cluster_members (cluster_id);

CREATE TABLE posts (
    post_id      text PRIMARY KEY,
    author       text NOT NULL,
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    image_id     text NOT NULL REFERENCES images (image_id),
    decision     text NOT NULL CHECK (decision IN ('new-cluster', 'merge-center', 'duplicate-reference')),
    byte_size    bigint NOT NULL,
    uploaded_at  text NOT NULL,
    decided_seq  bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_image_idx ON posts (image_id);
CREATE INDEX posts_author_idx ON posts (author);

-- A duplicate post points at the original image; distance and method say how it matched.
CREATE TABLE matches (
    post_id    text PRIMARY KEY REFERENCES posts (post_id),
    image_id   text NOT NULL REFERENCES images (image_id),
    distance   double precision,
    method     text NOT NULL
);

-- A duplicate uploaded by someone other than the original's author: possible IP theft.
CREATE TABLE alerts (
    post_id          text PRIMARY KEY REFERENCES posts (post_id),
    image_id         text NOT NULL REFERENCES images (image_id),
    author           text NOT NULL,
    original_author  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Each sink's next offset per partition, written in the same transaction as its rows.
CREATE TABLE sink_offsets (
    consumer     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
