-- The verifier's rule that accepted each match (identical-bytes, quick-clean-copy, clean-copy,
-- overlay, overlay-alien-to-both), so a moderator and the API see why two pictures were judged
-- copies; NULL for matches recorded before decisions carried a reason.
ALTER TABLE matches ADD COLUMN reason text;
