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

    @property
    def is_duplicate(self) -> bool:
        return self.kind is DecisionKind.DUPLICATE_REFERENCE

    @property
    def stores_image(self) -> bool:
        """A new image's bytes must be stored; a duplicate's never are."""
        return not self.is_duplicate
