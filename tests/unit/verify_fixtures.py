"""Pictures, edits and hand-written figures for the verifier's tests: every picture is drawn
here or taken from scikit-image's bundled data (no binary fixtures in the repository).

Why a module of its own: the pixel check, each rule's tests and the quick check's tests judge
the same pairs, so a caption or a card is drawn the same way in all of them.
"""

from __future__ import annotations

import cv2
import numpy as np

from stream_processors.engine.verify import ColourShift, OverlayBlob, PixelCheck, Refusal, Verdict

THUMB = 192


def thumb(rgb: np.ndarray, long_side: int = THUMB) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))


def identity(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    qh, qw = query.shape[:2]
    sh, sw = stored.shape[:2]
    return np.array([[qw / sw, 0.0, 0.0], [0.0, qh / sh, 0.0]])


def inset(stored: np.ndarray, canvas: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``stored`` scaled by ``scale`` into the middle of ``canvas``; return it, affine."""
    ch, cw = canvas.shape[:2]
    sh, sw = stored.shape[:2]
    w, h = round(sw * scale), round(sh * scale)
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    out = canvas.copy()
    out[y0 : y0 + h, x0 : x0 + w] = cv2.resize(stored, (w, h), interpolation=cv2.INTER_AREA)
    affine = np.array([[w / sw, 0.0, float(x0)], [0.0, h / sh, float(y0)]])
    return out, affine


def pixel_art(seed: int, cells: int = 24, side: int = THUMB) -> np.ndarray:
    """A CryptoPunk-like picture: a few flat colours on a grid, scaled up without smoothing."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    art = palette[rng.integers(0, 6, (cells, cells))]
    return np.ascontiguousarray(cv2.resize(art, (side, side), interpolation=cv2.INTER_NEAREST))


def caption(img: np.ndarray, text: str, org: tuple[int, int]) -> np.ndarray:
    """White anti-aliased text with a dark drop shadow, as re-posters stamp on a picture."""
    out = img.copy()
    shadow = (org[0] + 1, org[1] + 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, text, shadow, font, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(out, text, org, font, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def card(pips: list[tuple[int, int]]) -> np.ndarray:
    """A playing card: black club-like pips on white."""
    card = np.full((192, 136, 3), 255, np.uint8)
    for x, y in pips:
        for dx, dy in ((-7, 2), (7, 2), (0, -8)):
            cv2.circle(card, (x + dx, y + dy), 7, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.line(card, (x, y), (x, y + 14), (0, 0, 0), 3, cv2.LINE_AA)
    return card


def rotate_hue(bgr: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(degrees / 2)) % 180).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def ace(colour: tuple[int, int, int]) -> np.ndarray:
    """An ace: a grey frame, a rank glyph and three small pips on white; the pips are a small
    share of the card but most of its ink."""
    card = np.full((192, 136, 3), 255, np.uint8)
    cv2.rectangle(card, (4, 4), (131, 187), (170, 170, 170), 2)
    for x, y, r in ((22, 46, 8), (68, 96, 16), (114, 146, 8)):
        cv2.circle(card, (x, y), r, colour, -1, cv2.LINE_AA)
    cv2.putText(card, "A", (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2, cv2.LINE_AA)
    return card


def court_card(suit: str) -> np.ndarray:
    """A red court card: a crown in the middle and the suit under the rank in two opposite
    corners, the second turned half round, as on real cards."""
    card = np.full((192, 136, 3), 255, np.uint8)
    red = (60, 60, 200)
    cv2.rectangle(card, (3, 3), (132, 188), (190, 190, 190), 2)
    crown = np.array([[36, 120], [100, 120], [108, 70], [84, 90], [68, 60], [52, 90], [28, 70]])
    cv2.fillPoly(card, [crown], red, cv2.LINE_AA)
    corner = np.full((44, 30, 3), 255, np.uint8)
    cv2.putText(corner, "J", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.7, red, 2, cv2.LINE_AA)
    if suit == "hearts":
        cv2.circle(corner, (10, 28), 5, red, -1, cv2.LINE_AA)
        cv2.circle(corner, (20, 28), 5, red, -1, cv2.LINE_AA)
        cv2.fillPoly(corner, [np.array([[5, 30], [25, 30], [15, 42]])], red, cv2.LINE_AA)
    else:
        cv2.fillPoly(corner, [np.array([[15, 22], [23, 32], [15, 42], [7, 32]])], red, cv2.LINE_AA)
    card[6:50, 6:36] = corner
    card[142:186, 100:130] = corner[::-1, ::-1]
    return card


def flat_sign(bar_vertical: bool = False) -> np.ndarray:
    """Flat, low-texture art: a white disk with a black bar on black."""
    sign = np.zeros((192, 192, 3), np.uint8)
    cv2.circle(sign, (96, 96), 80, (255, 255, 255), -1, cv2.LINE_AA)
    if bar_vertical:
        cv2.rectangle(sign, (84, 40), (108, 152), (0, 0, 0), -1)
    else:
        cv2.rectangle(sign, (40, 84), (152, 108), (0, 0, 0), -1)
    return sign


def crop(stored: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """A crop of ``frac`` of each side of ``stored`` (a third of the rest on the top and left),
    enlarged back to the stored size, and the stored -> crop affine."""
    h, w = stored.shape[:2]
    cw, ch = round(w * frac), round(h * frac)
    x0, y0 = (w - cw) // 3, (h - ch) // 3
    k = w / cw
    out = cv2.resize(stored[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out), np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])


def greyscale(bgr: np.ndarray) -> np.ndarray:
    """The picture in black and white, as a BGR image."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))


def figures(
    *,
    cover_small: float = 1.0,
    cover_large: float = 1.0,
    ncc: float = 0.99,
    bad: float = 0.0,
    bad_center: float = 0.0,
    bad_faint: float = 0.0,
    detail_ncc: float = 0.9,
    overlay: OverlayBlob | None = None,
    colour: ColourShift | None = None,
    ncc_unshaded: float = 0.99,
    overlays: OverlayBlob | None = None,
) -> PixelCheck:
    """A clean pair's figures by default, with the named ones changed: one rule at a time."""
    return PixelCheck(
        cover_small,
        cover_large,
        ncc,
        bad,
        bad_center,
        bad_faint,
        detail_ncc,
        overlay,
        colour,
        ncc_unshaded,
        overlays,
    )


def blob(
    motifs: tuple[float, ...] = (0.3, 0.5),
    *,
    box: float = 0.05,
    outside_share: float = 0.05,
    oblique: float = 0.3,
    ncc: float = 0.97,
    detail_ncc: float = 0.8,
    outside_faint: float = 0.001,
    outside_strong: float = 0.0,
    outside_mirrored: float = 0.0,
    parts: int = 1,
    self_mirrored: float = 0.0,
) -> OverlayBlob:
    """A caption's figures as one blob by default (compact, oblique edges, clean around it,
    repeating nowhere); ``motifs`` are its repeats in the two pictures."""
    return OverlayBlob(
        box,
        outside_share,
        oblique,
        ncc,
        detail_ncc,
        outside_faint,
        outside_strong,
        outside_mirrored,
        lambda: list(motifs),
        parts=parts,
        self_mirrored=self_mirrored,
    )


def refusal(verdict: Verdict, check: str) -> Refusal | None:
    """The refusal of the rule named ``check`` on the way to ``verdict``, if it refused."""
    return next((r for r in verdict.refusals if r.check == check), None)
