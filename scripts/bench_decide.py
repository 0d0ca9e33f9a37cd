"""Benchmark: time to decide one upload as the store grows to 10k, 100k and 1M images.

Run ``python scripts/bench_decide.py --json`` (or ``python -m scripts.bench_decide``). It prints
``{"points": [{"stored", "decide_ms_p50", "decide_ms_p99", "bytes_per_image"}, ...], ...}``.

What is measured, and why this way:

* Queries are real dev-set signatures (variants, which are duplicates of a stored original, and
  distractors, which are not), so the cheap-exit and full-verification paths are both timed.
* The store holds the dev set's originals (real signatures, applied through the method's own
  ``evaluate``/``apply``) plus synthetic images up to N. Synthetic global hashes follow the dev
  set's statistics: half are drawn bit by bit with the dev set's per-bit balance, half are real
  codes with 64-100 bits flipped (they keep the real codes' correlations but are farther than any
  duplicate radius). Synthetic keypoint descriptors are uniformly random (ORB's tests are
  trained to be balanced and uncorrelated). Synthetic clusters keep the dev set's ratio of
  clusters to images.
* ``points`` times ``DefaultMethod.evaluate`` (the real decision, verification included).
  Real originals enter through ``evaluate``/``apply``. Synthetic images enter through
  ``DefaultMethod.bulk_load`` (the snapshot-load path: the same hash, layout-hash, SHA, visual-word
  and cluster structures ``apply`` builds, with one index rebuild per size instead of a million
  single inserts; 1M takes ~1-2 min). Each synthetic image gets a random SHA-256, a random 64-bit
  layout hash, WORDS_PER_IMAGE * WORD_TABLES uniformly random visual words (what uniformly random
  ORB descriptors give) and a cluster: a new one with the dev set's clusters-per-image ratio,
  else a uniformly chosen earlier synthetic cluster (its id is its founder's image id, as in the
  pipeline). Their local features go to a bench FeatureStore: real images' records are kept in
  memory; synthetic records are not kept (in production they live on disk and are read only for
  candidates) and a read returns one of a few random-image records, so a synthetic candidate
  costs a real verification that fails. ``bytes_per_image`` is ``DefaultMethod.memory_bytes() /
  N`` (the in-memory index, Python id objects included; the feature store is excluded, as it is
  on disk). ``index_ms_p50`` is the index part of the same decisions alone, by stage (``hash``:
  SHA lookup, hash and layout-hash searches; ``words``: both visual-word queries; ``cluster``:
  nearest cluster center, paid by non-duplicates only): everything but the verification of
  candidates, which reads the FeatureStore and costs the same at any N. ``by_evidence`` splits
  the same decisions by the evidence that decided them (``default:sha256``,
  ``default:hash+quick-pixels``, ``default:hash+pixels``, ``default:orb+ransac+pixels``, or
  ``default:hash-cluster`` for no duplicate): how many and their p50.
* ``index_points`` times the global-hash stage alone on ``HammingIndex`` bulk-loaded
  (``add_many``): the QUERY_VARIANTS radius searches with the default method's shortlist radius and
  limit, plus the nearest-cluster-center search; ``bytes_per_image`` is both indexes' bytes / N.
  This is the part of the decision whose cost can grow with N; it isolates the index from the
  verification cost.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_processors.engine.hamming_index import HammingIndex

DEFAULT_MANIFEST = Path("/work/shared/datasets/dev/manifest.csv")
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000, 50_000)
_SYNTH_KEY_BASE = 1 << 40


@dataclass(frozen=True)
class Row:
    path: Path
    group_id: str
    kind: str


def read_manifest(path: Path) -> list[Row]:
    with path.open(newline="") as f:
        return [Row(path.parent / r["path"], r["group_id"], r["kind"]) for r in csv.DictReader(f)]


def _extract_bytes(path: str) -> bytes | None:
    """Decode and extract one image with the default method (worker process)."""
    from stream_processors.engine.decode import ImageRejected, decode_image
    from stream_processors.engine.default_method import extract_signature, signature_to_bytes

    try:
        image = decode_image(Path(path).read_bytes())
    except ImageRejected:
        return None
    return signature_to_bytes(extract_signature(image))


def extract_all(rows: Sequence[Row], workers: int) -> list[Any]:
    """Default-method signatures of the rows (None where decode rejected the file)."""
    from stream_processors.engine.default_method import signature_from_bytes

    paths = [str(r.path) for r in rows]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            raw = list(pool.map(_extract_bytes, paths, chunksize=16))
    else:
        raw = [_extract_bytes(p) for p in paths]
    return [None if b is None else signature_from_bytes(b) for b in raw]


def synthetic_codes(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n codes with the dev set's statistics (module docstring)."""
    if n <= 0:
        return np.zeros((0, real.shape[1]), np.uint8)
    bits = np.unpackbits(real, axis=1)
    p = bits.mean(axis=0)
    half = n // 2
    drawn = np.packbits(rng.random((half, bits.shape[1]), dtype=np.float32) < p, axis=1)
    src = np.unpackbits(real[rng.integers(0, len(real), n - half)], axis=1)
    n_flip = rng.integers(64, 101, n - half)
    noise = rng.random(src.shape, dtype=np.float32).argsort(axis=1)  # random bit order per row
    flips = noise < n_flip[:, None]
    perturbed = np.packbits(src ^ flips, axis=1)
    out = np.concatenate([drawn, perturbed])
    return out[rng.permutation(n)]


def _percentiles(ms: list[float]) -> tuple[float, float]:
    a = np.asarray(ms)
    return round(float(np.percentile(a, 50)), 4), round(float(np.percentile(a, 99)), 4)


# ----------------------------------------------------------------------------- index path
def bench_index(
    stored_codes: np.ndarray,
    queries: list[np.ndarray],
    sizes: Sequence[int],
    cluster_ratio: float,
    rng: np.random.Generator,
    hash_radius: int | None = None,
    join_distance: int | None = None,
) -> list[dict[str, Any]]:
    """Global-hash stage alone: 8 dihedral searches + nearest cluster center, bulk-loaded.

    Radii default to the default method's (SHORTLIST.hash_radius, CLUSTER_JOIN_DISTANCE)."""
    from stream_processors.engine.clusters import CLUSTER_JOIN_DISTANCE
    from stream_processors.engine.default_method import QUERY_VARIANTS, SHORTLIST

    radius = SHORTLIST.hash_radius if hash_radius is None else hash_radius
    join = CLUSTER_JOIN_DISTANCE if join_distance is None else join_distance

    points = []
    synth = synthetic_codes(stored_codes, max(sizes) - len(stored_codes), rng)
    all_codes = np.concatenate([stored_codes, synth])
    for n in sizes:
        codes = all_codes[:n]
        hashes = HammingIndex(codes.shape[1] * 8)
        hashes.add_many(np.arange(n), codes)
        n_clusters = max(1, round(n * cluster_ratio))
        centers = HammingIndex(codes.shape[1] * 8)
        centers.add_many(np.arange(n_clusters), codes[rng.choice(n, n_clusters, replace=False)])
        times = []
        search_us = []
        for q in queries:
            t0 = time.perf_counter()
            for k in QUERY_VARIANTS:
                hashes.search(q[k], radius, SHORTLIST.hash_limit)
            t1 = time.perf_counter()
            centers.search(q[0], join, 1)
            t2 = time.perf_counter()
            times.append((t2 - t0) * 1e3)
            search_us.append((t1 - t0) * 1e6 / len(QUERY_VARIANTS))
        p50, p99 = _percentiles(times)
        points.append(
            {
                "stored": n,
                "decide_ms_p50": p50,
                "decide_ms_p99": p99,
                "bytes_per_image": round((hashes.nbytes() + centers.nbytes()) / n, 1),
                "search_us_p50": round(float(np.median(search_us)), 1),
                "index_bytes_per_code": round(hashes.nbytes() / n, 1),
                "clusters": n_clusters,
                "hash_radius": radius,
                "join_distance": join,
            }
        )
    return points


# ----------------------------------------------------------------------------- default method
class BenchFeatureStore:
    """Real images' local features in memory; synthetic ones stand for records on disk."""

    def __init__(self, synthetic_records: list[bytes]) -> None:
        self._data: dict[int, bytes] = {}
        self._synthetic = synthetic_records
        self.keep = True

    def put(self, key: int, data: bytes) -> None:
        if self.keep:
            self._data[key] = data

    def get(self, key: int) -> bytes:
        rec = self._data.get(key)
        return rec if rec is not None else self._synthetic[key % len(self._synthetic)]

    def delete(self, key: int) -> None:
        self._data.pop(key, None)

    def nbytes(self) -> int:
        return sum(len(v) for v in self._data.values())


def _random_local(rng: np.random.Generator, n_kp: int) -> Any:
    from stream_processors.engine.local_features import Keypoints, LocalFeatures

    pts = rng.uniform(0, 360, (n_kp, 2)).astype(np.float32)
    desc = rng.integers(0, 256, (n_kp, 32), dtype=np.uint8)
    thumb = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    return LocalFeatures(Keypoints(pts, desc), (480, 360), thumb)


def bench_default(
    originals: list[tuple[str, Any]],
    queries: list[Any],
    sizes: Sequence[int],
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[str]]:
    from stream_processors.engine.default_method import DefaultMethod
    from stream_processors.engine.local_features import ThumbCodec, local_features_to_bytes
    from stream_processors.engine.visual_words import WORD_BITS, WORD_TABLES, WORDS_PER_IMAGE

    notes: list[str] = []
    store = BenchFeatureStore(
        [local_features_to_bytes(_random_local(rng, 500), ThumbCodec.RAW) for _ in range(8)]
    )
    method = DefaultMethod(store=store)
    for upload_id, sig in originals:
        method.apply(method.evaluate(upload_id, sig), sig)
    n_real = len(method)
    clusters_real = method.cluster_count()
    ratio = clusters_real / max(1, n_real)
    store.keep = False
    real_codes = np.stack([s.code for _, s in originals])
    synth = synthetic_codes(real_codes, max(sizes) - n_real, rng)
    n_synth_clusters = 0
    founders: list[str] = []
    filled = 0
    points = []
    for n in sizes:
        need = n - n_real - filled
        t0 = time.perf_counter()
        image_ids = [f"s{i}" for i in range(filled, filled + need)]
        # cluster of each synthetic image: a new one with the dev set's clusters-per-image ratio,
        # else a uniformly chosen earlier synthetic cluster
        is_new = rng.random(need) < ratio
        if n_synth_clusters == 0 and need:
            is_new[0] = True
        index = n_synth_clusters + np.cumsum(is_new) - 1
        join = (rng.random(need) * (index + 1)).astype(np.int64)
        cluster_index = np.where(is_new, index, join)
        # a cluster's id is its founder's image id, as in the pipeline
        founders.extend(image_ids[i] for i in np.flatnonzero(is_new).tolist())
        n_synth_clusters = len(founders)
        cluster_ids = [founders[c] for c in cluster_index.tolist()]
        shas = rng.bytes(32 * need)
        words = rng.integers(
            0,
            1 << (WORD_BITS + (WORD_TABLES - 1).bit_length()),
            (need, WORDS_PER_IMAGE * WORD_TABLES),
        )
        coarse = rng.integers(0, 256, (need, 8), dtype=np.uint8)
        method.bulk_load(
            image_ids,
            cluster_ids,
            [shas[32 * i : 32 * i + 32] for i in range(need)],
            synth[filled : filled + need],
            coarse,
            words,
        )
        del words
        filled += need
        dt = time.perf_counter() - t0
        times = []
        stages: dict[str, list[float]] = {}
        by_evidence: dict[str, list[float]] = {}
        for j, sig in enumerate(queries):
            t = time.perf_counter()
            decision = method.evaluate(f"q{j}", sig)
            ms = (time.perf_counter() - t) * 1e3
            times.append(ms)
            by_evidence.setdefault(decision.method, []).append(ms)
            for stage, stage_ms in method.shortlist_ms(sig).items():
                stages.setdefault(stage, []).append(stage_ms)
        p50, p99 = _percentiles(times)
        stored = len(method)
        points.append(
            {
                "stored": stored,
                "decide_ms_p50": p50,
                "decide_ms_p99": p99,
                "bytes_per_image": round(method.memory_bytes() / stored, 1),
                "index_ms_p50": {k: _percentiles(v)[0] for k, v in stages.items()},
                "by_evidence": {
                    k: {"decisions": len(v), "decide_ms_p50": _percentiles(v)[0]}
                    for k, v in sorted(by_evidence.items())
                },
                "fill_s": round(dt, 1),
            }
        )
    return points, notes


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="sizes 2k/10k/50k, fewer queries")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--index-only", action="store_true", help="skip the default-method points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hash-radius", type=int, help="index points: override the shortlist radius")
    ap.add_argument("--join-distance", type=int, help="index points: override the cluster radius")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    sizes = QUICK_SIZES if args.quick else SIZES
    n_queries = min(args.queries, 60) if args.quick else args.queries
    rows = read_manifest(args.manifest)
    originals = [r for r in rows if r.kind == "original"]
    others = [r for r in rows if r.kind != "original"]
    picked = [others[i] for i in sorted(rng.choice(len(others), n_queries, replace=False))]
    t0 = time.perf_counter()
    sigs = extract_all(originals + picked, args.workers)
    extract_s = time.perf_counter() - t0
    orig_sigs = [(f"o{i}", s) for i, s in enumerate(sigs[: len(originals)]) if s is not None]
    query_sigs = [s for s in sigs[len(originals) :] if s is not None]
    notes = [
        f"{len(orig_sigs)} real originals stored, {len(query_sigs)} real queries "
        f"({sum(r.kind != 'distractor' for r in picked)} duplicates of a stored original, "
        f"the rest distractors); extraction {extract_s:.1f} s on {args.workers} workers"
    ]

    real_codes = np.stack([s.code for _, s in orig_sigs])
    index_points = bench_index(
        real_codes,
        [s.hashes for s in query_sigs],
        sizes,
        cluster_ratio=0.9,
        rng=rng,
        hash_radius=args.hash_radius,
        join_distance=args.join_distance,
    )
    result: dict[str, Any] = {"index_points": index_points}
    if args.index_only:
        result["points"] = index_points
        notes.append("--index-only: points are the global-hash stage alone")
    else:
        points, more = bench_default(orig_sigs, query_sigs, sizes, rng)
        result["points"] = points
        notes += more
    result["notes"] = notes
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("points", "index_points"):
            print(name)
            for p in result[name]:
                print("  " + "  ".join(f"{k}={v}" for k, v in p.items()))
        for note in notes:
            print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
