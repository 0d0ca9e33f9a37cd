"""How well two aligned grey images agree: correlation of their values, on a mask, and of
their fine detail (a smooth blob and a detailed picture of one outline agree in layout only).
"""

from __future__ import annotations

import cv2
import numpy as np

_DETAIL_SIGMA = 3.0
_DETAIL_ERODE_KERNEL = np.ones((7, 7), np.uint8)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised correlation of two value arrays, in their own precision."""
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 1e-9 else 0.0


def masked_ncc(q: np.ndarray, s: np.ndarray, mask: np.ndarray) -> float:
    """Normalised correlation of two grey images on ``mask`` (uint8)."""
    on = mask > 0
    if int(on.sum()) < 64:
        return 0.0
    return correlation(q[on].astype(np.float64), s[on].astype(np.float64))


def detail_correlation(q: np.ndarray, s: np.ndarray, valid: np.ndarray) -> float:
    """NCC of the high-pass (image minus its blur) of two aligned grey images on ``valid`` (uint8).

    A smooth blob and a detailed picture of the same outline agree in layout, tone and colour
    once histograms are matched and the smooth residual is removed; only their detail differs.
    """
    inner_u8 = cv2.erode(valid, _DETAIL_ERODE_KERNEL)
    if cv2.countNonZero(inner_u8) < 64:
        return 0.0
    qd = q - cv2.GaussianBlur(q, (0, 0), _DETAIL_SIGMA)
    sd = s - cv2.GaussianBlur(s, (0, 0), _DETAIL_SIGMA)
    inner = inner_u8 > 0
    return correlation(qd[inner], sd[inner])
