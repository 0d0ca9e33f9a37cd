"""Overlays: a few separate pasted blobs (a meme's two caption bands, stickers) on a copy.

Why: the overlay rule takes the largest blob of disagreement alone, which leaves a second
caption band outside it; taken together, the blobs pass the same test as one overlay, with a
larger box allowed. Several overlays hide more of the picture, so the rest must agree more, and
a change that repeats turned half round in both pictures (a card's index in two corners) is
the card's content, not two captions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors.engine.verify.rules import overlay
from stream_processors.engine.verify.verdict import Finding, PixelRule

if TYPE_CHECKING:
    from stream_processors.engine.verify.evidence import PixelCheck
    from stream_processors.engine.verify.thresholds import PixelThresholds

# Several separate overlays (OverlayBlob.parts > 1) may cover this much together: a meme's
# two caption bands of ~0.1 each, four stickers of ~0.02.
MAX_OVERLAYS_BOX = 0.3
# ... unless one repeats, turned half round, where another lies, in both pictures: a
# card's changed index in two corners (correlation 0.9+), not two captions
MAX_HALF_TURN_REPEAT = 0.6
# Several overlays hide more of the picture, so the rest must agree more: the layout away
# from them correlates this much (copies with two caption bands or four stickers: 95% at
# or above 0.965; a moon photo and a dark wallpaper under the same two captions 0.936).
MIN_OVERLAYS_REST_NCC = 0.95


def judge(check: PixelCheck, t: PixelThresholds) -> Finding:
    """The few largest blobs together as separate overlays (``check.overlays``: measured only
    when the largest blob alone leaves much of the disagreement outside it)."""
    blobs = check.overlays
    if blobs is None:
        return Finding(PixelRule.NOT_OVERLAY, why="no several blobs measured")
    if blobs.self_mirrored > t.max_half_turn_repeat:
        why = f"self_mirrored {blobs.self_mirrored:.3f} > max_half_turn_repeat"
        return Finding(PixelRule.NOT_OVERLAY, why=f"{why} {t.max_half_turn_repeat}")
    if blobs.ncc < t.min_overlays_rest_ncc:
        why = f"ncc {blobs.ncc:.3f} away from them < min_overlays_rest_ncc"
        return Finding(PixelRule.NOT_OVERLAY, why=f"{why} {t.min_overlays_rest_ncc}")
    return overlay.judge_blob(check, blobs, t, PixelRule.OVERLAYS, t.max_overlays_box)
