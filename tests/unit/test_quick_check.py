"""The quick clean-copy check: clean copies are accepted, and whatever it accepts the full pixel
check accepts too; changed details, recolourings, overlays and mismatched framing stay
undecided (the full check judges them)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.quick_check import QUICK, quick_clean_copy
from stream_processors.engine.verify import PixelThresholds, pixel_check
from tests.unit.verify_fixtures import (
    caption,
    card,
    court_card,
    identity,
    pixel_art,
    rotate_hue,
    thumb,
)

PIXELS = PixelThresholds()
Edit = Callable[[np.ndarray], np.ndarray]


def _jpeg(q: int) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        assert ok
        return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)

    return f


def _resampled(scale: float) -> Edit:
    """Down- or up-sampled and brought back to the thumbnail size (a resized upload)."""

    def f(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_AREA)

    return f


def _tone(gamma: float, gain: float = 1.0) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        out = 255.0 * gain * (img / 255.0) ** gamma
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    return f


def _noise(sigma: float) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(0)
        out = img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    return f


CLEAN: dict[str, Edit] = {
    "identical": lambda img: img.copy(),
    "jpeg60": _jpeg(60),
    "resize0.5": _resampled(0.5),
    "gamma0.8": _tone(0.8),
    "brighter": _tone(1.0, 1.1),
    "blur1": lambda img: cv2.GaussianBlur(img, (0, 0), 1.0),
    "noise4": _noise(4.0),
}
PICTURES = {
    "astronaut": lambda: thumb(data.astronaut()),
    "chelsea": lambda: thumb(data.chelsea()),
    "pixel-art": lambda: pixel_art(3),
}


@pytest.mark.parametrize("edit", sorted(CLEAN))
@pytest.mark.parametrize("picture", sorted(PICTURES))
def test_clean_copies_are_accepted_and_the_full_check_agrees(picture: str, edit: str) -> None:
    stored = PICTURES[picture]()
    query = CLEAN[edit](stored)
    assert quick_clean_copy(query, stored)
    assert pixel_check(query, stored, identity(query, stored)).passes(PIXELS)


def test_a_copy_stored_at_another_size_is_accepted() -> None:
    """The stored thumbnail is resampled onto the query's grid (a pure scale)."""
    stored = thumb(data.astronaut())
    query = cv2.resize(stored, (150, 150), interpolation=cv2.INTER_AREA)
    assert quick_clean_copy(query, stored)


def test_one_changed_cell_of_pixel_art_is_undecided() -> None:
    """A punk with one extra low-contrast pixel (a mole): 8 x 8 thumbnail pixels that differ by
    0.2, where the full check's disagreement level is 0.12."""
    stored = pixel_art(4)
    query = stored.copy()
    cell = query[96:104, 64:72].astype(np.int16)
    query[96:104, 64:72] = np.clip(cell + 51, 0, 255).astype(np.uint8)
    assert not quick_clean_copy(query, stored)
    assert not quick_clean_copy(_jpeg(80)(query), stored)


def test_cards_of_a_deck_are_undecided() -> None:
    corners = [(34, 40), (102, 40), (34, 140), (102, 140)]
    assert not quick_clean_copy(card([*corners, (68, 90)]), card(corners))
    assert not quick_clean_copy(court_card("diamonds"), court_card("hearts"))


def test_colour_changes_are_left_to_the_full_check() -> None:
    """One tone curve for all channels cannot turn one hue into another: a hue filter (a copy)
    and a recolouring (another picture) are both undecided, the black-and-white copy too."""
    stored = thumb(data.astronaut())
    assert not quick_clean_copy(rotate_hue(stored, 20), stored)
    assert not quick_clean_copy(rotate_hue(stored, 90), stored)
    grey = cv2.cvtColor(cv2.cvtColor(stored, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert not quick_clean_copy(grey, stored)


def test_overlays_are_left_to_the_full_check() -> None:
    stored = thumb(data.astronaut())
    captioned = caption(stored, "for sale", (20, 170))
    assert not quick_clean_copy(captioned, stored)
    assert pixel_check(captioned, stored, identity(captioned, stored)).passes(PIXELS)


def test_another_aspect_ratio_is_undecided() -> None:
    stored = thumb(data.astronaut())
    h, w = stored.shape[:2]
    stretched = cv2.resize(stored, (w, round(h * (1.0 + 2 * QUICK.max_aspect_change))))
    assert not quick_clean_copy(stretched, stored)


def test_flat_pictures_of_different_content_are_undecided() -> None:
    """Two faint textures on the same grey: every residual is small, the detail differs."""
    rng = np.random.default_rng(5)
    base = np.full((192, 192, 3), 128, np.uint8)
    a, b = (np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8) for _ in "ab")
    assert not quick_clean_copy(cv2.GaussianBlur(a, (0, 0), 2.0), cv2.GaussianBlur(b, (0, 0), 2.0))
