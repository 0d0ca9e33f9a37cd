"""The stored thumbnail brought onto the query's: the warp, and the tone and colour fit that
absorbs what an edit does to every pixel alike (brightness, contrast, gamma, hue, saturation,
tints), so that what is left to compare is what the edit changed in places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from stream_processors.engine.verify.geometry import is_affine

_HIST_LEVELS = 256
COLOUR_FIT_KEEP = 0.9
_COLOUR_FIT_SAMPLES = 4000
_CHANNEL_OFFSETS = np.arange(3, dtype=np.uint16) * _HIST_LEVELS


def warp(
    img: np.ndarray, transform: np.ndarray, size: tuple[int, int], flags: int, border: float
) -> np.ndarray:
    """Warp by a 2x3 affine or a 3x3 homography (stored frame -> query frame)."""
    if is_affine(transform):
        out: np.ndarray = cv2.warpAffine(img, transform, size, flags=flags, borderValue=border)
    else:
        out = cv2.warpPerspective(img, transform, size, flags=flags, borderValue=border)
    return out


def mean_grey(img: np.ndarray) -> np.ndarray:
    """Mean of the three channels; the same sum order and division as ``img.mean(axis=2)``."""
    out: np.ndarray = img[..., 0] + img[..., 1]
    out += img[..., 2]
    out /= 3
    return out


def _level_index(v: np.ndarray) -> np.ndarray:
    """Histogram bin of each value of an N x 3 array in [0, 1]: its level, plus 256 per channel.

    The level is rounded in float64 whatever ``v``'s type (float32 values scale exactly).
    """
    levels = _HIST_LEVELS - 1
    f = np.multiply(v, levels, dtype=np.float64)
    np.rint(f, out=f)
    np.clip(f, 0, levels, out=f)
    out = f.astype(np.uint16)
    out += _CHANNEL_OFFSETS  # integer offsets on the integer levels: exact, and a quarter the bytes
    return out


def _match_histograms(src: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:
    """Map each channel of src so its distribution matches ref's (N x 3 arrays in [0, 1]).

    Works on 256 levels through cumulative histograms, so it costs O(n) instead of a sort. The
    result goes to ``out[:, :3]``.
    """
    levels = _HIST_LEVELS - 1
    n = src.shape[0]
    s_idx = _level_index(src)
    r_idx = _level_index(ref)
    s_counts = np.bincount(s_idx.ravel(), minlength=3 * _HIST_LEVELS)
    r_counts = np.bincount(r_idx.ravel(), minlength=3 * _HIST_LEVELS)
    lut = np.empty(3 * _HIST_LEVELS)
    for c in range(3):
        band = slice(c * _HIST_LEVELS, (c + 1) * _HIST_LEVELS)
        s_pdf = s_counts[band] / max(1, n)
        # mid-rank of each level (a flat region maps to the middle of its share of ref values)
        s_mid = np.cumsum(s_pdf) - s_pdf / 2
        pos = np.clip(s_mid * n, 0, n - 1)
        # the sorted ref levels are only needed at the two ranks around each position: the same
        # linear interpolation as over all n ranks, without materialising them
        ranks = np.floor(pos).astype(np.intp)
        ranks = np.unique(np.concatenate([ranks, np.minimum(ranks + 1, n - 1)]))
        r_cum = np.cumsum(r_counts[band])
        r_at = np.searchsorted(r_cum, ranks, side="right").astype(np.float64)
        lut[band] = np.interp(pos, ranks.astype(np.float64), r_at) / levels
    out[:, :3] = np.take(lut, s_idx)


def fit_colours(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching, then a robust affine colour map (N x 3 arrays; ``src``
    may be float32, ``ref`` is float64).

    Histogram matching absorbs monotone tone curves (brightness, contrast, gamma); the affine
    3x4 map absorbs hue rotation, saturation and tints, which mix channels. The refit without
    the worst residuals keeps an overlay or a changed detail from bending the global fit.
    """
    x = np.empty((src.shape[0], 4))
    _match_histograms(src, ref, x)
    x[:, 3] = 1.0
    step = max(1, x.shape[0] // _COLOUR_FIT_SAMPLES)  # the fit needs a sample, not every pixel
    xs, rs = x[::step], ref[::step]
    keep = np.ones(xs.shape[0], bool)
    coef = np.zeros((4, 3))
    for _ in range(2):
        # least squares through the 4x4 normal equations: the same fit as lstsq on the samples
        # (lstsq's rank handling kept for a greyscale pair, whose channel columns coincide) at
        # a twentieth of its cost
        xk = xs[keep]
        coef, *_ = np.linalg.lstsq(xk.T @ xk, xk.T @ rs[keep], rcond=None)
        d = np.abs(xs @ coef - rs)
        res = np.maximum(np.maximum(d[:, 0], d[:, 1]), d[:, 2])
        keep = res <= np.quantile(res, COLOUR_FIT_KEEP)
    fitted: np.ndarray = x @ coef
    return fitted


def overlap(img: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The N x 3 values of a 3-channel image at flat pixel indices ``idx``; ``take`` gathers
    them ~3x faster than fancy indexing, with the same values."""
    return np.take(img.reshape(-1, 3), idx, axis=0)


@dataclass(frozen=True)
class Decolouring:
    """One way an editor turns colours into greys: ``grey`` maps BGR values (any shape ending
    in 3, in [0, 1]) to one grey level each.

    Why several: a black-and-white copy is not always the luma (Photoshop's and GIMP's
    desaturate modes offer luminosity, average, lightness and value; a channel mixer keeps one
    channel). Each is a fixed map with no free weight, so a greyscale copy is still explained by
    its colours' greys, not by whatever mix would fit another picture."""

    name: str
    grey: Callable[[np.ndarray], np.ndarray]


def _weighted(weights: tuple[float, float, float]) -> Callable[[np.ndarray], np.ndarray]:
    w = np.array(weights)

    def grey(values: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.tensordot(values, w.astype(values.dtype), axes=([-1], [0]))
        return out

    return grey


def _value(values: np.ndarray) -> np.ndarray:
    out: np.ndarray = values.max(axis=-1)
    return out


def _lightness(values: np.ndarray) -> np.ndarray:
    out: np.ndarray = (values.max(axis=-1) + values.min(axis=-1)) / 2
    return out


LUMA = Decolouring("luma", _weighted((0.114, 0.587, 0.299)))  # ITU-R BT.601
# The decolourings a greyscale copy is explained by, luma first (cv2.COLOR_BGR2GRAY, the one
# the engine always knew; it is kept whenever it explains the copy): the channel mean, HSV
# value (what a near-zero saturation leaves), HLS lightness, and each single channel.
DECOLOURINGS: tuple[Decolouring, ...] = (
    LUMA,
    Decolouring("mean", _weighted((1 / 3, 1 / 3, 1 / 3))),
    Decolouring("value", _value),
    Decolouring("lightness", _lightness),
    Decolouring("blue", _weighted((1.0, 0.0, 0.0))),
    Decolouring("green", _weighted((0.0, 1.0, 0.0))),
    Decolouring("red", _weighted((0.0, 0.0, 1.0))),
)
DECOLOURING_BY_NAME = {d.name: d for d in DECOLOURINGS}


def grey_image(img: np.ndarray, decolouring: Decolouring = LUMA) -> np.ndarray:
    """A float BGR image as its grey (``decolouring``, luma by default) in all three channels."""
    grey = decolouring.grey(img.astype(np.float32, copy=False))
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2), np.float32)
