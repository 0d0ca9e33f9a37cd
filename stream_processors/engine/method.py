"""The contract every dedup method implements, and the factory the pipeline and `picnix eval` use.

Why evaluate and apply are split: ``evaluate`` only reads state, ``apply`` only writes it, so the
pipeline can persist each Decision before mutating anything and rebuild identical state after a
restart by replaying ``apply`` over the stored decisions in order.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, Settled
from stream_processors.engine.feature_store import FeatureStore


class ImageLike(Protocol):
    """What a method reads of a decoded image (structurally, engine.decode.DecodedImage)."""

    @property
    def pixels(self) -> np.ndarray: ...  # H x W x 3 uint8 BGR, possibly reduced in size
    @property
    def width(self) -> int: ...  # of the original
    @property
    def height(self) -> int: ...
    @property
    def format(self) -> str: ...
    @property
    def sha256(self) -> str: ...  # hex of the raw bytes


class DedupMethod(Protocol):
    """A near-duplicate decision method with its own index state."""

    name: str

    def extract(self, image: ImageLike) -> Any:
        """Signature of one image: pure and CPU-bound (runs in the stateless extract agent)."""
        ...

    def signature_to_bytes(self, sig: Any) -> bytes:
        """Compact, versioned serialisation (no pickle)."""
        ...

    def signature_from_bytes(self, data: bytes) -> Any: ...

    def state_to_bytes(self, sig: Any) -> bytes:
        """What the caller persists of a signature ``apply`` retained, to rebuild the state after
        a restart: what the method keeps in its own store (local features) is left out, so the
        rebuild records stay small and the large part is written once."""
        ...

    def state_from_bytes(self, entry_id: str, data: bytes) -> Any:
        """The retained signature of entry ``entry_id`` (the upload it came from) from its state
        form and the method's own store, for re-applying it."""
        ...

    def replica_to_bytes(self, sig: Any) -> bytes:
        """A retained signature whole (state form and what the method's store keeps), for the
        index log every worker's replica is built from."""
        ...

    def replica_from_bytes(self, entry_id: str, data: bytes) -> Any:
        """The signature of an index-log entry; what belongs in the method's store is put there."""
        ...

    def holds(self, entry_id: str) -> bool:
        """Whether the entry (a stored image's or an alias's upload id) is in the state."""
        ...

    def entry_ids(self) -> list[str]:
        """Every entry in the state: stored images' and aliases' upload ids."""
        ...

    def advance_to(self, position: int) -> None:
        """The index log moved on to ``position`` with changes this state already reflects (a
        restore re-applies the surviving entries, not the removals between them)."""
        ...

    def evaluate(self, upload_id: str, sig: Any, checks: CheckMemo | None = None) -> Decision:
        """Decide one upload; reads state only. ``checks``: verifications this upload already
        ran (their outcomes are reused), and where the ones run now are recorded."""
        ...

    @property
    def position(self) -> int:
        """The index-log position of the latest change applied (-1: none)."""
        ...

    def settle(
        self,
        upload_id: str,
        sig: Any,
        matched: Decision,
        position: int,
        checks: CheckMemo | None = None,
    ) -> Settled:
        """What ``evaluate`` would say now, given ``matched``: the evaluation of the same upload
        on this index as it was at ``position`` (a replica's), which ran ``checks``. Reads
        state only."""
        ...

    def apply(self, decision: Decision, sig: Any, seq: int | None = None) -> bool:
        """Mutate state for a decision: NEW_CLUSTER / MERGE_CENTER add the image (and move the
        center); a DUPLICATE_REFERENCE may keep the upload's signature as an alias of the image
        it references, another view of it to verify later uploads against. Returns whether the
        signature is now part of the state, i.e. whether the caller must persist it to rebuild
        the state. Replaying apply over the same decisions rebuilds the same state. ``seq``: the
        change's position in the index log (None: the next one), never below ``position``."""
        ...

    def remove(self, image_id: str, seq: int | None = None) -> None:
        """The image's last post was deleted: it leaves the index and its cluster."""
        ...

    def remove_alias(self, upload_id: str, seq: int | None = None) -> None:
        """A duplicate's post was deleted: its alias of the referenced image (if kept) leaves the
        index. Aliases go before their image does, as every alias's post references the image."""
        ...


METHOD_NAMES = ("default", "seed")


def build_method(name: str, store: FeatureStore | None = None) -> DedupMethod:
    """A fresh method instance with empty state, by name ("default" or "seed"); ``store`` holds
    the local features of the default method (none: a dict in memory)."""
    if name == "default":
        from stream_processors.engine.default_method import DefaultMethod

        return DefaultMethod(store)
    if name == "seed":
        from stream_processors.engine.seed_method import SeedMethod

        method: DedupMethod = SeedMethod()
        return method
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHOD_NAMES)}")
