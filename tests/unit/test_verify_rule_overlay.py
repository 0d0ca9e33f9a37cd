"""The overlay rule (verify.rules.overlay): one compact pasted blob (a caption, a badge) on a
copy whose rest agrees."""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import pytest

from stream_processors.engine.verify import (
    OverlayBlob,
    PixelCheck,
    PixelRule,
    PixelThresholds,
    pixel_check,
)
from stream_processors.engine.verify.rules import overlay
from tests.imagegen import scene
from tests.unit.verify_fixtures import blob, caption, figures, identity, refusal

PIXELS = PixelThresholds()


def _captioned(overlay: OverlayBlob, ncc: float = 0.99) -> PixelCheck:
    """Strong disagreement that the clean-copy rule refuses: the overlay rule judges the blob."""
    return figures(overlay=overlay, bad=0.005, bad_faint=0.015, ncc=ncc)


def test_a_caption_s_blob_is_an_overlay() -> None:
    finding = overlay.judge(_captioned(blob()), PIXELS)
    assert finding.accepted and finding.rule is PixelRule.OVERLAY


@pytest.mark.parametrize(
    ("changed", "figure"),
    [
        ({"detail_ncc": PIXELS.min_detail_ncc - 0.1}, "detail_ncc"),
        ({"box": PIXELS.max_overlay_box + 0.01}, "box"),
        ({"outside_share": 0.41, "outside_strong": 0.004}, "outside_share"),
        ({"outside_strong": 0.002, "outside_mirrored": 1.0}, "outside_mirrored"),
        ({"oblique": 0.03}, "oblique"),
    ],
)
def test_a_blob_that_is_no_overlay_leaves_the_clean_copy_refusal(
    changed: dict[str, Any], figure: str
) -> None:
    measured: list[int] = []

    def motifs() -> list[float]:
        measured.append(1)
        return [0.3]

    not_overlay = dataclasses.replace(blob(), measure_motifs=motifs, **changed)
    finding = overlay.judge(_captioned(not_overlay), PIXELS)
    assert not finding.accepted and not finding.final
    assert finding.rule is PixelRule.NOT_OVERLAY and finding.why.startswith(figure)
    assert not measured  # the motif search (~3 ms) is left for last


def test_a_blob_that_repeats_the_picture_s_motif_is_its_content() -> None:
    pip = blob(motifs=(0.98, 1.0))
    why = overlay.not_an_overlay(pip, PIXELS, PIXELS.max_overlay_box)
    assert why is not None and why.startswith("motif")


def test_residue_outside_the_blob_is_allowed_when_the_rest_is_clean() -> None:
    residue = blob(outside_share=0.6, outside_strong=0.001, outside_faint=0.005)
    assert overlay.clean_outside(residue, PIXELS)
    assert overlay.not_an_overlay(residue, PIXELS, PIXELS.max_overlay_box) is None


def test_an_overlay_on_another_layout_is_refused_finally_unless_alien_to_both() -> None:
    low = PIXELS.min_ncc - 0.1
    alien = overlay.judge(_captioned(blob(), ncc=low), PIXELS)
    assert alien.accepted and alien.rule is PixelRule.ALIEN_OVERLAY
    repeated = overlay.judge(_captioned(blob(motifs=(0.5, 0.95)), ncc=low), PIXELS)
    assert repeated.final and repeated.rule is PixelRule.LAYOUT_DIFFERS
    other = overlay.judge(_captioned(blob(ncc=0.6), ncc=low), PIXELS)
    assert other.final and other.rule is PixelRule.LAYOUT_DIFFERS


def test_a_caption_passes_and_a_large_pasted_disk_does_not() -> None:
    stored = scene(0)
    captioned = caption(stored, "for sale", (20, 170))
    accepted = pixel_check(captioned, stored, identity(captioned, stored)).verdict(PIXELS)
    assert accepted.accepted and accepted.rule is PixelRule.OVERLAY

    disk = stored.copy()
    cv2.circle(disk, (96, 96), 30, (20, 200, 40), -1, cv2.LINE_AA)
    refused = pixel_check(disk, stored, identity(disk, stored)).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.CHANGED_DETAIL
    why = refusal(refused, "overlay")
    assert why is not None and why.why.startswith("box")
