-- What a copy added of its own (engine.decision.Decision.unexplained_share): the share of the
-- upload its original does not explain (a caption, stickers, a frame, a page around it), and,
-- when that share is past the engine's threshold, the key of the upload's own bytes, stored in
-- the bucket beside the reference to the original so what its author added is not lost.
-- NULL share for matches recorded before decisions carried it; NULL key for a plain copy.
ALTER TABLE matches
    ADD COLUMN unexplained_share double precision,
    ADD COLUMN own_blob_key text,
    ADD CONSTRAINT matches_unexplained_share_is_a_share CHECK (
        unexplained_share IS NULL OR (0 <= unexplained_share AND unexplained_share <= 1)
    );
