"""Colours: a copy's colours differ from the original's only as a filter makes them differ.

Why: histogram matching and the affine colour fit absorb any global colour map, including ones
no re-poster applies. Colour edits rotate hue and scale saturation; they do not paint a black
crown red, turn a green wallpaper orange, or colour a black card's pips. A black-and-white copy
loses colour too, but its greys are one fixed decolouring of the colours (their luma, mean, HSV
value, HLS lightness or one channel: ``ColourShift.greyscale_copy``), so for it only the hue of
what stayed coloured is judged, and the pixel check compares the pair in that grey. A refusal
is final: the other rules compare the pair after a colour fit that would hide the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors.engine.verify.verdict import Finding, PixelRule

if TYPE_CHECKING:
    from stream_processors.engine.verify.evidence import PixelCheck
    from stream_processors.engine.verify.thresholds import PixelThresholds

# Colour edits rotate hue and scale saturation; they do not paint a black crown red (K of
# spades vs K of diamonds: 0.13 of the pixels) or turn green into orange (two recoloured
# wallpapers: 58 degrees). Overlaid and filtered copies on dev: <= 0.05 and <= 32 degrees
# (55395b3: dev precision 0.9944 -> 0.9972, FP 4 -> 2, recall unchanged 0.9125).
MAX_CHROMA_FLIP = 0.1
MAX_HUE_SHIFT_DEG = 45.0
# ... nor colour a greyscale picture's ink: the red pips of A of diamonds cover 0.78 of the
# ink of A of spades (a screenshot of it, in the stress set), though 0.05 of all pixels flip.
MAX_INK_FLIP = 0.15
# A greyscale copy keeps each colour's luma, so it is not refused for its lost colour: a red
# crown turns mid grey (gap ~0), the king of spades' crown is black (~0.4 from the red's luma).
# It must have lost this share of its pixels' colour (less is a small coloured overlay on a
# grey picture) with its grey levels this close to the colours' luma, or to another fixed
# decolouring of them (alignment.DECOLOURINGS): on the neverball stress sets a channel-mean,
# single-channel or HSV-value copy measures 0.0-0.03 by its own decolouring and 0.12-0.49 by
# luma (decolour recall 0.25 -> 0.60 and 0.25 -> 0.40 on seeds 0 and 1, false positives 6 and 8
# unchanged).
GREYSCALE_MAX_GAP = 0.08
# A decolouring other than luma is one of several tried, so it must explain the greys more
# tightly: a copy's own decolouring leaves 0.00-0.024 on the neverball stress sets, while HSV
# value flattens a colour wheel to the even grey of a cell micrograph at 0.069 (a dev false
# positive at the luma limit).
GREYSCALE_MAX_GAP_OTHER = 0.04
GREYSCALE_MIN_FLIP = 0.05


def judge(check: PixelCheck, t: PixelThresholds) -> Finding | None:
    """A final refusal when the colours changed more than a filter changes them, else None."""
    colour = check.colour
    if colour is None:
        return None
    why = ""
    if colour.hue_shift_deg > t.max_hue_shift_deg:
        why = f"hue_shift_deg {colour.hue_shift_deg:.1f} > max_hue_shift_deg {t.max_hue_shift_deg}"
    elif colour.greyscale_copy:
        return None  # the lost colour is a black-and-white copy's
    elif colour.chroma_flip > t.max_chroma_flip:
        why = f"chroma_flip {colour.chroma_flip:.3f} > max_chroma_flip {t.max_chroma_flip}"
    elif colour.ink_flip > t.max_ink_flip:
        why = f"ink_flip {colour.ink_flip:.3f} > max_ink_flip {t.max_ink_flip}"
    return Finding(PixelRule.COLOURS_CHANGED, why=why, final=True) if why else None
