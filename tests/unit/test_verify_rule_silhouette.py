"""The silhouette rule (verify.rules.silhouette): two pictures that share only a silhouette, a
dark disk on white say, with different faint drawings inside it, are no copies; a re-encoded
copy of such a picture still is, and so is a flat two-colour logo, which is its silhouette."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from skimage import data

from stream_processors.engine import pair_checks
from stream_processors.engine.local_features import (
    LocalFeatures,
    empty_keypoints,
    local_features_to_bytes,
    thumb_of,
)
from stream_processors.engine.verify import PixelCheck, PixelRule, PixelThresholds, pixel_check
from stream_processors.engine.verify.rules import silhouette
from stream_processors.engine.verify.silhouette import SilhouetteContent, silhouette_content
from tests.unit.verify_fixtures import figures, identity, thumb

PIXELS = PixelThresholds()
SIDE = 192


def _dark_disk(rgb: np.ndarray, darken: float = 0.15) -> np.ndarray:
    """``rgb`` darkened inside a disk on white: a low-information picture."""
    inside = cv2.resize(thumb(rgb), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    disk = np.zeros((SIDE, SIDE), np.float32)
    cv2.circle(disk, (SIDE // 2, SIDE // 2), int(0.45 * SIDE), 1.0, -1, cv2.LINE_AA)
    ink = inside.astype(np.float32) * darken
    out = ink * disk[..., None] + 255.0 * (1.0 - disk[..., None])
    return np.ascontiguousarray(out.round().astype(np.uint8))


def _jpeg(img: np.ndarray, quality: int = 40) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.asarray(decoded)


def _with(content: SilhouetteContent) -> PixelCheck:
    return dataclasses.replace(figures(), silhouette=content)


def test_a_silhouette_whose_content_disagrees_is_refused_finally() -> None:
    refused = silhouette.judge(_with(SilhouetteContent(0.97, 0.03, 0.2)), PIXELS)
    assert refused is not None and refused.final and refused.rule is PixelRule.SILHOUETTE_ONLY
    assert refused.why.startswith("silhouette share 0.970")
    # content that agrees, a picture that is more than its silhouette, or nothing inside it
    assert silhouette.judge(_with(SilhouetteContent(0.97, 0.03, 0.9)), PIXELS) is None
    assert silhouette.judge(_with(SilhouetteContent(0.80, 0.03, 0.2)), PIXELS) is None
    assert silhouette.judge(_with(SilhouetteContent(0.999, 0.002, 0.0)), PIXELS) is None
    assert silhouette.judge(figures(), PIXELS) is None  # not measured
    off = dataclasses.replace(PIXELS, silhouette_share=silhouette.SILHOUETTE_OFF)
    assert silhouette.judge(_with(SilhouetteContent(1.0, 0.03, 0.0)), off) is None


def test_two_dark_disks_with_different_drawings_are_no_copy() -> None:
    one, two = _dark_disk(data.astronaut()), _dark_disk(data.chelsea())
    check = pixel_check(one, two, identity(one, two))
    verdict = check.verdict(PIXELS)
    assert not verdict.accepted and verdict.rule is PixelRule.SILHOUETTE_ONLY
    assert [r.check for r in verdict.refusals] == ["silhouette"]
    # the disk is all the clean-copy rule sees: without this rule it takes them
    off = dataclasses.replace(PIXELS, silhouette_share=silhouette.SILHOUETTE_OFF)
    assert check.verdict(off).rule is PixelRule.CLEAN_COPY


def test_the_hash_alignment_check_applies_it() -> None:
    one, two = _dark_disk(data.astronaut()), _dark_disk(data.chelsea())
    record = local_features_to_bytes(LocalFeatures(empty_keypoints(), (SIDE, SIDE), thumb_of(two)))
    outcome = pair_checks.fast_check(thumb_of(one), record, 0)
    assert [r.finding for r in getattr(outcome, "refusals", ())] == [PixelRule.SILHOUETTE_ONLY]


def test_a_re_encoded_dark_disk_is_still_a_copy() -> None:
    stored = _dark_disk(data.astronaut())
    query = _jpeg(cv2.resize(stored, (150, 150), interpolation=cv2.INTER_AREA))
    verdict = pixel_check(query, stored, identity(query, stored)).verdict(PIXELS)
    assert verdict.accepted, verdict


def test_a_flat_two_colour_logo_is_its_silhouette_and_left_to_the_other_rules() -> None:
    logo = np.full((SIDE, SIDE, 3), 255, np.uint8)
    cv2.fillPoly(logo, [np.array([[30, 160], [96, 20], [162, 160], [96, 120]])], (20, 40, 160))
    query = _jpeg(logo, 60)
    check = pixel_check(query, logo, identity(query, logo))
    assert check.silhouette is not None and check.silhouette.level < PIXELS.min_content_level
    assert check.verdict(PIXELS).accepted


def test_an_overlap_too_small_is_not_measured() -> None:
    grey = np.zeros((6, 6), np.float32)
    assert silhouette_content(grey, grey, np.ones((6, 6), np.uint8)) is None
