"""Silhouette only: a pair whose agreement is one shared silhouette, while the content drawn
inside it does not agree, is no copy.

Why final: every later rule judges figures the silhouette dominates (the layout, the fine detail
along its edge, the disagreeing pixels), so none of them could tell two such pictures apart.

Measured (``verify.silhouette``): the pysiogame stress set's 20 low-information negatives
(darkened pictures inside a disk, on a flat or transparent background) give 76 pairs that pass
the clean-copy rule, all with share 0.96-0.98, level 0.02-0.04 and content ncc <= 0.58; of 251
true copies there that a rule accepts on the hash's alignment, the one with share >= 0.95 has
content ncc 0.93. Flat art aligned by keypoints after a rotation or a filter is another matter:
40 dev pairs of true copies have share 0.95-0.98 and content ncc 0.05-0.69 there, so the engine
applies this rule on the dihedral (hash) alignment only (pair_checks.PIXELS turns it off with
SILHOUETTE_OFF). A picture whose two levels leave nothing (a flat two-colour logo: level below
MIN_CONTENT_LEVEL) is its silhouette, and is left to the other rules.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from stream_processors.engine.verify.verdict import Finding, PixelRule

if TYPE_CHECKING:
    from stream_processors.engine.verify.evidence import PixelCheck
    from stream_processors.engine.verify.thresholds import PixelThresholds

# The two tone levels explain this much of the stored picture's variance: a silhouette picture
SILHOUETTE_SHARE = 0.95
# What they leave must be at least this (grey, 0-1: ~2.5 levels of 255) to be compared
MIN_CONTENT_LEVEL = 0.01
# ... and then correlate this much between the two pictures
MIN_CONTENT_NCC = 0.7
# A share no picture reaches: the rule off (the keypoint path's thresholds)
SILHOUETTE_OFF = math.inf


def judge(check: PixelCheck, t: PixelThresholds) -> Finding | None:
    """A final refusal when a silhouette picture's content does not agree, else None."""
    content = check.silhouette
    if content is None or content.share < t.silhouette_share:
        return None
    if content.level < t.min_content_level or content.ncc >= t.min_content_ncc:
        return None
    why = (
        f"silhouette share {content.share:.3f} >= {t.silhouette_share}, content ncc "
        f"{content.ncc:.3f} < min_content_ncc {t.min_content_ncc}"
    )
    return Finding(PixelRule.SILHOUETTE_ONLY, why=why, final=True)
