"""ClusterIndex keeps the seed's rule with compact state: checked against a brute-force model."""

from __future__ import annotations

import numpy as np

from stream_processors.engine.clusters import ClusterIndex
from stream_processors.engine.hamming_index import HammingIndex


class _Model:
    """The seed rule spelled out: per-cluster member codes, center = majority vote."""

    def __init__(self, join: int) -> None:
        self.join = join
        self.members: dict[str, list[np.ndarray]] = {}
        self.order: list[str] = []

    def center(self, cid: str) -> np.ndarray:
        m = np.stack(self.members[cid])
        return np.packbits(2 * np.unpackbits(m, axis=1).sum(axis=0) > len(m))

    def nearest(self, code: np.ndarray) -> tuple[str, int] | None:
        best: tuple[int, int, str] | None = None
        for rank, cid in enumerate(self.order):
            if cid not in self.members:
                continue
            d = int(np.unpackbits(self.center(cid) ^ code).sum())
            if d <= self.join and (best is None or (d, rank) < best[:2]):
                best = (d, rank, cid)
        return None if best is None else (best[2], best[0])


def _near(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(base)
    bits[rng.choice(bits.size, flips, replace=False)] ^= 1
    return np.packbits(bits)


def test_clusters_match_the_seed_rule_through_joins_and_leaves() -> None:
    rng = np.random.default_rng(3)
    hashes = HammingIndex(256)
    idx = ClusterIndex(hashes, join_distance=56)
    model = _Model(56)
    bases = rng.integers(0, 256, (12, 32), dtype=np.uint8)
    live: dict[int, tuple[str, np.ndarray]] = {}
    for key in range(400):
        code = _near(rng, bases[rng.integers(len(bases))], int(rng.integers(0, 60)))
        got, want = idx.nearest(code), model.nearest(code)
        assert (None if got is None else (got.cluster_id, got.distance)) == want
        hashes.add(key, code)
        if want is None:
            cid = f"c{key}"
            idx.found(cid, key)
            model.members[cid] = [code]
            model.order.append(cid)
        else:
            cid = want[0]
            idx.join(cid, code, key)
            model.members[cid].append(code)
        live[key] = (cid, code)
        if rng.random() < 0.3:  # someone leaves
            gone = int(rng.choice(list(live)))
            gcid, gcode = live.pop(gone)
            hashes.remove(gone)
            idx.leave(gcid, gcode, gone)
            model.members[gcid] = [c for c in model.members[gcid] if c is not gcode]
            if not model.members[gcid]:
                del model.members[gcid]
        assert len(idx) == len(model.members)
    for cid in model.members:
        assert np.array_equal(idx.center(cid), model.center(cid))
    for key, (cid, _) in live.items():
        assert idx.cluster_of(key) == cid


def test_bulk_load_equals_one_by_one() -> None:
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    ids = [f"c{rng.integers(0, 80)}" for _ in range(300)]
    one_h, bulk_h = HammingIndex(256), HammingIndex(256)
    one, bulk = ClusterIndex(one_h), ClusterIndex(bulk_h)
    for key, (cid, code) in enumerate(zip(ids, codes, strict=True)):
        one_h.add(key, code)
        if cid in {ids[j] for j in range(key)}:
            one.join(cid, code, key)
        else:
            one.found(cid, key)
    keys = np.arange(300)
    bulk_h.add_many(keys[:150], codes[:150])
    bulk.add_many(ids[:150], codes[:150], keys[:150])
    bulk_h.add_many(keys[150:], codes[150:])
    bulk.add_many(ids[150:], codes[150:], keys[150:])
    assert len(one) == len(bulk)
    for cid in set(ids):
        assert np.array_equal(one.center(cid), bulk.center(cid))
    for q in rng.integers(0, 256, (20, 32), dtype=np.uint8):
        assert one.nearest(q) == bulk.nearest(q)
