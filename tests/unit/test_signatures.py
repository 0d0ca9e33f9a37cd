"""Invariances of the global signatures (border trim, 256-bit DCT hash, 64-bit layout hash)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.signatures import (
    HASH_BYTES,
    N_DIHEDRAL,
    apply_dihedral,
    coarse_hashes,
    dct_hash,
    dihedral_hashes,
    hamming,
    trim_uniform_border,
)

# A PDQ-class hash of unrelated images sits near 128 bits; edits that keep the picture stay far
# below; these bounds are what the shortlist radius (48) relies on.
NEAR = 32
FAR = 80


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _synthetic() -> np.ndarray:
    """A fixed, asymmetric grey test card (no randomness, no files)."""
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    img = 40 + 0.5 * xx + 0.25 * yy
    img[60:120, 30:200] = 220
    cv2.circle(img, (180, 190), 40, 10.0, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), np.uint8)


def test_golden_hash_of_synthetic_image() -> None:
    code = dct_hash(_synthetic())
    assert code.shape == (HASH_BYTES,)
    assert code.tobytes().hex() == GOLDEN_HEX


def test_dihedral_variants_match_transformed_images() -> None:
    img = _synthetic()
    variants = dihedral_hashes(img)
    assert variants.shape == (N_DIHEDRAL, HASH_BYTES)
    for k in range(N_DIHEDRAL):
        assert hamming(variants[k], dct_hash(apply_dihedral(img, k))) <= 4, k


@pytest.mark.parametrize(
    "edit",
    [
        lambda g: _jpeg(g, 40),
        lambda g: cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        lambda g: cv2.GaussianBlur(g, (0, 0), 2.0),
        lambda g: np.clip(g.astype(np.int16) + 30, 0, 255).astype(np.uint8),
        lambda g: np.clip(g + np.random.default_rng(0).normal(0, 10, g.shape), 0, 255).astype(
            np.uint8
        ),
    ],
    ids=["jpeg40", "resize0.5", "blur2", "brighter", "noise10"],
)
def test_hash_stays_close_under_global_edits(edit: Callable[[np.ndarray], np.ndarray]) -> None:
    for rgb in (data.astronaut(), data.chelsea(), data.coffee()):
        g = _gray(rgb)
        assert hamming(dct_hash(g), dct_hash(edit(g))) <= NEAR


def test_mirror_is_found_through_its_dihedral_variant() -> None:
    g = _gray(data.astronaut())
    mirrored = dct_hash(np.ascontiguousarray(g[:, ::-1]))
    assert hamming(dct_hash(g), mirrored) > FAR  # the plain hash does not see it...
    assert hamming(dihedral_hashes(g)[1], mirrored) <= 4  # ...its variant 1 does


def test_different_artworks_stay_far() -> None:
    grays = [_gray(x) for x in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())]
    for i in range(len(grays)):
        for j in range(i + 1, len(grays)):
            assert hamming(dct_hash(grays[i]), dct_hash(grays[j])) >= FAR


def test_trim_removes_solid_border_and_padding() -> None:
    rgb = cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)
    h, w = rgb.shape[:2]
    padded = cv2.copyMakeBorder(rgb, 40, 40, 25, 25, cv2.BORDER_CONSTANT, value=(20, 200, 30))
    box = trim_uniform_border(padded)
    assert abs(box.x0 - 25) <= 3 and abs(box.y0 - 40) <= 3
    assert abs(box.width - w) <= 6 and abs(box.height - h) <= 6
    inner = padded[box.y0 : box.y1, box.x0 : box.x1]
    g0, g1 = _gray(rgb[..., ::-1]), cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY)
    assert hamming(dct_hash(g0), dct_hash(g1)) <= 12


def test_trim_keeps_an_image_without_border() -> None:
    rgb = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    box = trim_uniform_border(rgb)
    assert (box.x0, box.y0, box.x1, box.y1) == (0, 0, rgb.shape[1], rgb.shape[0])


def test_layout_hash_sees_through_noise_on_a_symmetric_icon() -> None:
    """The case the 64-bit layout hash exists for: a mirror-symmetric flat icon with noise."""
    icon = np.full((256, 256), 240, np.uint8)
    cv2.circle(icon, (128, 128), 100, 150, -1)
    cv2.circle(icon, (90, 110), 15, 60, -1)
    cv2.circle(icon, (166, 110), 15, 60, -1)
    noisy = np.clip(icon + np.random.default_rng(1).normal(0, 11, icon.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    a, b = coarse_hashes(icon), coarse_hashes(noisy)
    assert a.shape == (N_DIHEDRAL, 8)
    assert hamming(a[0], b[0]) <= 6


GOLDEN_HEX = "255e7e00db802e4891bf81bf32546dabd254dab46d4bdab4224b807fa5b7da54"
