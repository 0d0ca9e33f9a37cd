"""The aligned-pixel rules' thresholds in one value that the rules read.

Why one value: a calibration or a test varies a threshold (``dataclasses.replace``) without
touching the rule, and the engine passes one set for every check. Each default is its rule
module's named constant, where the measurement that chose it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_processors.engine.verify.rules import (
    clean_copy,
    colour,
    coverage,
    overlay,
    overlays,
    silhouette,
)


@dataclass(frozen=True)
class PixelThresholds:
    """Aligned-thumbnail acceptance: enough overlap, high correlation, little disagreement."""

    min_cover_small: float = coverage.MIN_COVER_SMALL
    min_cover_large: float = coverage.MIN_COVER_LARGE
    min_ncc: float = clean_copy.MIN_NCC
    max_bad: float = clean_copy.MAX_BAD
    max_bad_center: float = clean_copy.MAX_BAD_CENTER
    max_bad_faint: float = clean_copy.MAX_BAD_FAINT
    min_detail_ncc: float = clean_copy.MIN_DETAIL_NCC
    max_overlay_box: float = overlay.MAX_OVERLAY_BOX
    max_overlays_box: float = overlays.MAX_OVERLAYS_BOX
    max_half_turn_repeat: float = overlays.MAX_HALF_TURN_REPEAT
    min_overlays_rest_ncc: float = overlays.MIN_OVERLAYS_REST_NCC
    max_outside_share: float = overlay.MAX_OUTSIDE_SHARE
    max_outside_strong: float = overlay.MAX_OUTSIDE_STRONG
    max_outside_mirrored: float = overlay.MAX_OUTSIDE_MIRRORED
    min_overlay_oblique: float = overlay.MIN_OVERLAY_OBLIQUE
    max_overlay_motif: float = overlay.MAX_OVERLAY_MOTIF
    max_chroma_flip: float = colour.MAX_CHROMA_FLIP
    max_hue_shift_deg: float = colour.MAX_HUE_SHIFT_DEG
    max_ink_flip: float = colour.MAX_INK_FLIP
    silhouette_share: float = silhouette.SILHOUETTE_SHARE
    min_content_level: float = silhouette.MIN_CONTENT_LEVEL
    min_content_ncc: float = silhouette.MIN_CONTENT_NCC
