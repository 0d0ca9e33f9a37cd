"""The figures the aligned-pixel rules read: one pair's ``PixelCheck`` with its colour shift and
its disagreement taken as overlay blobs.

Why value objects apart from the measuring code: the rules (``verify.rules``) judge these
figures only, so a rule can be tested on figures written by hand, and a decision's verdict can
be explained from them without the images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from stream_processors.engine.verify import rules
from stream_processors.engine.verify.alignment import LUMA
from stream_processors.engine.verify.rules.colour import (
    GREYSCALE_MAX_GAP,
    GREYSCALE_MAX_GAP_OTHER,
    GREYSCALE_MIN_FLIP,
)

if TYPE_CHECKING:
    from stream_processors.engine.verify.silhouette import SilhouetteContent
    from stream_processors.engine.verify.thresholds import PixelThresholds
    from stream_processors.engine.verify.verdict import Verdict


@dataclass(frozen=True)
class ColourShift:
    """How the colours of the aligned pair differ before any fitting: the fraction of pixels
    strongly coloured on one side and grey on the other, the mean hue rotation (degrees) over
    the pixels coloured on both sides, and, when one side is a greyscale picture, how far its
    grey levels are from a decolouring of the other side's colours, and which decolouring
    (``alignment.DECOLOURINGS``; see chroma._greyscale_gap)."""

    chroma_flip: float
    hue_shift_deg: float
    greyscale_gap: float | None = None
    ink_flip: float = 0.0
    decolouring: str = LUMA.name

    @property
    def greyscale_copy(self) -> bool:
        """One side is the other in black and white: much colour is lost (not just a small
        coloured overlay on a grey picture) and the grey levels are the colours' greys (by
        ``decolouring``)."""
        return (
            self.chroma_flip >= GREYSCALE_MIN_FLIP
            and self.greyscale_gap is not None
            and self.greyscale_gap
            <= (GREYSCALE_MAX_GAP if self.decolouring == LUMA.name else GREYSCALE_MAX_GAP_OTHER)
        )


@dataclass(frozen=True)
class OverlayBlob:
    """The largest blob of disagreement: its box (fraction of the overlap), the share of the
    faint disagreement outside it, the share of gradient energy on oblique edges inside it
    (the larger of the two images', each in its own frame), how well it repeats elsewhere in
    its picture, and the fine-detail correlation of the pair outside it (an overlay's own
    strokes are no evidence against the copy). The motif costs two masked template searches
    (~3 ms), so it is measured only when asked for, which the overlay rule does last."""

    box: float
    outside_share: float
    oblique: float
    ncc: float  # the layout correlation away from the blob
    detail_ncc: float
    outside_faint: float  # faint disagreement outside the blob, share of the overlap
    outside_strong: float  # ... and strong disagreement
    outside_mirrored: float  # share of that strong disagreement that is point-symmetric
    measure_motifs: Callable[[], list[float]] = field(repr=False, compare=False)
    parts: int = 1  # separate blobs taken together (a meme's caption bands, stickers)
    # how well one blob repeats, turned half round, at another's place in both pictures
    self_mirrored: float = 0.0
    # the blobs' tight boxes (around the disagreement itself, not the merged blob), share of
    # the query thumbnail: what an accepted overlay adds to the upload (verify.unexplained)
    query_share: float = 0.0

    @cached_property
    def _motifs(self) -> list[float]:
        return self.measure_motifs()

    @property
    def motif(self) -> float:
        """How well the blob repeats in the picture that repeats it least (an overlay's own
        side does not repeat, whatever lies under it on the other side)."""
        return min(self._motifs, default=0.0)

    @property
    def motif_both(self) -> float:
        """How well the blob repeats in the picture that repeats it most."""
        return max(self._motifs, default=0.0)


@dataclass(frozen=True)
class PixelCheck:
    """Aligned-thumbnail evidence. cover_* are overlap fractions of the smaller/larger image."""

    cover_small: float
    cover_large: float
    ncc: float
    bad: float
    bad_center: float
    bad_faint: float = 0.0
    detail_ncc: float = 0.0  # correlation of the fine detail (high-pass), not just the layout
    overlay: OverlayBlob | None = None  # the disagreement as one blob, when it is one
    colour: ColourShift | None = None
    ncc_unshaded: float = 0.0  # ncc after the smooth residual (vignette, uneven tint) is removed
    # the disagreement as a few separate blobs, when the largest alone leaves much outside it
    overlays: OverlayBlob | None = None
    # the agreement beyond the stored picture's silhouette (None: not measured)
    silhouette: SilhouetteContent | None = None
    # share of the query thumbnail with content outside where the stored picture maps into
    # it: a frame, a page or a collage around the picture (verify.unexplained)
    outside_content: float = 0.0

    def passes(self, t: PixelThresholds) -> bool:
        return self.verdict(t).accepted

    def verdict(self, t: PixelThresholds) -> Verdict:
        """Which rule accepted the pair, or which refused it, with every refusal on the way
        (the rules and their order: ``verify.rules.RULES``)."""
        return rules.judge(self, t)
