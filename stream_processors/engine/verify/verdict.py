"""What the aligned-pixel rules answer: the rule names a decision records, one rule's finding, and
the verdict on a pair with the refusals that led to it.

Why a finding of its own: a rule either accepts the pair (its name becomes the decision's
reason), refuses it for good (too little overlap, colours no filter makes, an overlay on another
picture), or refuses it while a later rule may still accept it (a caption fails the clean-copy
rule and passes the overlay rule). The verdict keeps every refusal on the way, so a reader sees
which rule refused a pair and on which figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PixelRule(StrEnum):
    """The aligned-pixel rules, named as a decision's evidence records the one that accepted
    a pair, and as a refusal names the first that refused it."""

    # accepted
    CLEAN_COPY = "clean-copy"  # the whole overlap agrees (after tone and colour fitting)
    OVERLAY = "overlay"  # one compact pasted blob (caption, badge) on an agreeing layout
    OVERLAYS = "overlays"  # a few separate such blobs (a meme's caption bands, stickers)
    ALIEN_OVERLAY = "overlay-alien-to-both"  # the layout agrees only away from such a blob
    # refused
    LITTLE_OVERLAP = "little-overlap"  # the alignment covers too little of the smaller picture
    SMALL_PART = "small-part-of-larger"  # the smaller is a small piece of the larger
    COLOURS_CHANGED = "colours-changed"  # colours flipped, not filtered (ColourShift)
    LAYOUT_DIFFERS = "layout-differs"  # the grey layouts do not correlate
    SILHOUETTE_ONLY = "silhouette-only"  # one silhouette agrees, the content inside it does not
    DETAIL_DIFFERS = "detail-differs"  # the fine detail does not correlate
    CHANGED_DETAIL = "changed-detail"  # pixels disagree strongly (a trait, a pip)
    FAINT_CHANGE = "faint-change"  # too many pixels disagree faintly
    # an overlay rule's refusal that leaves the clean-copy rule's standing: the disagreement
    # is no pasted overlay (never a verdict's rule: the clean-copy rule refused first)
    NOT_OVERLAY = "not-an-overlay"


@dataclass(frozen=True)
class Finding:
    """One rule's answer on a pair: accepted under ``rule``, or refused with ``rule`` naming
    the refusal and ``why`` the figure that broke it. A ``final`` refusal ends the walk over
    the rules; any other leaves the pair to the rules after it."""

    rule: PixelRule
    accepted: bool = False
    why: str = ""
    final: bool = False


@dataclass(frozen=True)
class Refusal:
    """A rule of the table that refused the pair (``check``: its name there), why it did."""

    check: str
    rule: PixelRule
    why: str


@dataclass(frozen=True)
class Verdict:
    """Accepted under ``rule``, or refused with ``rule`` the refusal that decided (a final one,
    else the first). ``refusals`` lists every rule that refused on the way, in table order;
    it explains the verdict and is no part of it, so two verdicts that decide alike are equal."""

    accepted: bool
    rule: PixelRule
    refusals: tuple[Refusal, ...] = field(default=(), compare=False)
