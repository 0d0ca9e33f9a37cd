"""The geometry of a pair (verify.geometry): a homography for a keystoned copy, screening on
the strongest keypoints, and the ECC refinement of a rough alignment of flat art."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from stream_processors.engine.local_features import detect_orb
from stream_processors.engine.verify import (
    GeometryThresholds,
    PixelThresholds,
    estimate_geometry,
    pixel_check,
    refine_alignment,
)
from tests.unit.verify_fixtures import flat_sign, thumb

PIXELS = PixelThresholds()


def test_geometry_of_a_keystoned_copy_is_a_homography() -> None:
    """Keypoints of a keystoned copy fit a homography far better than a similarity; the
    estimate switches to it so the pixel check can align the copy."""
    grey = cv2.cvtColor(thumb(data.astronaut(), 480), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[40, 20], [w - 40, 0], [w, h], [0, h - 10]], np.float32)
    keystone = cv2.getPerspectiveTransform(src, dst)
    copy = cv2.warpPerspective(grey, keystone, (w, h))
    geo = estimate_geometry(detect_orb(copy), detect_orb(grey), GeometryThresholds())
    assert geo is not None and geo.affine.shape == (3, 3)
    corners = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), geo.affine)
    assert np.abs(corners.reshape(-1, 2) - dst).max() < 6.0


def test_screening_keeps_a_copy_and_refuses_an_unrelated_picture() -> None:
    """Screened geometry is the unscreened one for a copy (the strongest keypoints match), and
    an unrelated picture is refused on its strongest keypoints alone."""
    grey = cv2.cvtColor(thumb(data.astronaut(), 480), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    crop = cv2.resize(grey[h // 8 :, w // 10 :], (w, h))
    stored, copy = detect_orb(grey), detect_orb(crop)
    full = estimate_geometry(copy, stored, GeometryThresholds())
    screened = estimate_geometry(copy, stored, GeometryThresholds(), screen=True)
    assert full is not None and screened is not None
    assert (screened.matches, screened.inliers) == (full.matches, full.inliers)
    assert np.array_equal(screened.affine, full.affine)
    other = detect_orb(cv2.cvtColor(thumb(data.coffee(), 480), cv2.COLOR_BGR2GRAY))
    assert estimate_geometry(other, stored, GeometryThresholds(), screen=True) is None


def test_refinement_recovers_a_rough_rotation_and_keeps_another_picture_out() -> None:
    """Keypoints of a flat sign fix its rotation only roughly (1 degree for a 4 degree turn):
    the copy then disagrees along every edge until ECC refines the alignment. Refining cannot
    make the sign with a vertical bar pass."""
    sign = flat_sign()
    turned = cv2.getRotationMatrix2D((96, 96), 4.0, 1.0)
    copy = cv2.warpAffine(sign, turned, (192, 192), flags=cv2.INTER_LINEAR)
    rough = cv2.getRotationMatrix2D((96, 96), 1.0, 1.0)
    assert not pixel_check(copy, sign, rough).passes(PIXELS)
    refined = refine_alignment(copy, sign, rough)
    assert refined is not None and np.abs(refined - turned).max() < 0.5
    assert pixel_check(copy, sign, refined).passes(PIXELS)

    other = flat_sign(bar_vertical=True)
    moved = refine_alignment(copy, other, rough)
    assert moved is None or not pixel_check(copy, other, moved).passes(PIXELS)
