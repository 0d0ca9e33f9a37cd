"""Hard negatives for the stress set: pairs of *different* pictures built to look alike.

Issue 15's false positives came from pairs like these, so the stress set must hold them for
`picnix eval` to count what a recall gain costs in precision:

- ``neg_background``: two different pictures pasted at the same place into one large
  background photo (most of the two uploads' pixels agree);
- ``neg_frame``: two different pictures inside one and the same wide frame;
- ``neg_lowinfo``: low-information pictures, a dark silhouette or a dark disk on a transparent or
  flat background, against another such picture;
- ``neg_grayscale_style``: the grayscale copy of a picture A (a true variant of A) against a
  different picture B of the same source, the most alike of the pool.

Each pair is two rows of different groups; the second is ``hard_negative_of`` the first, so the
evaluator's calib/holdout split keeps them together. Pictures come from a pool of the source's
originals set aside for this (no pool picture is an original, and each is used once), so a
match between two rows of a pair can only be a wrong one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from scripts.stress_frames import draw_frame

NEGATIVE_FAMILIES = ("neg_background", "neg_frame", "neg_lowinfo", "neg_grayscale_style")
POOL_PER_PAIR = {"neg_background": 3, "neg_frame": 2, "neg_lowinfo": 2, "neg_grayscale_style": 1}

BACKGROUND_LONG_SIDE = 800  # the shared photo is the larger part of both uploads
PASTE_FRAC = (0.35, 0.5)  # pasted picture's long side, of the background's short side
FRAME_PICTURE_SIDE = 320
LOWINFO_SIDE = (256, 480)
LOWINFO_STYLES = ("silhouette", "disk")
LOWINFO_BACKGROUNDS = ("transparent", "white", "grey")
SILHOUETTE_INK_BGR = (28, 24, 22)
SILHOUETTE_DIFF = 40  # a pixel this far from the border colour belongs to the figure
DISK_RADIUS_FRAC = 0.42
DISK_DARKEN = (0.1, 0.2)  # the picture inside the disk, nearly black (a dark planet, a coin)
STYLE_THUMB = 24  # side of the grey thumbnails compared to find the most alike picture

FLAT_BGR = {"white": (255, 255, 255), "grey": (200, 200, 200)}


@dataclass(frozen=True)
class PoolPicture:
    """A source picture set aside for negatives: its group, provenance and pixels (BGR)."""

    group_id: str
    source: str
    image: np.ndarray


@dataclass(frozen=True)
class NegativeRow:
    """A generated upload: the pixels (BGR or BGRA) and its manifest cells."""

    image: np.ndarray
    group_id: str
    kind: str
    transform: str
    source: str


def _resize_long(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    f = side / max(h, w)
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)


def _pair(
    first: np.ndarray, second: np.ndarray, family: str, index: int, sources: Sequence[str]
) -> list[NegativeRow]:
    group = f"N{family[4:6].upper()}{index:03d}"
    return [
        NegativeRow(first, f"{group}A", "distractor", f"none;family={family}", sources[0]),
        NegativeRow(second, f"{group}B", "distractor",
                    f"none;hard_negative_of={group}A;family={family}", sources[1]),
    ]


def shared_background(
    background: PoolPicture, one: PoolPicture, two: PoolPicture, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``one`` and ``two`` pasted at the same place into the same enlarged ``background``."""
    canvas = _resize_long(background.image, BACKGROUND_LONG_SIDE)
    h, w = canvas.shape[:2]
    side = max(16, int(float(rng.uniform(*PASTE_FRAC)) * min(h, w)))
    a, b = _resize_long(one.image, side), _resize_long(two.image, side)
    ph, pw = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = cv2.resize(a, (pw, ph)), cv2.resize(b, (pw, ph))
    y = int(rng.integers(0, h - ph + 1))
    x = int(rng.integers(0, w - pw + 1))
    out = []
    for pic in (a, b):
        c = canvas.copy()
        c[y : y + ph, x : x + pw] = pic
        out.append(c)
    return out[0], out[1]


def shared_frame(
    one: PoolPicture, two: PoolPicture, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``one`` and ``two`` at one size inside one and the same wide frame."""
    size = (FRAME_PICTURE_SIDE, FRAME_PICTURE_SIDE)
    state = rng.bit_generator.state
    framed = []
    for pic in (one, two):
        rng.bit_generator.state = state  # the same frame, drawn twice
        framed.append(draw_frame(cv2.resize(pic.image, size, interpolation=cv2.INTER_AREA),
                                 rng)[0])
    return framed[0], framed[1]


def _figure_mask(img: np.ndarray) -> np.ndarray:
    """Where the figure is: pixels far from the picture's border colour (0/1 float)."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    colour = np.median(border, axis=0)
    diff = np.abs(img.astype(np.int16) - colour.astype(np.int16)).max(axis=2)
    mask = (diff > SILHOUETTE_DIFF).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel).astype(np.float32)


def low_information(
    pic: PoolPicture, style: str, background: str, side: int, rng: np.random.Generator
) -> np.ndarray:
    """A dark silhouette of ``pic``'s figure, or ``pic`` darkened inside a disk, on a
    transparent (BGRA) or flat background."""
    img = cv2.resize(pic.image, (side, side), interpolation=cv2.INTER_AREA)
    if style == "silhouette":
        coverage = _figure_mask(img)
        ink = np.empty_like(img)
        ink[:] = SILHOUETTE_INK_BGR
    else:
        disk = np.zeros((side, side), np.uint8)
        cv2.circle(disk, (side // 2, side // 2), int(DISK_RADIUS_FRAC * side), 1, -1, cv2.LINE_AA)
        coverage = disk.astype(np.float32)
        ink = (img.astype(np.float32) * float(rng.uniform(*DISK_DARKEN))).astype(np.uint8)
    if background == "transparent":
        alpha = (255 * coverage).astype(np.uint8)
        return np.dstack([ink, alpha])
    flat = np.empty_like(img)
    flat[:] = FLAT_BGR[background]
    a = coverage[..., None]
    return (ink.astype(np.float32) * a + flat.astype(np.float32) * (1 - a) + 0.5).astype(np.uint8)


def most_alike(target: np.ndarray, pool: Sequence[PoolPicture]) -> int:
    """Index of the pool picture whose small grey thumbnail is closest to ``target``'s."""
    def thumb(img: np.ndarray) -> np.ndarray:
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        t = cv2.resize(grey, (STYLE_THUMB, STYLE_THUMB), interpolation=cv2.INTER_AREA)
        t = t.astype(np.float32)
        return (t - t.mean()) / (t.std() + 1e-6)

    ref = thumb(target)
    return int(np.argmin([float(np.square(thumb(p.image) - ref).mean()) for p in pool]))


def pool_size(pairs: int) -> int:
    """Pool pictures needed for ``pairs`` pairs of every negative family."""
    return pairs * sum(POOL_PER_PAIR.values())


def make_negatives(
    pool: Sequence[PoolPicture],
    grey_targets: Sequence[PoolPicture],
    pairs: int,
    rng: np.random.Generator,
) -> list[NegativeRow]:
    """``pairs`` pairs of each family from ``pool`` (:func:`pool_size` pictures, each used once).

    ``grey_targets`` are originals of the stress set (at least ``pairs``): for each, the
    grayscale copy is a true variant of its group and the most alike pool picture its negative.
    """
    if len(pool) < pool_size(pairs):
        raise ValueError(f"{len(pool)} pool pictures for {pairs} negative pairs of each family, "
                         f"need {pool_size(pairs)}")
    if len(grey_targets) < pairs:
        raise ValueError(f"{len(grey_targets)} originals for {pairs} grayscale negatives")
    left = list(pool)
    rows: list[NegativeRow] = []
    for k in range(pairs):
        bg, one, two = left.pop(), left.pop(), left.pop()
        a, b = shared_background(bg, one, two, rng)
        rows += _pair(a, b, "neg_background", k, (one.source, two.source))
        one, two = left.pop(), left.pop()
        a, b = shared_frame(one, two, rng)
        rows += _pair(a, b, "neg_frame", k, (one.source, two.source))
        one, two = left.pop(), left.pop()
        style = LOWINFO_STYLES[k % len(LOWINFO_STYLES)]
        background = LOWINFO_BACKGROUNDS[int(rng.integers(len(LOWINFO_BACKGROUNDS)))]
        side = int(rng.integers(LOWINFO_SIDE[0], LOWINFO_SIDE[1] + 1))
        rows += _pair(low_information(one, style, background, side, rng),
                      low_information(two, style, background, side, rng),
                      "neg_lowinfo", k, (one.source, two.source))
    for target in grey_targets[:pairs]:
        grey = cv2.cvtColor(cv2.cvtColor(target.image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        other = left.pop(most_alike(grey, left))
        rows.append(NegativeRow(grey, target.group_id, "variant", "grayscale", target.source))
        rows.append(NegativeRow(
            other.image, f"NGS{target.group_id}", "distractor",
            f"none;hard_negative_of={target.group_id};family=neg_grayscale_style", other.source))
    return rows
