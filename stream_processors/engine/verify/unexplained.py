"""How much of an accepted copy the stored original does not explain: the share of the upload
that its author added (a caption, stickers, a logo, a frame, a page or a collage around it).

Why: a copy that adds content of its own is still a reference to the original (the post shows
the original, the IP-theft alert fires), but its author's additions must not be lost, so past a
threshold (``engine.decision.KEEP_OWN_BYTES_SHARE``) its own bytes are stored too. The figure is
read off the evidence the verifier already measured on the aligned thumbnails, so it costs
nothing more than the check that accepted the pair:

- the content of the upload outside where the original maps into it (``PixelCheck.
  outside_content``: a frame, a page, a collage around the picture; flat fill such as a
  rotation's corners, and the uniform borders trimmed before any signature, carry nothing of
  their own and are not counted);
- inside it, the disagreement the accepting rule took for pasted-on matter: the tight boxes of
  the overlay blobs (``OverlayBlob.query_share``), or, for a clean copy, its few strongly
  disagreeing pixels (near 0: re-encoding, resizing and filters change no pixel much).

Both are shares of the upload's thumbnail, the picture as uploaded less its uniform borders.
"""

from __future__ import annotations

from stream_processors.engine.verify.evidence import OverlayBlob, PixelCheck
from stream_processors.engine.verify.rules import overlay
from stream_processors.engine.verify.thresholds import PixelThresholds
from stream_processors.engine.verify.verdict import PixelRule, Verdict


def unexplained_share(check: PixelCheck, verdict: Verdict, t: PixelThresholds) -> float:
    """The share (0..1) of the upload that the original does not explain, for a pair
    ``verdict`` accepted on ``check`` under thresholds ``t``."""
    if not verdict.accepted:
        raise ValueError(f"a refused pair ({verdict.rule}) explains nothing of the upload")
    inside = _added_inside(check, verdict.rule, t)
    return min(1.0, check.outside_content + inside)


def _added_inside(check: PixelCheck, rule: PixelRule, t: PixelThresholds) -> float:
    """What the accepting rule took for pasted-on matter inside the overlap, as a share of the
    upload's thumbnail."""
    if rule is PixelRule.CLEAN_COPY:
        # ``bad`` is a share of the overlap: the overlap is the upload's share not outside it
        return check.bad * max(0.0, 1.0 - check.outside_content)
    blob = _accepted_blob(check, rule, t)
    return 0.0 if blob is None else blob.query_share


def _accepted_blob(check: PixelCheck, rule: PixelRule, t: PixelThresholds) -> OverlayBlob | None:
    """The blob (or blobs taken together) the accepting overlay rule judged: the overlay rule
    takes the largest blob alone, the overlays rule the few largest; an alien overlay was
    accepted by whichever of the two judged it first (``rules.RULES`` order)."""
    if rule is PixelRule.OVERLAY:
        return check.overlay
    if rule is PixelRule.OVERLAYS:
        return check.overlays
    if rule is PixelRule.ALIEN_OVERLAY:
        single = check.overlay is not None and overlay.judge(check, t).accepted
        return check.overlay if single else check.overlays
    raise ValueError(f"{rule} is no rule that accepts a pair")
