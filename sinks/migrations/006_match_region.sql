-- Where a duplicate lies in its original (fractions of the original's width and height), for a
-- match made by aligning the two by keypoints: a crop shows part of the picture, and the web
-- page outlines that part. NULL for matches that compared whole pictures, and for decisions
-- made before the engine recorded regions.
ALTER TABLE matches
    ADD COLUMN region_x0 double precision,
    ADD COLUMN region_y0 double precision,
    ADD COLUMN region_x1 double precision,
    ADD COLUMN region_y1 double precision,
    ADD CONSTRAINT matches_region_in_unit_square CHECK (
        (region_x0 IS NULL AND region_y0 IS NULL AND region_x1 IS NULL AND region_y1 IS NULL)
        OR (0 <= region_x0 AND region_x0 <= region_x1 AND region_x1 <= 1
            AND 0 <= region_y0 AND region_y0 <= region_y1 AND region_y1 <= 1)
    );
