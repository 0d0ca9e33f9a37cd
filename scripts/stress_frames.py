"""Wide frames for the stress set: the ``wideframe`` edit and the shared-frame hard negative.

Issue 15 saw borders and frames wider than a quarter of the side recovered 84 % of the time;
the same frame around two *different* pictures is the hard negative that must stay refused. Both
use this one drawing, so the frame the engine must see through on a copy is the frame it must
not match on two different pictures.
"""

from __future__ import annotations

import cv2
import numpy as np

# Total frame width (both sides together) as a fraction of the picture's short side: above the
# quarter the issue names, up to a frame wider than the picture's own margin-free area.
FRAME_TOTAL_FRAC = (0.26, 0.6)
FRAME_STYLES = ("solid", "mat", "stripes", "checker", "polaroid")
STRIPE_PERIOD_FRAC = 0.04  # of the frame's short side
BEVEL_FRAC = 0.08  # inner bevel line, of one side's width
FRAME_COLOURS_BGR = (
    (30, 60, 110),  # walnut
    (40, 40, 40),
    (240, 240, 240),
    (50, 150, 200),  # gold
    (120, 30, 30),
    (30, 110, 40),
    (180, 170, 160),
)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return FRAME_COLOURS_BGR[int(rng.integers(len(FRAME_COLOURS_BGR)))]


def draw_frame(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``img`` inside a frame whose two sides add up to 26-60 % of its short side.

    Returns the framed picture and its transform name (``wideframe_<style>_<pct>pct``).
    """
    h, w = img.shape[:2]
    frac = float(rng.uniform(*FRAME_TOTAL_FRAC))
    side = max(2, int(frac * min(h, w) / 2))
    style = FRAME_STYLES[int(rng.integers(len(FRAME_STYLES)))]
    top, bottom, left, right = side, side, side, side
    if style == "polaroid":
        top = left = right = max(2, int(side * 0.6))
        bottom = 2 * side + (side - top)  # the same total, most of it under the picture
    canvas_h, canvas_w = h + top + bottom, w + left + right
    c1, c2 = _colour(rng), _colour(rng)
    if c2 == c1:
        c2 = (255 - c1[0], 255 - c1[1], 255 - c1[2])
    canvas = np.empty((canvas_h, canvas_w, 3), np.uint8)
    canvas[:] = (245, 245, 245) if style == "polaroid" else c1
    if style == "mat":
        inner = max(1, side // 2)
        cv2.rectangle(canvas, (left - inner, top - inner),
                      (left + w + inner - 1, top + h + inner - 1), c2, -1)
    elif style in ("stripes", "checker"):
        period = max(4, int(STRIPE_PERIOD_FRAC * min(canvas_h, canvas_w)))
        y, x = np.mgrid[0:canvas_h, 0:canvas_w]
        if style == "stripes":
            on = ((x + y) // period) % 2 == 0
        else:
            on = ((x // period) + (y // period)) % 2 == 0
        canvas[on] = c2
    bevel = max(1, int(BEVEL_FRAC * side))
    cv2.rectangle(canvas, (left - bevel, top - bevel), (left + w + bevel - 1, top + h + bevel - 1),
                  (20, 20, 20), bevel)
    canvas[top : top + h, left : left + w] = img
    return canvas, f"wideframe_{style}_{round(100 * frac)}pct"
