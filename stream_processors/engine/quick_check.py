"""A cheap, conclusive check of a hash neighbour: is the pair a *clean* copy?

Why: most duplicates in a stream are clean copies of their original (re-encoded, resized,
mirrored, brightened, blurred, framed by a border that trimming removes). The full pixel check
(verify.pixel_check) spends ~9 ms on every pair because it must also tell a pasted caption from
a changed trait, and a hue filter from a recoloured artwork. This check answers only "a clean
copy" or "undecided" (the full check then decides), at a few hundred microseconds, and it is
stricter than the full check's clean path on every count it shares with it:

* one tone curve for all three channels (histogram matching of the pooled channel values):
  brightness, contrast and gamma are absorbed; a hue or saturation filter, a tint, a greyscale
  copy or a recolouring is not, so colour-changed pairs stay undecided and the full check's
  colour rules judge them;
* not one 3x3 patch may disagree beyond the full check's disagreement level (the full check
  allows 0.0005 of the overlap), and at most half the faint disagreement the full check allows;
* the layout and fine-detail correlations must clear higher floors than the full check's;
* only a pair whose aspect ratios agree is judged (the alignment is then a pure scale), and no
  vignette correction is made.

Measured with scripts/evaluate.py's stream order (every hash neighbour that got the dihedral
pixel check, quick and full side by side): of the dev set's 915 pairs, 394 are accepted here and
the full check accepts every one; of the stress set's 703, 189 plus 2 exact copies the full check
refused. Of all cross-artwork pairs within 40 hash bits (dev 258, stress 234) none is accepted:
each keeps a 3x3 patch whose least excess is at least 0.165 (the refusal level is 0.12). The
nearest are CryptoPunk hard negatives, among them the pair one trait apart (a faint blush) that
the full check accepts, one of its two false references on dev.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream_processors.engine.verify import correlation

# box filter side applied to both thumbnails before comparing (the full check: Gaussian sigma 1)
_SMOOTH_SIDE = 3
_TOLERANCE_KERNEL = np.ones((3, 3), np.uint8)  # a query pixel may match any stored neighbour
_PATCH_KERNEL = np.ones((3, 3), np.uint8)  # a disagreement counts from a 3x3 patch on
_TONE_SAMPLES = 1500  # channel values sampled for the tone curve and the layout correlation
_LEVELS = np.arange(256, dtype=np.float64)
_DETAIL_SIGMA = 1.5  # high-pass of the half-size grey image (the full check: 3 at full size)
_DETAIL_KERNEL = (7, 7)
_DETAIL_MARGIN = 2
_MIN_STD = 1e-6


@dataclass(frozen=True)
class QuickThresholds:
    """When a dihedral-aligned pair is a clean copy without the full pixel check.

    max_aspect_change: |log aspect ratio change| up to which the pair is judged;
    diff_level / faint_level: residual (0..1, after the tone curve and a 3x3 shift tolerance)
    above which a pixel disagrees strongly / faintly, as in the full check;
    max_faint: share of faintly disagreeing pixels (in 3x3 patches) allowed, half the full
    check's max_bad_faint; any strongly disagreeing 3x3 patch refuses;
    min_ncc / min_detail_ncc: layout and fine-detail correlation floors (the full check: 0.8
    and 0.5; clean copies on dev sit at 0.97-1.0 and 0.84-1.0, the card and punk negatives that
    pass the residual test nowhere).
    """

    max_aspect_change: float = 0.05
    diff_level: float = 0.12
    faint_level: float = 0.07
    max_faint: float = 0.005
    min_ncc: float = 0.9
    min_detail_ncc: float = 0.6


QUICK = QuickThresholds()


def quick_clean_copy(
    query_thumb: np.ndarray, stored_thumb: np.ndarray, t: QuickThresholds = QUICK
) -> bool:
    """True when the query thumbnail (already in the stored image's orientation) is a clean copy
    of the stored thumbnail; False means undecided, not different (uint8 BGR thumbnails)."""
    qh, qw = query_thumb.shape[:2]
    sh, sw = stored_thumb.shape[:2]
    if abs(np.log((qw / qh) / (sw / sh))) > t.max_aspect_change:
        return False
    q = cv2.blur(query_thumb, (_SMOOTH_SIDE, _SMOOTH_SIDE))
    s = cv2.blur(stored_thumb, (_SMOOTH_SIDE, _SMOOTH_SIDE))
    if (sh, sw) != (qh, qw):
        s = cv2.resize(s, (qw, qh), interpolation=cv2.INTER_LINEAR)
    step = max(1, s.size // _TONE_SAMPLES)
    q_values, s_values = q.reshape(-1)[::step], s.reshape(-1)[::step]
    curve = _tone_curve(s_values, q_values)
    if correlation(q_values.astype(np.float64), curve[s_values].astype(np.float64)) < t.min_ncc:
        return False
    fitted = cv2.LUT(s, curve)
    # per-channel excess of the query over the range of the fitted stored image within one
    # pixel (a sub-pixel shift along an edge is no disagreement); saturating uint8 arithmetic
    excess = cv2.add(
        cv2.subtract(q, cv2.dilate(fitted, _TOLERANCE_KERNEL)),
        cv2.subtract(cv2.erode(fitted, _TOLERANCE_KERNEL), q),
    )
    b, g, r = cv2.split(excess)
    # the least excess of each 3x3 patch: a patch disagrees where even that is above a level
    patch = cv2.erode(cv2.max(cv2.max(b, g), r), _PATCH_KERNEL)
    if cv2.minMaxLoc(patch)[1] > t.diff_level * 255.0:
        return False
    faint = cv2.countNonZero(cv2.threshold(patch, t.faint_level * 255.0, 255, cv2.THRESH_BINARY)[1])
    if faint > t.max_faint * qh * qw:
        return False
    half = (max(1, qw // 2), max(1, qh // 2))
    m = _DETAIL_MARGIN
    dq = _detail(q, half)[m:-m, m:-m]
    ds = _detail(fitted, half)[m:-m, m:-m]
    return _image_correlation(dq, ds) >= t.min_detail_ncc


def _tone_curve(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A uint8 LUT mapping the sampled channel values ``src`` onto the distribution of ``ref``
    (histogram matching at mid-ranks, all channels pooled: one curve for the three)."""
    hs = np.bincount(src, minlength=256)
    hr = np.bincount(ref, minlength=256)
    curve = np.interp(np.cumsum(hs) - 0.5 * hs, np.cumsum(hr) - 0.5 * hr, _LEVELS)
    lut: np.ndarray = np.rint(curve).astype(np.uint8)
    return lut


def _detail(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The high-pass (grey minus its blur) of the image at ``size``."""
    grey = cv2.cvtColor(cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    grey = grey.astype(np.float32)
    return cv2.subtract(grey, cv2.GaussianBlur(grey, _DETAIL_KERNEL, _DETAIL_SIGMA))


def _image_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two same-size float32 images."""
    (ma,), (sa,) = cv2.meanStdDev(a)
    (mb,), (sb,) = cv2.meanStdDev(b)
    if sa[0] < _MIN_STD or sb[0] < _MIN_STD:
        return 0.0
    return float((cv2.mean(cv2.multiply(a, b))[0] - ma[0] * mb[0]) / (sa[0] * sb[0]))
