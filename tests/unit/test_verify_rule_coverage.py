"""The coverage rule (verify.rules.coverage): a crop is a copy while it shows most of the smaller
picture and a fair part of the larger one."""

from __future__ import annotations

import numpy as np

from stream_processors.engine.verify import PixelRule, PixelThresholds, pixel_check
from stream_processors.engine.verify.rules import coverage
from tests.imagegen import scene
from tests.unit.verify_fixtures import crop, figures

PIXELS = PixelThresholds()


def test_enough_overlap_passes_on_and_too_little_refuses_finally() -> None:
    assert coverage.judge(figures(cover_small=PIXELS.min_cover_small), PIXELS) is None
    assert coverage.judge(figures(cover_large=PIXELS.min_cover_large), PIXELS) is None
    little = coverage.judge(figures(cover_small=0.5, cover_large=0.1), PIXELS)
    assert little is not None and little.final and little.rule is PixelRule.LITTLE_OVERLAP
    small = coverage.judge(figures(cover_large=PIXELS.min_cover_large - 0.01), PIXELS)
    assert small is not None and small.final and small.rule is PixelRule.SMALL_PART
    assert small.why.startswith("cover_large")


def test_a_crop_passes_and_a_small_part_of_the_picture_does_not() -> None:
    stored = scene(0)
    query, affine = crop(stored, 0.6)
    accepted = pixel_check(query, stored, affine).verdict(PIXELS)
    assert accepted.accepted and accepted.rule is PixelRule.CLEAN_COPY
    assert not accepted.refusals

    query, affine = crop(stored, 0.35)
    refused = pixel_check(query, stored, affine).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.SMALL_PART
    assert [r.check for r in refused.refusals] == ["coverage"]


def test_an_alignment_onto_half_the_picture_is_little_overlap() -> None:
    stored = scene(0)
    shifted = np.array([[1.0, 0.0, stored.shape[1] / 2], [0.0, 1.0, 0.0]])
    verdict = pixel_check(stored, stored, shifted).verdict(PIXELS)
    assert verdict.rule is PixelRule.LITTLE_OVERLAP and not verdict.accepted
