-- What the verifier refused on the way to each decision, so a moderator and the API see which
-- picture was compared and which rule told it apart (engine.decision.RefusedCandidate):
-- posts.refused, for every kind of decision, lists the first candidates refused in the order
-- tried, [{"entry_id", "image_id", "check", "refusals": [{"rule", "finding", "why"}]}];
-- matches.reason_refusals the rules that refused a copy before matches.reason accepted it,
-- [{"rule", "finding", "why"}]. JSON, as they are read whole and never queried into.
-- NULL for decisions recorded before decisions carried them.
ALTER TABLE posts ADD COLUMN refused jsonb;
ALTER TABLE matches ADD COLUMN reason_refusals jsonb;
