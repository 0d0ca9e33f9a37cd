"""The seed paper's dynamic clustering, over the 256-bit global hash.

Rule (kept from the seed): an image farther than ``join_distance`` from every cluster center
founds a new cluster and is its first center; otherwise it joins the nearest cluster (ties: the
earlier founded) and the center moves to the running mean of the members. Here the "vector" is
the hash's bit vector, the running mean is kept as per-bit member counts, and the center used for
search is the mean rounded to bits (majority vote) - so nearest-center search is a Hamming search
in an index that is sub-linear in the number of clusters, where the seed scanned them all.

Compact state (clusters are numerous: at join distance 56 most images found their own): a
one-member cluster's mean *is* its member's code, which the caller's member index (the image
hash index, keyed by member key) already holds. So one-member clusters cost no center and no
counts: ``nearest`` searches the member index for members alone in their cluster and a small
center index for clusters of two or more members. Per-bit counts (uint8, 256 bytes, widened
to uint16/uint32 past 254/65,534 members) exist only for clusters that ever had two members. A
one-member cluster costs its id's dict entry plus 8 bytes of arrays; every member costs 4 bytes
(its cluster's key).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stream_processors.engine.array_state import (
    StateArrays,
    StateMismatch,
    check_names,
    decode_strings,
    encode_strings,
    item,
    names,
    nest,
    plain_attributes,
    restore_plain,
    sub,
)
from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.signatures import HASH_BITS

CLUSTER_JOIN_DISTANCE = 56
_INT_BYTES = 32  # a key int object (the id dict's value); the id strings are the founders' ids
_COUNT_OVERHEAD = 112  # numpy array object + dict entry
# Snapshot (to_arrays): attributes saved in a form of their own, and the ones not saved (the
# caller's member index, given again on load; ``_key_of``, made again from ``_id_of``).
_SNAPSHOT_OWN = frozenset({"_centers", "_id_of", "_counts"})
_SNAPSHOT_UNSAVED = frozenset({"_members", "_key_of"})
_COUNT_DTYPES = (np.uint8, np.uint16, np.uint32)  # what _count_dtype chooses from


@dataclass(frozen=True)
class NearestCluster:
    cluster_id: str
    distance: int


def _count_dtype(size: int) -> type[np.unsignedinteger]:
    """The narrowest dtype that holds per-bit counts of ``size`` members."""
    if size < 255:
        return np.uint8
    return np.uint16 if size < 65535 else np.uint32


def _grow(a: np.ndarray, n: int, fill: int) -> np.ndarray:
    if n <= len(a):
        return a
    out = np.full(max(n, 2 * len(a), 1024), fill, a.dtype)
    out[: len(a)] = a
    return out


class ClusterIndex:
    """Cluster centers by id, searchable by Hamming distance.

    ``members`` is the caller's index of every member's code by member key: the caller adds a
    member's code there before ``found``/``join`` and may remove it before or after ``leave``.
    It may hold other keys too (aliases of duplicates): ``nearest`` skips keys that are no member.
    """

    def __init__(self, members: HammingIndex, join_distance: int = CLUSTER_JOIN_DISTANCE) -> None:
        self.join_distance = join_distance
        self._members = members
        self._centers = HammingIndex(HASH_BITS)  # clusters with >= 2 members
        self._key_of: dict[str, int] = {}
        self._id_of: list[str | None] = []
        self._sizes = np.zeros(0, np.int32)
        self._founder = np.zeros(0, np.int32)
        self._cluster_of_member = np.zeros(0, np.int32)
        self._counts: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._key_of)

    # ----------------------------------------------------------------- queries
    def nearest(self, code: np.ndarray) -> NearestCluster | None:
        """The nearest center within join_distance, or None (then the image founds a cluster)."""
        best: tuple[int, int] | None = None  # (distance, cluster key)
        for key, dist in self._centers.search(code, self.join_distance, 1):
            best = (dist, key)
        limit = 16
        while True:
            hits = self._members.search(code, self.join_distance, limit)
            for member, dist in hits:
                if best is not None and dist > best[0]:
                    break
                ck = self._cluster_key(member)
                if ck >= 0 and self._sizes[ck] == 1 and (best is None or (dist, ck) < best):
                    best = (dist, ck)
            if len(hits) < limit or (best is not None and hits[-1][1] > best[0]):
                break
            limit *= 8
        if best is None:
            return None
        name = self._id_of[best[1]]
        assert name is not None
        return NearestCluster(name, int(best[0]))

    def nearest_of(self, code: np.ndarray, cluster_ids: set[str]) -> NearestCluster | None:
        """``nearest`` among the given clusters only (those that still exist), by the same
        order: distance, then the earlier founded. For a commit that knows the nearest of all
        the others already."""
        best: tuple[int, int] | None = None
        for cluster_id in cluster_ids:
            key = self._key_of.get(cluster_id)
            if key is None:
                continue
            dist = int(np.bitwise_count(self.center(cluster_id) ^ code).sum())
            if dist <= self.join_distance and (best is None or (dist, key) < best):
                best = (dist, key)
        if best is None:
            return None
        name = self._id_of[best[1]]
        assert name is not None
        return NearestCluster(name, best[0])

    def founded_before(self, a: NearestCluster, b: NearestCluster | None) -> bool:
        """Whether ``a`` is nearer than ``b`` by ``nearest``'s order (b None: no cluster)."""
        if b is None:
            return True
        return (a.distance, self._key_of[a.cluster_id]) < (b.distance, self._key_of[b.cluster_id])

    def _cluster_key(self, member: int) -> int:
        """The member's cluster key, or -1 for a key that is no member (left, or never was)."""
        if member >= len(self._cluster_of_member):
            return -1
        return int(self._cluster_of_member[member])

    def cluster_of(self, member: int) -> str:
        name = self._id_of[int(self._cluster_of_member[member])]
        assert name is not None
        return name

    def center(self, cluster_id: str) -> np.ndarray:
        key = self._key_of[cluster_id]
        counts = self._counts.get(key)
        if counts is None:
            return self._member_code(int(self._founder[key]))
        return np.packbits(2 * counts.astype(np.int64) > int(self._sizes[key]))

    # ----------------------------------------------------------------- updates
    def _member_code(self, member: int) -> np.ndarray:
        code = self._members.get(member)
        assert code is not None
        return code

    def _new_cluster(self, cluster_id: str) -> int:
        if cluster_id in self._key_of:
            raise ValueError(f"cluster {cluster_id} exists")
        key = len(self._id_of)
        self._id_of.append(cluster_id)
        self._key_of[cluster_id] = key
        self._sizes = _grow(self._sizes, key + 1, 0)
        self._founder = _grow(self._founder, key + 1, -1)
        return key

    def _assign(self, member: int, cluster_key: int) -> None:
        self._cluster_of_member = _grow(self._cluster_of_member, member + 1, -1)
        self._cluster_of_member[member] = cluster_key

    def found(self, cluster_id: str, member: int) -> None:
        """A new cluster whose first member (and center) is ``member``."""
        key = self._new_cluster(cluster_id)
        self._sizes[key] = 1
        self._founder[key] = member
        self._assign(member, key)

    def join(self, cluster_id: str, code: np.ndarray, member: int) -> None:
        key = self._key_of[cluster_id]
        self._assign(member, key)
        self._move(key, code, +1)

    def leave(self, cluster_id: str, code: np.ndarray, member: int) -> None:
        """Member ``member`` (code ``code``) left; an emptied cluster disappears."""
        key = self._key_of[cluster_id]
        self._cluster_of_member[member] = -1
        if self._sizes[key] == 1:
            self._sizes[key] = 0
            del self._key_of[cluster_id]
            self._id_of[key] = None
            self._counts.pop(key, None)
            if key in self._centers:
                self._centers.remove(key)
            return
        self._move(key, code, -1)

    def _move(self, key: int, code: np.ndarray, sign: int) -> None:
        counts = self._counts.get(key)
        if counts is None:
            counts = np.unpackbits(self._member_code(int(self._founder[key])))
        size = int(self._sizes[key]) + sign
        counts = counts.astype(_count_dtype(size))
        bits = np.unpackbits(np.asarray(code, np.uint8).reshape(-1)).astype(counts.dtype)
        counts = counts + bits if sign > 0 else counts - bits
        self._counts[key] = counts
        self._sizes[key] = size
        if key in self._centers:
            self._centers.remove(key)
        if size >= 2:
            self._centers.add(key, np.packbits(2 * counts.astype(np.int64) > size))

    def add_many(self, cluster_ids: list[str], codes: np.ndarray, members: np.ndarray) -> None:
        """Bulk-load members: ``cluster_ids[i]`` is the cluster of ``codes[i]`` (member key
        ``members[i]``, already in the member index); a new id founds a cluster (its first
        member in order), later ones join it. Same state as ``found``/``join`` one by one."""
        codes = np.asarray(codes, np.uint8).reshape(len(cluster_ids), -1)
        members = np.asarray(members, np.int64)
        first: dict[str, int] = {}
        joins: dict[str, list[int]] = {}
        for i, cid in enumerate(cluster_ids):
            if cid in first or cid in self._key_of:
                joins.setdefault(cid, []).append(i)
            else:
                first[cid] = i
        new_ids = list(first)
        rows = np.fromiter(first.values(), np.int64, len(first))
        keys = np.fromiter((self._new_cluster(c) for c in new_ids), np.int64, len(new_ids))
        self._sizes[keys] = 1
        self._founder[keys] = members[rows]
        if len(members):
            self._cluster_of_member = _grow(self._cluster_of_member, int(members.max()) + 1, -1)
            self._cluster_of_member[members[rows]] = keys
        multi_keys: list[int] = []
        multi_centers: list[np.ndarray] = []
        for cid, key in zip(new_ids, keys.tolist(), strict=True):
            more = joins.pop(cid, None)
            if more is None:
                continue
            self._cluster_of_member[members[more]] = key
            counts = np.unpackbits(codes[[first[cid], *more]], axis=1).sum(axis=0)
            size = len(more) + 1
            self._counts[key] = counts.astype(_count_dtype(size))
            self._sizes[key] = size
            multi_keys.append(key)
            multi_centers.append(np.packbits(2 * counts > size))
        if multi_keys:
            self._centers.add_many(multi_keys, np.stack(multi_centers))
        for cid, more in joins.items():  # clusters that existed before the bulk load
            for i in more:
                self.join(cid, codes[i], int(members[i]))

    def to_arrays(self) -> StateArrays:
        """Every attribute, for the engine snapshot (array_state). The member index is the
        caller's and is saved by it; ``_key_of`` is the inverse of ``_id_of`` and is made again
        from it; the per-bit counts are grouped by dtype (they widen with the cluster), each
        group one (clusters, HASH_BITS) array beside its cluster keys."""
        out = plain_attributes(self, _SNAPSHOT_OWN | _SNAPSHOT_UNSAVED)
        out |= nest("_centers", self._centers.to_arrays())
        out |= nest("_id_of", encode_strings(self._id_of))
        groups: dict[np.dtype, list[int]] = {np.dtype(t): [] for t in _COUNT_DTYPES}
        for key, counts in self._counts.items():
            groups.setdefault(counts.dtype, []).append(key)
        for dtype, keys in groups.items():
            rows = np.zeros((len(keys), HASH_BITS), dtype)
            for i, k in enumerate(keys):
                rows[i] = self._counts[k]
            group = {"keys": np.asarray(keys, np.int64), "rows": rows}
            out |= nest("_counts", nest(dtype.name, group))
        return out

    @classmethod
    def from_arrays(cls, state: Mapping[str, np.ndarray], members: HammingIndex) -> ClusterIndex:
        """The index ``to_arrays`` saved, over ``members`` (the caller's restored member index).
        StateMismatch if another version of the class saved it."""
        join = item(state, "join_distance")
        if join.ndim != 0 or join.dtype.kind != "i":
            raise StateMismatch(f"saved ClusterIndex.join_distance is {join!r}, not an int")
        index = cls(members, int(join))
        check_names(index, state, _SNAPSHOT_UNSAVED)
        restore_plain(index, state, _SNAPSHOT_OWN | _SNAPSHOT_UNSAVED)
        index._centers = HammingIndex.from_arrays(sub(state, "_centers"))
        index._id_of = decode_strings(sub(state, "_id_of"))
        index._key_of = {name: k for k, name in enumerate(index._id_of) if name is not None}
        counts = sub(state, "_counts")
        for dtype in names(counts):
            group = sub(counts, dtype)
            keys, rows = item(group, "keys"), item(group, "rows")
            if rows.dtype.name != dtype or rows.shape != (len(keys), HASH_BITS):
                raise StateMismatch(
                    f"saved {dtype} cluster counts are {rows.dtype} {rows.shape} for "
                    f"{len(keys)} clusters"
                )
            index._counts.update(zip(keys.tolist(), (r.copy() for r in rows), strict=True))
        return index

    def nbytes(self) -> int:
        counts = sum(c.nbytes + _COUNT_OVERHEAD for c in self._counts.values())
        arrays = self._sizes.nbytes + self._founder.nbytes + self._cluster_of_member.nbytes
        ids = sys.getsizeof(self._key_of) + sys.getsizeof(self._id_of) + _INT_BYTES * len(self)
        return int(self._centers.nbytes() + arrays + counts + ids)
