"""The overlays rule (verify.rules.overlays): a few separate pasted blobs (a meme's caption
bands, stickers) on a copy whose rest agrees closely."""

from __future__ import annotations

from stream_processors.engine.verify import (
    OverlayBlob,
    PixelCheck,
    PixelRule,
    PixelThresholds,
    pixel_check,
)
from stream_processors.engine.verify.rules import overlays
from tests.imagegen import scene
from tests.unit.verify_fixtures import blob, caption, court_card, figures, identity, refusal

PIXELS = PixelThresholds()


def _captioned(blobs: OverlayBlob) -> PixelCheck:
    """Strong disagreement in several places, the several blobs taken together."""
    return figures(overlays=blobs, bad=0.02, bad_faint=0.05)


def test_two_caption_bands_together_may_cover_more_than_one_overlay() -> None:
    bands = blob(parts=2, box=0.25)
    assert overlays.judge(_captioned(bands), PIXELS).accepted
    too_large = blob(parts=4, box=PIXELS.max_overlays_box + 0.01)
    assert overlays.judge(_captioned(too_large), PIXELS).why.startswith("box")


def test_a_change_repeated_turned_half_round_is_no_pair_of_overlays() -> None:
    corners = blob(parts=2, self_mirrored=0.95)
    finding = overlays.judge(_captioned(corners), PIXELS)
    assert finding.rule is PixelRule.NOT_OVERLAY and not finding.final
    assert finding.why.startswith("self_mirrored")


def test_around_several_overlays_the_rest_must_agree_more() -> None:
    loose = blob(parts=2, ncc=PIXELS.min_overlays_rest_ncc - 0.02)
    finding = overlays.judge(_captioned(loose), PIXELS)
    assert finding.rule is PixelRule.NOT_OVERLAY and finding.why.startswith("ncc")


def test_a_meme_s_two_captions_pass_and_a_card_s_two_index_corners_do_not() -> None:
    stored = scene(0)
    meme = caption(caption(stored, "TOP TEXT", (30, 22)), "BOTTOM TEXT", (20, 182))
    accepted = pixel_check(meme, stored, identity(meme, stored)).verdict(PIXELS)
    assert accepted.accepted and accepted.rule is PixelRule.OVERLAYS
    assert refusal(accepted, "overlay") is not None  # one band alone leaves the other outside

    hearts, diamonds = court_card("hearts"), court_card("diamonds")
    refused = pixel_check(diamonds, hearts, identity(diamonds, hearts)).verdict(PIXELS)
    assert not refused.accepted
    corners = refusal(refused, "overlays")
    assert corners is not None and corners.why.startswith("self_mirrored")
