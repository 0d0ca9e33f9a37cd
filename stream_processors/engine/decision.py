"""The result of deciding one upload, shared by every method, the pipeline and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DecisionKind(StrEnum):
    """The seed paper's three outcomes for an upload."""

    NEW_CLUSTER = "new-cluster"
    MERGE_CENTER = "merge-center"
    DUPLICATE_REFERENCE = "duplicate-reference"


@dataclass(frozen=True)
class Region:
    """The part of a stored picture an upload shows, as fractions of the picture's width and
    height (0..1, left/top to right/bottom), measured on its frame after uniform borders are
    trimmed. A crop of the original shows a small region; a full copy, about all of it."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.x0 <= self.x1 <= 1.0 and 0.0 <= self.y0 <= self.y1 <= 1.0):
            raise ValueError(f"not a region of the unit square: {self}")

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


@dataclass(frozen=True)
class RuleRefusal:
    """One of a verifier's rules that refused a pair, as a decision's evidence records it:
    ``rule`` its name in the verifier's table (a default-method rule such as "clean-copy", or
    "geometry" for keypoints that aligned nothing), ``finding`` what it found
    ("changed-detail", "no-geometry") and ``why`` the figure that broke it."""

    rule: str
    finding: str
    why: str


@dataclass(frozen=True)
class RefusedCandidate:
    """A stored entry the verifier refused on the way to a decision: the entry's id (an
    image's upload id, or an alias's) and the image it shows, ``check`` the evidence it was
    checked by (a method string such as "default:hash+pixels"), and the rules that refused it.

    Why a decision carries these: a reader (a moderator on the post page) sees which picture
    was compared and which rule told it apart, not only the rule that accepted a copy."""

    entry_id: str
    image_id: str
    check: str
    refusals: tuple[RuleRefusal, ...]


# A duplicate whose upload the original leaves at least this share unexplained (its author's
# caption, stickers, logo, frame or page: engine.verify.unexplained) keeps its own bytes too.
# Measured on the dev set's true positives matched on their group's true original (not through
# an alias), one edit family each (`picnix eval MANIFEST --json`: unexplained_share_by_family
# holds every true positive): jpeg n=12 max 0.0047, filter 10 max 0.0029, rotate 4 max 0.0020,
# crop 2 max 0.0008, blur 7, resize 7, gamma 7, webp 6, noise 5, contrast 4, hflip 4, format 4,
# brightness 3 all 0.0; text 5 min 0.0117 p50 0.027 max 0.038, logo 6 p50 0.032 max 0.076 (two
# of them 0.0: faint enough for the clean-copy rule); uniform border 4 p50 0.016 and pad 5 p50
# 0.036 (trimmed before any signature; what is left is their edge). At 0.01 no plain edit is
# kept and 2 of 11 text/logo copies are not (the two at 0.0); at 0.015 and 0.02 4 of 11 are
# not, at 0.03 6. 0.01 is twice the largest re-encode or filter; generated memes measure
# 0.085-0.17, stickers 0.03-0.13, boxed captions 0.02-0.05, patterned frames 0.41-0.51
# (tests/unit/test_unexplained.py). Over the whole dev set 107 of 756 duplicate references keep
# their bytes (dev eval --in-flight 4, own_bytes_kept): besides the overlays, where the entry
# matched is itself a crop or a copy with a logo (an alias, or a variant stored before its
# original), it explains less of a later upload, and that copy keeps what it shows more.
KEEP_OWN_BYTES_SHARE = 0.01


@dataclass(frozen=True)
class Decision:
    """What the engine decided for one upload.

    ``image_id`` is the stored image the upload's post shows: its own id for a new image, the
    original's id for a duplicate. Ids are the upload id of the image's first upload, so decisions
    are deterministic given the input order and never depend on counters.
    """

    upload_id: str
    kind: DecisionKind
    image_id: str
    cluster_id: str
    distance: float | None = None
    method: str = ""
    # for a duplicate matched by alignment: where in the original the upload lies (None: the
    # check compared whole pictures)
    region: Region | None = None
    # for a duplicate matched on an alias (an earlier duplicate kept in the indexes): that
    # duplicate's upload id, so a wrong reference can be traced to the decision it came through
    via: str | None = None
    # the rule that accepted the duplicate (a default-method reason such as "clean-copy" or
    # "overlay"); empty for decisions that are no match
    reason: str = ""
    # the rules that refused the accepted pair before ``reason`` accepted it (a caption: the
    # clean-copy rule refused, then the overlay rule accepted)
    reason_refusals: tuple[RuleRefusal, ...] = ()
    # the candidates the verifier refused on the way, in the order tried (bounded by the
    # method); part of equality, so a commit's decision proves it equals a sequential one
    refused: tuple[RefusedCandidate, ...] = ()
    # for a duplicate: the share of the upload the entry it matched does not explain (what its
    # author added: engine.verify.unexplained); None for decisions that are no match, and for
    # methods that do not measure it
    unexplained_share: float | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.kind is DecisionKind.DUPLICATE_REFERENCE

    @property
    def keeps_own_bytes(self) -> bool:
        """A duplicate that adds enough of its own (KEEP_OWN_BYTES_SHARE) keeps its upload's
        bytes beside the reference, so what its author added is not lost."""
        share = self.unexplained_share
        return self.is_duplicate and share is not None and share >= KEEP_OWN_BYTES_SHARE

    @property
    def stores_image(self) -> bool:
        """A new image's bytes must be stored, and those of a duplicate that keeps its own;
        a plain copy's never are."""
        return not self.is_duplicate or self.keeps_own_bytes


@dataclass(frozen=True)
class Settled:
    """The decision a commit makes of a match evaluated on an earlier state of the index, and
    whether it had to evaluate the upload again (a change since could have altered it), how
    many verifications that evaluation ran that the match had not (engine.checks), and whether
    it queried the index again (not when the match's answers merged with the entries added
    since: engine.index_queries)."""

    decision: Decision
    reevaluated: bool
    checks_run: int = 0
    index_queried: bool = False
