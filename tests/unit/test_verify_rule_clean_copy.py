"""The clean-copy rule (verify.rules.clean_copy): the whole overlap agrees after the tone and
colour fit, and no pixel disagrees much."""

from __future__ import annotations

import cv2
import numpy as np

from stream_processors.engine.verify import PixelRule, PixelThresholds, pixel_check
from stream_processors.engine.verify.rules import clean_copy
from tests.imagegen import scene
from tests.unit.verify_fixtures import figures, identity, pixel_art, refusal

PIXELS = PixelThresholds()


def test_at_its_thresholds_a_pair_is_a_clean_copy() -> None:
    edge = figures(
        ncc=PIXELS.min_ncc,
        detail_ncc=PIXELS.min_detail_ncc,
        bad=PIXELS.max_bad,
        bad_faint=PIXELS.max_bad_faint,
    )
    finding = clean_copy.judge(edge, PIXELS)
    assert finding.accepted and finding.rule is PixelRule.CLEAN_COPY


def test_a_refusal_names_the_first_broken_figure_and_leaves_the_overlays_to_judge() -> None:
    finding = clean_copy.judge(figures(detail_ncc=0.2, bad=0.01), PIXELS)
    assert not finding.accepted and not finding.final
    assert finding.rule is PixelRule.DETAIL_DIFFERS and finding.why.startswith("detail_ncc")


def test_the_layout_is_judged_without_its_shading() -> None:
    shaded = figures(ncc=PIXELS.min_ncc - 0.1, ncc_unshaded=PIXELS.min_ncc + 0.05)
    assert clean_copy.judge(shaded, PIXELS).accepted


def test_a_brightened_re_encode_passes_and_a_changed_trait_does_not() -> None:
    stored = scene(0)
    brighter = np.clip(stored.astype(np.float32) * 1.2 + 10, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", brighter, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    copy = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert copy is not None
    accepted = pixel_check(copy, stored, identity(copy, stored)).verdict(PIXELS)
    assert accepted.rule is PixelRule.CLEAN_COPY and not accepted.refusals

    art = pixel_art(0)
    trait = art.copy()
    trait[64:88, 96:120] = (20, 200, 40)  # 3 x 3 cells of the grid
    refused = pixel_check(trait, art, identity(trait, art)).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.CHANGED_DETAIL
    assert refused.refusals[0].check == "clean-copy"
    overlay = refusal(refused, "overlay")
    assert overlay is not None and overlay.why.startswith("oblique")  # along the pixel grid
