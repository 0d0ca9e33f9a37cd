"""HammingIndex against brute force: exact radius search and knn, through adds, bulk loads,
rebuilds and removals, on random codes with planted near neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from stream_processors.engine.hamming_index import HammingIndex


def _flip(code: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, n, replace=False)] ^= 1
    return np.packbits(bits)


def _brute(
    store: dict[int, np.ndarray], q: np.ndarray, radius: int | None = None
) -> list[tuple[int, int]]:
    out = [(k, int(np.unpackbits(c ^ q).sum())) for k, c in store.items()]
    if radius is not None:
        out = [kd for kd in out if kd[1] <= radius]
    return sorted(out, key=lambda kd: (kd[1], kd[0]))


def _planted(n: int, n_bits: int, seed: int) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    """Random codes, plus clusters of near copies, plus queries near stored codes."""
    rng = np.random.default_rng(seed)
    store: dict[int, np.ndarray] = {}
    base = rng.integers(0, 256, (n, n_bits // 8), dtype=np.uint8)
    for i in range(n):
        store[i * 3 + 1] = base[i]
    for j in range(n // 10):  # near-duplicate clusters
        src = base[rng.integers(n)]
        store[10_000_000 + j] = _flip(src, int(rng.integers(0, 40)), rng)
    queries = [_flip(base[rng.integers(n)], int(rng.integers(0, 45)), rng) for _ in range(30)]
    queries += [rng.integers(0, 256, n_bits // 8, dtype=np.uint8) for _ in range(5)]
    return store, queries


@pytest.mark.parametrize("n", [300, 5000])
@pytest.mark.parametrize("radius", [0, 7, 15, 31, 47, 70])
def test_search_matches_brute_force(n: int, radius: int) -> None:
    store, queries = _planted(n, 256, seed=n + radius)
    idx = HammingIndex(256)
    for k, c in store.items():
        idx.add(k, c)
    assert len(idx) == len(store)
    for q in queries:
        assert idx.search(q, radius, limit=10_000) == _brute(store, q, radius)
        assert idx.search(q, radius, limit=3) == _brute(store, q, radius)[:3]


def test_bulk_load_and_delta_agree() -> None:
    store, queries = _planted(4000, 256, seed=7)
    keys = list(store)
    idx = HammingIndex()
    idx.add_many(keys[:3000], np.stack([store[k] for k in keys[:3000]]))
    for k in keys[3000:]:  # these stay in the linear delta region
        idx.add(k, store[k])
    for q in queries:
        assert idx.search(q, 31, 100) == _brute(store, q, 31)[:100]


def test_remove_and_replace() -> None:
    store, queries = _planted(3000, 256, seed=3)
    idx = HammingIndex()
    idx.add_many(list(store), np.stack(list(store.values())))
    rng = np.random.default_rng(0)
    victims = [int(k) for k in rng.choice(list(store), 900, replace=False)]
    for k in victims:  # crosses the 25% tombstone threshold, forcing a compaction
        idx.remove(k)
        del store[k]
    with pytest.raises(KeyError):
        idx.remove(victims[0])
    assert victims[0] not in idx
    # re-adding a removed key and replacing a live key
    idx.add(victims[0], queries[0])
    store[victims[0]] = queries[0]
    live = next(iter(store))
    idx.add(live, queries[1])
    store[live] = queries[1]
    assert len(idx) == len(store)
    np.testing.assert_array_equal(idx.get(live), queries[1])
    for q in queries:
        assert idx.search(q, 40, 10_000) == _brute(store, q, 40)


@pytest.mark.parametrize("k", [1, 3, 20])
def test_knn_exact(k: int) -> None:
    store, queries = _planted(3000, 256, seed=k)
    idx = HammingIndex()
    idx.add_many(list(store), np.stack(list(store.values())))
    for q in queries:
        got = idx.knn(q, k)
        want = _brute(store, q)[:k]
        assert got == want


def test_other_widths_and_validation() -> None:
    store, queries = _planted(2000, 64, seed=1)
    idx = HammingIndex(64)
    idx.add_many(list(store), np.stack(list(store.values())))
    for q in queries:
        assert idx.search(q, 12, 50) == _brute(store, q, 12)[:50]
        assert idx.knn(q, 2) == _brute(store, q)[:2]
    with pytest.raises(ValueError):
        HammingIndex(100)
    with pytest.raises(ValueError):
        idx.add(1, np.zeros(4, dtype=np.uint8))
    with pytest.raises(TypeError):
        idx.add(1, np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError):
        idx.add_many([1, 1], np.zeros((2, 8), dtype=np.uint8))


def test_empty_and_memory() -> None:
    idx = HammingIndex()
    q = np.zeros(32, dtype=np.uint8)
    assert idx.search(q, 10, 5) == [] and idx.knn(q, 3) == [] and len(idx) == 0
    rng = np.random.default_rng(0)
    n = 70_000
    idx.add_many(np.arange(n), rng.integers(0, 256, (n, 32), dtype=np.uint8))
    # the code (32 B) plus at most ~100 B of index per code
    assert idx.nbytes() / n <= 32 + 100


@pytest.mark.parametrize("n_bits", [128, 256])
def test_find_returns_exactly_the_equal_codes(n_bits: int) -> None:
    """find(): the indexed tables, the delta region and tombstones, against a dict scan."""
    rng = np.random.default_rng(n_bits)
    codes = rng.integers(0, 256, (3000, n_bits // 8), dtype=np.uint8)
    codes[10] = codes[20]  # two keys with one code
    idx = HammingIndex(n_bits)
    idx.add_many(np.arange(2000), codes[:2000])
    for k in range(2000, 3000):  # the delta region
        idx.add(k, codes[k])
    idx.remove(5)
    idx.remove(2500)
    live = {k: codes[k] for k in range(3000) if k not in (5, 2500)}
    for probe in (codes[20], codes[5], codes[2500], codes[2999], _flip(codes[7], 1, rng)):
        want = sorted(k for k, c in live.items() if np.array_equal(c, probe))
        assert idx.find(probe) == want
    assert idx.find(codes[20]) == [10, 20]
    assert idx.find(codes[5]) == []
    assert HammingIndex(n_bits).find(codes[0]) == []


@pytest.mark.parametrize("radius", [1, 9, 15])
def test_small_radius_search_after_bulk_load_and_removals(radius: int) -> None:
    """Radii below the substring count take the shared-substring probe: exact all the same."""
    store, queries = _planted(3000, 256, seed=radius)
    keys = list(store)
    idx = HammingIndex()
    idx.add_many(keys, np.stack([store[k] for k in keys]))
    for k in keys[::7]:
        idx.remove(k)
        del store[k]
    for q in queries:
        assert idx.search(q, radius, limit=10_000) == _brute(store, q, radius)
