"""How the colours of an aligned pair differ before any fitting (``ColourShift``): colour
against grey, hue rotation, and, when one side is greyscale, whether its greys are a
decolouring of the other side's colours (its luma, their mean, one channel...) and how much of
its ink turned coloured. The colour rule (``rules.colour``) judges
these figures; the fit would otherwise hide a black crown painted red.
"""

from __future__ import annotations

import numpy as np

from stream_processors.engine.verify.alignment import COLOUR_FIT_KEEP, DECOLOURINGS, LUMA
from stream_processors.engine.verify.evidence import ColourShift
from stream_processors.engine.verify.rules.colour import GREYSCALE_MAX_GAP

_STRONG_CHROMA = 0.2  # opponent-space chroma (0..~0.8) of a clearly coloured pixel
_GREY_CHROMA = 0.04  # ... and of a grey one
_HUE_CHROMA = 0.1  # pixels this coloured on both sides have a hue to compare
_MIN_HUE_PIXELS = 50
_COLOUR_SHIFT_SAMPLES = 8000
_GREYSCALE_SHARE = 0.98  # a picture this much grey is a greyscale picture
_INK_CONTRAST = 0.25  # grey-level distance from the background that makes a pixel ink
_TONE_FIT_MIN_STD = 0.05  # luma spread (0..1) the greyscale tone fit needs
# The tone map of a greyscale copy keeps its greys' order and most of their contrast: on the
# neverball stress sets its gain is 0.8-1.4 (contrast edits reach 0.6); a grey picture flat
# where the other's greys vary (a smooth cell micrograph against a colour wheel on black, dev:
# gain -0.01) is explained by no decolouring, however small the median gap it leaves.
_MIN_TONE_GAIN = 0.5


def _opponent(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Opponent colour axes (red-green, yellow-blue) of N x 3 BGR values in [0, 1]: grey is 0."""
    b, g, r = bgr[:, 0], bgr[:, 1], bgr[:, 2]
    return (r - g) / np.sqrt(2.0), (r + g - 2.0 * b) / np.sqrt(6.0)


def colour_shift(q: np.ndarray, s: np.ndarray) -> ColourShift:
    """Compare the chroma of aligned query and stored pixels (N x 3 BGR in [0, 1]) on an even
    sample of them: two fractions and a mean angle need thousands of pixels, not all."""
    step = max(1, q.shape[0] // _COLOUR_SHIFT_SAMPLES)
    qs, ss = q[::step], s[::step]
    q1, q2 = _opponent(qs)
    s1, s2 = _opponent(ss)
    cq, cs = np.hypot(q1, q2), np.hypot(s1, s2)
    strong, grey = _STRONG_CHROMA, _GREY_CHROMA
    flipped = ((cq >= strong) & (cs <= grey)) | ((cs >= strong) & (cq <= grey))
    flip = float(np.mean(flipped))
    sides = _greyscale_sides(qs, ss, cq, cs)
    gap, decolouring = _greyscale_gap(sides, flipped)
    ink = _ink_flip(sides, flipped)
    both = (cq >= _HUE_CHROMA) & (cs >= _HUE_CHROMA)
    if int(both.sum()) < _MIN_HUE_PIXELS:
        return ColourShift(flip, 0.0, gap, ink, decolouring)
    rotation = np.arctan2(q2[both], q1[both]) - np.arctan2(s2[both], s1[both])
    mean = complex(np.mean(np.exp(1j * rotation)))
    return ColourShift(flip, abs(float(np.degrees(np.angle(mean)))), gap, ink, decolouring)


def _greyscale_sides(
    q: np.ndarray, s: np.ndarray, cq: np.ndarray, cs: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(grey side, colour side) of the sampled pixels when one side is a greyscale picture
    (``cq``/``cs``: their chroma); None when neither is."""
    if float(np.mean(cq <= _GREY_CHROMA)) >= _GREYSCALE_SHARE:
        return q, s
    if float(np.mean(cs <= _GREY_CHROMA)) >= _GREYSCALE_SHARE:
        return s, q
    return None


def _ink_flip(sides: tuple[np.ndarray, np.ndarray] | None, flipped: np.ndarray) -> float:
    """When one side is a greyscale picture: the share of its ink (pixels away from its
    background level, the median grey) that is strongly coloured on the other side. A pasted
    logo covers ink and background alike, so its share of the ink is its share of the picture;
    a red suit over a black one covers mostly ink."""
    if sides is None:
        return 0.0
    level = sides[0].mean(axis=1)
    ink = np.abs(level - np.median(level)) >= _INK_CONTRAST
    if int(ink.sum()) < _MIN_HUE_PIXELS:
        return 0.0
    return float(np.mean(flipped[ink]))


def _greyscale_gap(
    sides: tuple[np.ndarray, np.ndarray] | None, flipped: np.ndarray
) -> tuple[float | None, str]:
    """When one side is a greyscale picture: how far its grey levels are from a decolouring of
    the other side's colours, and which decolouring (``alignment.DECOLOURINGS``): luma whenever
    it explains them (gap at most GREYSCALE_MAX_GAP), else the one that explains them best;
    (None, luma) when neither side is greyscale or nothing flipped.

    The gap is the median distance, over the pixels coloured on the other side, between the
    grey level and that colour's grey after the brightness and contrast change (clipped to the
    grey range, as a harsh black-and-white preset clips) that maps the grey of the pixels that
    did not flip to their grey levels (a copy may be both greyscale and brightened). The map is
    learnt where both sides agree that there is no strong colour and is affine, not any tone
    curve: fitted on the flipped pixels too, or free to bend, it would turn a red crown's luma
    into black and excuse the king of spades. Each decolouring is a fixed map (no weights fitted
    to the pair), so it explains a copy's greys, not another picture's."""
    if sides is None or not flipped.any():
        return None, LUMA.name
    grey_side, colour_side = sides
    level = grey_side.mean(axis=1)
    gaps: list[tuple[float, str]] = []
    for decolouring in DECOLOURINGS:
        grey = decolouring.grey(colour_side)
        gain, offset = _robust_line(grey[~flipped], level[~flipped])
        if gain < _MIN_TONE_GAIN:
            continue  # the grey side does not follow these greys: flat where they vary
        fitted = np.clip(gain * grey[flipped] + offset, 0.0, 1.0)
        gap = float(np.median(np.abs(level[flipped] - fitted)))
        if decolouring is LUMA and gap <= GREYSCALE_MAX_GAP:
            return gap, LUMA.name
        gaps.append((gap, decolouring.name))
    return min(gaps, default=(None, LUMA.name))


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares y ~ gain * x + offset, refitted without the worst residuals (an overlay,
    the changed part); the identity when x has too few pixels or too little spread to say."""
    keep = np.ones(x.shape[0], bool)
    gain, offset = 1.0, 0.0
    for _ in range(2):
        xs, ys = x[keep], y[keep]
        if xs.size < _MIN_HUE_PIXELS or float(xs.std()) < _TONE_FIT_MIN_STD:
            return 1.0, 0.0
        gain, offset = (float(v) for v in np.polyfit(xs, ys, 1))
        res = np.abs(gain * x + offset - y)
        keep = res <= np.quantile(res, COLOUR_FIT_KEEP)
    return gain, offset
