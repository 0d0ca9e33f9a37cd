"""The colour rule (verify.rules.colour): colours may change as a filter changes them, or be lost
to black and white, but not be painted over."""

from __future__ import annotations

from stream_processors.engine.verify import ColourShift, PixelRule, PixelThresholds, pixel_check
from stream_processors.engine.verify.rules import colour
from tests.imagegen import scene
from tests.unit.verify_fixtures import figures, greyscale, identity, rotate_hue

PIXELS = PixelThresholds()


def _refusal(shift: ColourShift) -> str | None:
    finding = colour.judge(figures(colour=shift), PIXELS)
    assert finding is None or (finding.final and finding.rule is PixelRule.COLOURS_CHANGED)
    return None if finding is None else finding.why


def test_a_filter_passes_and_colour_from_grey_does_not() -> None:
    assert _refusal(ColourShift(chroma_flip=0.05, hue_shift_deg=30.0)) is None
    assert colour.judge(figures(colour=None), PIXELS) is None
    assert str(_refusal(ColourShift(0.13, 0.0))).startswith("chroma_flip")
    assert str(_refusal(ColourShift(0.05, 58.0))).startswith("hue_shift_deg")
    assert str(_refusal(ColourShift(0.05, 0.0, greyscale_gap=0.4, ink_flip=0.78))).startswith(
        "ink_flip"
    )


def test_a_black_and_white_copy_loses_its_colour_but_keeps_its_hue_limit() -> None:
    lost = ColourShift(chroma_flip=0.4, hue_shift_deg=10.0, greyscale_gap=0.02, ink_flip=0.5)
    assert lost.greyscale_copy and _refusal(lost) is None
    repainted = ColourShift(chroma_flip=0.4, hue_shift_deg=10.0, greyscale_gap=0.4)
    assert not repainted.greyscale_copy and _refusal(repainted) is not None
    assert _refusal(ColourShift(0.4, 60.0, greyscale_gap=0.02)) is not None


def test_greyscale_and_a_mild_hue_filter_pass_and_a_strong_one_does_not() -> None:
    stored = scene(0)
    grey = greyscale(stored)
    ev = pixel_check(grey, stored, identity(grey, stored))
    assert ev.colour is not None and ev.colour.greyscale_copy
    assert ev.verdict(PIXELS).rule is PixelRule.CLEAN_COPY

    mild = rotate_hue(stored, 20)
    assert pixel_check(mild, stored, identity(mild, stored)).verdict(PIXELS).accepted

    strong = rotate_hue(stored, 60)
    refused = pixel_check(strong, stored, identity(strong, stored)).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.COLOURS_CHANGED
    assert [r.check for r in refused.refusals] == ["colours"]
