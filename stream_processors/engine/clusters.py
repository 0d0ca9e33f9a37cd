"""The seed paper's dynamic clustering, over the 256-bit global hash.

Rule (kept from the seed): an image farther than ``join_distance`` from every cluster center
founds a new cluster and is its first center; otherwise it joins the nearest cluster and the
center moves to the running mean of the members. Here the "vector" is the hash's bit vector, the
running mean is kept as per-bit member counts, and the center used for search is the mean
rounded to bits (majority vote) - so nearest-center search is a Hamming search in an index that
is sub-linear in the number of clusters, where the seed scanned them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.signatures import HASH_BITS

CLUSTER_JOIN_DISTANCE = 56


@dataclass
class _Cluster:
    key: int
    counts: np.ndarray = field(default_factory=lambda: np.zeros(HASH_BITS, np.int32))
    size: int = 0

    def center(self) -> np.ndarray:
        return np.packbits(2 * self.counts > self.size)


@dataclass(frozen=True)
class NearestCluster:
    cluster_id: str
    distance: int


class ClusterIndex:
    """Cluster centers by id, searchable by Hamming distance."""

    def __init__(self, join_distance: int = CLUSTER_JOIN_DISTANCE) -> None:
        self.join_distance = join_distance
        self._clusters: dict[str, _Cluster] = {}
        self._id_of_key: dict[int, str] = {}
        self._next_key = 0
        self._index = HammingIndex(HASH_BITS)

    def __len__(self) -> int:
        return len(self._clusters)

    def nearest(self, code: np.ndarray) -> NearestCluster | None:
        """The nearest center within join_distance, or None (then the image founds a cluster)."""
        hits = self._index.search(code, max_distance=self.join_distance, limit=1)
        if not hits:
            return None
        key, dist = hits[0]
        return NearestCluster(self._id_of_key[key], int(dist))

    def found(self, cluster_id: str, code: np.ndarray) -> None:
        if cluster_id in self._clusters:
            raise ValueError(f"cluster {cluster_id} exists")
        c = _Cluster(self._next_key)
        self._next_key += 1
        self._clusters[cluster_id] = c
        self._id_of_key[c.key] = cluster_id
        self._move(c, code, +1)

    def join(self, cluster_id: str, code: np.ndarray) -> None:
        self._move(self._clusters[cluster_id], code, +1)

    def leave(self, cluster_id: str, code: np.ndarray) -> None:
        """A member left; an emptied cluster disappears."""
        c = self._clusters[cluster_id]
        self._move(c, code, -1)
        if c.size == 0:  # _move already took its center out of the index
            del self._clusters[cluster_id]
            del self._id_of_key[c.key]

    def center(self, cluster_id: str) -> np.ndarray:
        return self._clusters[cluster_id].center()

    def _move(self, c: _Cluster, code: np.ndarray, sign: int) -> None:
        c.counts += sign * np.unpackbits(code).astype(np.int32)
        c.size += sign
        if c.key in self._index:
            self._index.remove(c.key)
        if c.size > 0:
            self._index.add(c.key, c.center())

    def nbytes(self) -> int:
        return self._index.nbytes() + len(self._clusters) * (HASH_BITS * 4 + 64)
