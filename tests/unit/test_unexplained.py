"""What an accepted copy adds of its own (verify.unexplained) and when its own bytes are kept
(engine.decision.KEEP_OWN_BYTES_SHARE): golden cases through the engine on scikit-image's
photos, and the measure on hand-written figures."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.decision import KEEP_OWN_BYTES_SHARE, Decision, DecisionKind
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import DefaultMethod
from stream_processors.engine.verify import PixelRule, PixelThresholds, Verdict
from stream_processors.engine.verify.unexplained import unexplained_share
from tests.imagegen import encode, jpeg
from tests.unit.verify_fixtures import blob, figures

PIXELS = PixelThresholds()
# how far a measured share may be from the area drawn: the thumbnail's smoothing and the boxes
# around anti-aliased edges grow it by a pixel or two
AREA_TOLERANCE = 0.03
# a plain copy measures at most this (the dev set's re-encodes and filters: 0.0047 at most)
PLAIN_MAX = 0.005


def _photo(name: str = "astronaut") -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))


def _decide(original: np.ndarray, upload: bytes) -> Decision:
    """The engine's decision for ``upload`` with only ``original`` stored."""
    method = DefaultMethod()
    sig = method.extract(decode_image(encode(original, ".png")))
    method.apply(method.evaluate("original", sig), sig)
    return method.evaluate("upload", method.extract(decode_image(upload)))


def _duplicate(original: np.ndarray, upload: bytes) -> tuple[Decision, float]:
    decision = _decide(original, upload)
    assert decision.kind is DecisionKind.DUPLICATE_REFERENCE
    assert decision.unexplained_share is not None
    return decision, decision.unexplained_share


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_a_reencode_a_resize_or_a_blur_adds_nothing(name: str) -> None:
    img = _photo(name)
    h, w = img.shape[:2]
    for upload in (
        jpeg(img, 40),
        encode(cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), ".png"),
        encode(cv2.GaussianBlur(img, (0, 0), 1.5), ".png"),
    ):
        decision, share = _duplicate(img, upload)
        assert share <= PLAIN_MAX
        assert not decision.keeps_own_bytes and not decision.stores_image


def test_a_caption_box_measures_about_its_area_and_keeps_its_bytes() -> None:
    img = _photo()
    h, w = img.shape[:2]
    x0, y0, bw, bh = int(0.2 * w), int(0.05 * h), int(0.6 * w), int(0.1 * h)
    captioned = img.copy()
    cv2.rectangle(captioned, (x0, y0), (x0 + bw - 1, y0 + bh - 1), (255, 255, 255), -1)
    cv2.putText(captioned, "SO MUCH WOW", (x0 + bw // 10, y0 + int(0.75 * bh)),
                cv2.FONT_HERSHEY_DUPLEX, bh / 40, (0, 0, 0), 3, cv2.LINE_AA)
    decision, share = _duplicate(img, encode(captioned, ".png"))
    assert decision.reason == PixelRule.OVERLAY
    assert share == pytest.approx(bw * bh / (w * h), abs=AREA_TOLERANCE)
    assert decision.keeps_own_bytes and decision.stores_image
    # still a reference to the original: the post points at it
    assert decision.is_duplicate and decision.image_id == "original"


def _striped_frame(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` inside a frame of diagonal stripes ``side`` pixels wide: a frame with content,
    which border trimming keeps."""
    h, w = img.shape[:2]
    y, x = np.mgrid[0 : h + 2 * side, 0 : w + 2 * side]
    on = ((x + y) // 12) % 2 == 0
    stripe, ground = np.array([30, 60, 110], np.uint8), np.array([50, 150, 200], np.uint8)
    canvas = np.where(on[..., None], stripe, ground)
    canvas = np.ascontiguousarray(canvas.astype(np.uint8))
    canvas[side : side + h, side : side + w] = img
    return canvas


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_a_patterned_frame_measures_about_its_area(name: str) -> None:
    img = _photo(name)
    h, w = img.shape[:2]
    side = int(0.12 * min(h, w))
    decision, share = _duplicate(img, encode(_striped_frame(img, side), ".png"))
    frame_share = 1 - h * w / ((h + 2 * side) * (w + 2 * side))
    # the stripes' flat insides a few pixels from their edges count as flat fill
    assert share == pytest.approx(frame_share, abs=2 * AREA_TOLERANCE)
    assert decision.keeps_own_bytes


def test_a_collage_around_the_picture_is_clearly_added_content() -> None:
    img, other = _photo("astronaut"), _photo("chelsea")
    h, w = img.shape[:2]
    collage = np.concatenate([img, cv2.resize(other, (w, h))], axis=1)
    decision, share = _duplicate(img, encode(collage, ".png"))
    assert share > 0.25 and decision.keeps_own_bytes


def test_a_plain_border_is_trimmed_and_adds_nothing_of_its_own() -> None:
    """A uniform border or pad is trimmed before any signature: a colour is no content of
    the upload's own, so it keeps no bytes for it."""
    img = _photo("coffee")
    side = int(0.12 * min(img.shape[:2]))
    bordered = cv2.copyMakeBorder(img, side, side, side, side, cv2.BORDER_CONSTANT,
                                  value=(30, 60, 110))
    decision, share = _duplicate(img, encode(bordered, ".png"))
    assert share < KEEP_OWN_BYTES_SHARE and not decision.keeps_own_bytes


# --- the measure on hand-written figures ---------------------------------------------------


def test_a_clean_copy_counts_its_strong_disagreement_inside_the_overlap() -> None:
    check = figures(bad=0.0004)
    assert unexplained_share(check, Verdict(True, PixelRule.CLEAN_COPY), PIXELS) == 0.0004


def test_an_overlay_counts_its_tight_box_and_the_content_outside() -> None:
    caption = replace(blob(box=0.14), query_share=0.06)
    check = replace(figures(overlay=caption, bad=0.02), outside_content=0.1)
    share = unexplained_share(check, Verdict(True, PixelRule.OVERLAY), PIXELS)
    assert share == pytest.approx(0.16)


def test_several_overlays_count_the_blobs_taken_together() -> None:
    single = replace(blob(), query_share=0.03)
    bands = replace(blob(parts=2), query_share=0.2)
    check = figures(overlay=single, overlays=bands, bad=0.05)
    assert unexplained_share(check, Verdict(True, PixelRule.OVERLAYS), PIXELS) == 0.2


def test_a_refused_pair_has_no_share() -> None:
    with pytest.raises(ValueError, match="refused"):
        unexplained_share(figures(), Verdict(False, PixelRule.CHANGED_DETAIL), PIXELS)


@pytest.mark.parametrize(
    ("share", "kept"),
    [(None, False), (0.0, False), (KEEP_OWN_BYTES_SHARE - 1e-6, False),
     (KEEP_OWN_BYTES_SHARE, True), (0.4, True)],
)
def test_a_duplicate_keeps_its_own_bytes_past_the_threshold(
    share: float | None, kept: bool
) -> None:
    d = Decision("u", DecisionKind.DUPLICATE_REFERENCE, "i", "c", unexplained_share=share)
    assert d.keeps_own_bytes is kept
    assert d.stores_image is kept


def test_a_new_image_is_stored_whatever_the_share() -> None:
    d = Decision("u", DecisionKind.NEW_CLUSTER, "u", "u", unexplained_share=None)
    assert d.stores_image and not d.keeps_own_bytes
