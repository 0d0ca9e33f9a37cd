"""How much of an aligned pair's agreement is more than a shared silhouette.

Why: a dark disk, a figure's dark outline or a logo-shaped patch on a plain or transparent
background puts nearly all of a picture's contrast into one edge. Two different such pictures
then align and agree on every figure the clean-copy rule reads (on the pysiogame stress set's
low-information negatives: layout ncc 0.995, fine-detail ncc 0.97, no disagreeing pixel), since
what differs, the drawing inside the silhouette, is faint. Here the stored picture is split in
its two tone levels (Otsu), each level's mean is taken out of both pictures, and what is left,
the content inside and around the silhouette away from its edge, is correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream_processors.engine.verify.agreement import correlation

# Pixels this close to the boundary between the two levels are left out: a sub-pixel shift of
# the silhouette's edge is no disagreement of content.
_EDGE_BAND = np.ones((5, 5), np.uint8)
_MIN_PIXELS = 64


@dataclass(frozen=True)
class SilhouetteContent:
    """``share``: the part of the stored picture's grey variance its two tone levels explain
    (1.0: a pure silhouette); ``level``: the standard deviation of what they leave (grey, 0-1);
    ``ncc``: the correlation of what they leave in the two pictures."""

    share: float
    level: float
    ncc: float


def silhouette_content(
    query_grey: np.ndarray, stored_grey: np.ndarray, valid: np.ndarray
) -> SilhouetteContent | None:
    """The pair's content beyond the stored picture's silhouette, on ``valid`` (uint8, the
    overlap), both grey images aligned and in 0-1; None when the overlap is too small."""
    on = valid > 0
    if int(on.sum()) < _MIN_PIXELS:
        return None
    s_levels = np.clip(stored_grey * 255.0, 0, 255).astype(np.uint8)
    cut, _ = cv2.threshold(s_levels[on].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    upper = (s_levels > cut).astype(np.uint8)
    edge = cv2.morphologyEx(upper, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    away = on & (cv2.dilate(edge, _EDGE_BAND) == 0)
    q_rest = query_grey.astype(np.float64)
    s_rest = stored_grey.astype(np.float64)
    for tone in (0, 1):
        sel = on & (upper == tone)
        if sel.any():
            q_rest = np.where(sel, q_rest - q_rest[sel].mean(), q_rest)
            s_rest = np.where(sel, s_rest - s_rest[sel].mean(), s_rest)
    total = float(stored_grey[on].var())
    share = 1.0 - float(s_rest[on].var()) / total if total > 1e-9 else 1.0
    if int(away.sum()) < _MIN_PIXELS:
        return SilhouetteContent(share, 0.0, 0.0)
    level = float(s_rest[away].std())
    return SilhouetteContent(share, level, correlation(q_rest[away], s_rest[away]))
