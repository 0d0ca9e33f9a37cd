"""Black-and-white copies made other ways than luma (verify.alignment.DECOLOURINGS): one channel,
the channel mean, HSV value, a harsh contrast. Each is a copy when its greys are one of these
fixed decolourings of the original's colours and the structure then agrees as for a colour copy;
a grey copy of one picture is never a copy of another, whichever decolouring comes closest."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.verify import ColourShift, PixelRule, PixelThresholds, pixel_check
from stream_processors.engine.verify.alignment import DECOLOURINGS, LUMA, grey_image
from stream_processors.engine.verify.chroma import colour_shift
from tests.unit.verify_fixtures import identity, thumb

PIXELS = PixelThresholds()


def _grey(one: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(one.astype(np.uint8), cv2.COLOR_GRAY2BGR))


def _decoloured(bgr: np.ndarray, how: str) -> np.ndarray:
    if how == "mean":
        return _grey(bgr.mean(axis=2).round())
    if how == "value":
        return _grey(bgr.max(axis=2))
    if how == "red":
        return _grey(bgr[..., 2])
    if how == "green":
        return _grey(bgr[..., 1])
    luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64)
    return _grey(np.clip((luma - 128.0) * 1.5 + 128.0, 0, 255).round())  # a harsh B&W preset


def test_each_decolouring_maps_values_and_images_alike() -> None:
    bgr = np.array([[0.2, 0.5, 0.9], [1.0, 0.0, 0.4]])
    expected = {
        "luma": bgr @ np.array([0.114, 0.587, 0.299]),
        "mean": bgr.mean(axis=1),
        "value": bgr.max(axis=1),
        "lightness": (bgr.max(axis=1) + bgr.min(axis=1)) / 2,
        "blue": bgr[:, 0],
        "green": bgr[:, 1],
        "red": bgr[:, 2],
    }
    assert DECOLOURINGS[0] is LUMA
    for d in DECOLOURINGS:
        np.testing.assert_allclose(d.grey(bgr), expected[d.name], atol=1e-6)
    image = grey_image(bgr.reshape(1, 2, 3).astype(np.float32), DECOLOURINGS[1])
    assert image.shape == (1, 2, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, :, 2], expected["mean"], atol=1e-6)


@pytest.mark.parametrize("how", ["mean", "value", "red", "green", "contrast"])
def test_a_copy_decoloured_another_way_than_luma_is_a_clean_copy(how: str) -> None:
    t = thumb(data.astronaut())
    grey = _decoloured(t, how)
    for q, s in ((grey, t), (t, grey)):  # whichever side was stored first
        ev = pixel_check(q, s, identity(q, s))
        assert ev.colour is not None and ev.colour.greyscale_copy, how
        assert ev.verdict(PIXELS).rule is PixelRule.CLEAN_COPY, how


def test_luma_is_kept_when_it_explains_the_copy() -> None:
    t = thumb(data.astronaut())
    grey = _grey(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY))
    ev = pixel_check(grey, t, identity(grey, t))
    assert ev.colour is not None and ev.colour.decolouring == LUMA.name


def _saturated() -> np.ndarray:
    """Pure blue, green and red shapes on a grey ramp: their means are far from their lumas."""
    ramp = np.tile(np.linspace(40, 215, 192).astype(np.uint8)[None, :, None], (128, 1, 3))
    out = np.ascontiguousarray(ramp)
    for k, colour in enumerate(((230, 20, 20), (20, 230, 20), (20, 20, 230))):
        cv2.circle(out, (35 + 60 * k, 45), 24, colour, -1, cv2.LINE_AA)
        cv2.rectangle(out, (15 + 60 * k, 85), (55 + 60 * k, 115), colour[::-1], -1)
    return out


def test_a_mean_copy_is_explained_by_the_mean_not_the_luma() -> None:
    t = _saturated()
    grey = _decoloured(t, "mean")
    ev = pixel_check(grey, t, identity(grey, t))
    assert ev.colour is not None and ev.colour.decolouring == "mean"


@pytest.mark.parametrize("how", ["luma", "mean", "red", "green", "value"])
def test_a_grey_copy_of_one_picture_is_no_copy_of_another(how: str) -> None:
    """The grayscale-style hard negative: a grey copy of one photo against another photo of
    the same size, whichever decolouring made it."""
    cat = thumb(data.chelsea())
    coffee = np.ascontiguousarray(cv2.resize(thumb(data.coffee()), cat.shape[1::-1]))
    grey = _decoloured(cat, how) if how != "luma" else _grey(cv2.cvtColor(cat, cv2.COLOR_BGR2GRAY))
    for q, s in ((grey, coffee), (coffee, grey)):
        assert not pixel_check(q, s, identity(q, s)).verdict(PIXELS).accepted, how


def test_a_flat_grey_picture_is_no_decolouring_of_a_colourful_one() -> None:
    """The dev set's cell micrograph against a colour wheel on black: the grey side is flat
    where the other's greys vary (a tone map of gain ~0), so no decolouring explains it, however
    close the flat grey lies to the median of some decolouring's greys."""
    rng = np.random.default_rng(0)
    n = 6000
    dark = np.repeat(rng.uniform(0.0, 0.3, (n // 2, 1)), 3, axis=1)  # the wheel's dark ground
    hue = rng.uniform(0, 2 * np.pi, n // 2)
    wheel = np.clip(0.5 + 0.45 * np.stack([np.cos(hue), np.cos(hue + 2.1), np.cos(hue + 4.2)], 1),
                    0, 1)
    colour_side = np.concatenate([dark, wheel])
    grey_side = np.full((n, 3), 0.16) + rng.normal(0, 0.005, (n, 1))
    shift = colour_shift(grey_side, colour_side)
    assert shift.chroma_flip > PIXELS.max_chroma_flip
    assert shift.greyscale_gap is None and not shift.greyscale_copy


def test_a_decolouring_other_than_luma_must_explain_the_greys_more_tightly() -> None:
    """Seven decolourings are tried, so one of them may come close by chance (HSV value flattens
    a colour wheel to an even grey): only luma has the wider limit."""
    luma = ColourShift(0.6, 0.0, greyscale_gap=0.06, decolouring="luma")
    value = ColourShift(0.6, 0.0, greyscale_gap=0.06, decolouring="value")
    assert luma.greyscale_copy and not value.greyscale_copy
    assert ColourShift(0.6, 0.0, greyscale_gap=0.02, decolouring="value").greyscale_copy
