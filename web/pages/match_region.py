"""Where a copy lies in its original, for the side-by-side view's outline.

A decision's record keeps the method and a distance, not the alignment the engine verified, so
the page re-estimates it for display: the engine's own keypoints (``detect_orb`` on the same
frame ``frame_of`` makes) and RANSAC (``estimate_geometry``) between the copy as uploaded and
the stored original, and the copy's four corners mapped into the original's pixels. Nothing is
decided here: the outline only shows a moderator which part of the original a crop took.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream_processors.engine.decode import decode_image
from stream_processors.engine.local_features import Keypoints, detect_orb, frame_of
from stream_processors.engine.verify import GeometryThresholds, estimate_geometry


@dataclass(frozen=True)
class MatchedRegion:
    """The copy's outline in the original: corners in the original's full-size pixels."""

    width: int
    height: int
    corners: list[tuple[float, float]]
    inliers: int
    matches: int


@dataclass(frozen=True)
class _Side:
    keypoints: Keypoints
    frame_size: tuple[int, int]  # (width, height) of the frame the keypoints live in
    size: tuple[int, int]  # (width, height) of the full-size image

    @property
    def frame_to_px(self) -> float:
        return max(self.size) / max(self.frame_size)


def _side(data: bytes) -> _Side:
    image = decode_image(data)
    frame = frame_of(cv2.cvtColor(image.pixels, cv2.COLOR_BGR2GRAY))
    fh, fw = frame.shape[:2]
    return _Side(detect_orb(frame), (fw, fh), (image.width, image.height))


def _homogeneous(transform: np.ndarray) -> np.ndarray:
    return transform if transform.shape == (3, 3) else np.vstack([transform, [0.0, 0.0, 1.0]])


def matched_region(original: bytes, copy: bytes) -> MatchedRegion | None:
    """The copy's corners in the original, or None when no alignment has the support the
    engine asks of one (``GeometryThresholds``' defaults)."""
    stored, query = _side(original), _side(copy)
    geo = estimate_geometry(query.keypoints, stored.keypoints, GeometryThresholds())
    if geo is None:
        return None
    to_stored = np.linalg.inv(_homogeneous(geo.affine))  # query frame -> stored frame
    qw, qh = query.frame_size
    corners = np.array([[0, 0, 1], [qw, 0, 1], [qw, qh, 1], [0, qh, 1]], np.float64).T
    mapped = to_stored @ corners
    xy = (mapped[:2] / mapped[2]).T * stored.frame_to_px
    return MatchedRegion(
        width=stored.size[0], height=stored.size[1],
        corners=[(round(float(x), 1), round(float(y), 1)) for x, y in xy],
        inliers=geo.inliers, matches=geo.matches,
    )
