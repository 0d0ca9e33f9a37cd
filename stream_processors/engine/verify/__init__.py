"""Verification of one (query, stored) pair: geometry first, then an aligned pixel comparison
that named rules judge.

Why two stages: keypoint geometry (ratio test + RANSAC similarity) proves that the two pictures
share a rigid layout, which crops, pads, rotations and resizes keep; but two CryptoPunks one trait
apart, or two cards of a deck, share most of their layout too. The aligned thumbnail comparison
then asks whether the *content* agrees once the stored image is warped onto the query and its
grey levels are matched to the query's (histogram matching absorbs brightness, contrast, gamma and
most colour filters). A copy agrees almost everywhere. A disagreement is still a copy when it is
one compact blob of pasted-on matter (a caption, a watermark, a badge): oblique, anti-aliased
edges that do not repeat the picture's own motifs. It is another artwork when it follows the
pixel grid (a punk's trait), repeats the picture's motifs (a card's extra pip), lies in several
places (a little residue elsewhere is allowed, unless it mirrors through the centre like a
card's two index corners), covers much of the picture, or when the colours differ more than a
hue/saturation filter can make them (a black crown painted red, red pips over a black card's
ink, a green wallpaper made orange; a black-and-white copy keeps each colour's luma and is
still a copy).

The modules, in the order a pair meets them:

- ``geometry``: ORB ratio-test matches, RANSAC similarity or homography (or, as
  ``NoGeometry``, the figure that fell short), ECC refinement, the region of the stored
  picture the query shows;
- ``alignment``: the warp and the tone and colour fit; ``agreement``: correlations;
- ``pixels``: the aligned pixel check, with ``chroma`` (the colour shift) and ``blobs`` (the
  disagreement as overlay blobs), giving a ``PixelCheck`` (``evidence``);
- ``rules``: one module per rule with its thresholds and the measurements that chose them,
  and the ordered table ``rules.RULES`` that ``PixelCheck.verdict`` walks (``verdict``: the
  rule names a decision records and the refusals that explain a refused pair);
  ``thresholds``: the rules' thresholds as one value.

The names below are what the engine, its scripts and tests use.
"""

from stream_processors.engine.verify.agreement import correlation
from stream_processors.engine.verify.evidence import ColourShift, OverlayBlob, PixelCheck
from stream_processors.engine.verify.geometry import (
    PRESCREEN_KEYPOINTS,
    PRESCREEN_MIN_MATCHES,
    REFINE_MIN_NCC,
    Geometry,
    GeometryThresholds,
    NoGeometry,
    estimate_geometry,
    fit_geometry,
    refine_alignment,
    region_shown,
    thumb_affine,
)
from stream_processors.engine.verify.pixels import pixel_check
from stream_processors.engine.verify.rules import RULES, Rule
from stream_processors.engine.verify.thresholds import PixelThresholds
from stream_processors.engine.verify.verdict import Finding, PixelRule, Refusal, Verdict

__all__ = [
    "PRESCREEN_KEYPOINTS",
    "PRESCREEN_MIN_MATCHES",
    "REFINE_MIN_NCC",
    "RULES",
    "ColourShift",
    "Finding",
    "Geometry",
    "GeometryThresholds",
    "NoGeometry",
    "OverlayBlob",
    "PixelCheck",
    "PixelRule",
    "PixelThresholds",
    "Refusal",
    "Rule",
    "Verdict",
    "correlation",
    "estimate_geometry",
    "fit_geometry",
    "pixel_check",
    "refine_alignment",
    "region_shown",
    "thumb_affine",
]
