"""Benchmark: time to decide one upload as the store grows to 10k, 100k and 1M images.

Run ``python scripts/bench_decide.py --json`` (or ``python -m scripts.bench_decide``). It prints
``{"points": [{"stored", "decide_ms_p50", "decide_ms_p99", "decide_ms_mean", "new_image_ms_p50",
"bytes_per_image", "disk_bytes_per_image", ...}, ...], ...}``.

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
  pipeline). Every image's local-feature record, real or synthetic, lives in one on-disk
  ``RocksFeatureStore`` with the worker's bounded caches, so candidate reads are timed as in
  production (at 1M the records outgrow the page cache). A synthetic record is a real original's
  thumbnail with as many uniformly random keypoints as a real original has (their count drawn
  from the real ones): a synthetic candidate costs a real verification that fails.
  ``bytes_per_image`` is everything the engine holds in RAM over N: ``DefaultMethod.memory_bytes()``
  (the indexes, Python id objects included) plus the store's RAM (block cache, memtables, table
  readers); ``disk_bytes_per_image`` the store's files over N. ``decide_ms_mean`` is the mean
  over the query mix, ``new_image_ms_p50`` the p50 of the queries that copy nothing stored.
  ``index_ms_p50`` is the index part of the same decisions alone, by stage (``hash``:
  SHA lookup, hash and layout-hash searches; ``words``: both visual-word queries; ``cluster``:
  nearest cluster center, paid by non-duplicates only): everything but the verification of
  candidates, which reads the FeatureStore and costs the same at any N. ``by_evidence`` splits
  the same decisions by the evidence that decided them (``default:sha256``,
  ``default:hash+quick-pixels``, ``default:hash+pixels``, ``default:orb+ransac+pixels``, or
  ``default:hash-cluster`` for no duplicate): how many and their p50.
* ``match_ms_p50``, ``commit_ms_p50``, ``commit_ms_p99``: the same queries through the split
  decide (``commit_pass``): the match is ``evaluate`` on the index as it is, the commit
  ``settle`` (the changes since the match, engine.delta) plus ``apply``, with COMMIT_WINDOW
  uploads in flight; ``commit_reevaluated`` counts the commits that had to evaluate again, and
  ``commit_checks_run`` the verifications those ran that their matches had not (engine.checks)
  and ``commit_index_queried`` those that queried the index instead of merging their match's
  answers with the entries added since (engine.index_queries); ``commit_unverified_ms_p99`` is
  the p99 of the commits that ran no verification of their own (what is left once a candidate
  the changes brought in, a copy still in flight say, must be verified on the sequential step).
  Each match is caught up as the worker does (``IndexReplica.catch_up``: settled against the
  changes its replica applied while it was evaluated) once only CATCH_UP_RESIDUAL queries ahead
  of it remain to be committed; ``caught_up`` counts the matches that moved, ``catch_up_ms_p50``
  their settling (counted in ``match_ms_p50``). ``without_catch_up`` is the same stream with
  every match sent as evaluated, the commit settling all COMMIT_WINDOW - 1 changes.
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
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.hamming_index import HammingIndex

# the dev set beside the checkout (``../shared`` from the project root)
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared/datasets/dev/manifest.csv"
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000, 50_000)
FILL_CHUNK = 20_000  # synthetic records generated and ingested at a time (~0.5 GB)
# Uploads matched but not yet committed when one commits: two workers matching, the commit a
# few records behind (what bench_pipeline's picnix_match_lag_positions shows)
COMMIT_WINDOW = 4
# Of those, the ones a match's catch-up misses: committed after the worker settled its match
# against what its replica had applied and before the commit settles it
# (bench_pipeline's picnix_match_lag_positions with the catch-up)
CATCH_UP_RESIDUAL = 1


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
def synthetic_records(
    templates: Sequence[bytes], counts: np.ndarray, n: int, rng: np.random.Generator
) -> list[bytes]:
    """n local-feature records: a template's header and thumbnail with ``counts``-distributed
    uniformly random keypoints in the template's frame (module docstring)."""
    from stream_processors.engine.local_features import (
        _LF_HEADER,
        COORD_SCALE,
        DESCRIPTOR_BYTES,
        _record_header,
    )

    out = []
    which = rng.integers(0, len(templates), n)
    sizes = rng.choice(counts, n)
    for t, k in zip(which.tolist(), sizes.tolist(), strict=True):
        template = templates[t]
        head = _record_header(template)
        fields = list(_LF_HEADER.unpack_from(template, 0))
        fields[7] = k  # the keypoint count
        thumb = template[_LF_HEADER.size : _LF_HEADER.size + head.thumb_bytes]
        w, h = head.frame_size
        pts = rng.random((k, 2)) * (w - 1, h - 1) * COORD_SCALE
        desc = rng.bytes(DESCRIPTOR_BYTES * k)
        out.append(_LF_HEADER.pack(*fields) + thumb + pts.astype("<u2").tobytes() + desc)
    return out


def bench_default(
    originals: list[tuple[str, Any]],
    queries: list[Any],
    sizes: Sequence[int],
    rng: np.random.Generator,
    store_parent: Path | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The default method's decisions at each size, its records in a RocksFeatureStore in a
    fresh directory under ``store_parent`` (the system's temp dir by default), deleted after."""
    from stream_processors.engine.default_method import DefaultMethod
    from stream_processors.engine.feature_store import RocksFeatureStore

    notes: list[str] = []
    store_dir = Path(tempfile.mkdtemp(prefix="picnix-bench-store-", dir=store_parent))
    store = RocksFeatureStore(store_dir)
    try:
        method = DefaultMethod(store)
        return bench_default_into(originals, queries, sizes, rng, store, method), notes
    finally:
        store.destroy()  # closes it and deletes store_dir


def bench_default_into(
    originals: list[tuple[str, Any]],
    queries: list[Any],
    sizes: Sequence[int],
    rng: np.random.Generator,
    store: Any,
    method: Any,
) -> list[dict[str, Any]]:
    """``bench_default`` on a given store and method, left filled to the largest size: other
    benchmarks (bench_snapshot) fill their engine through it and measure what they do next."""
    from stream_processors.engine.default_method import Evidence
    from stream_processors.engine.visual_words import WORD_BITS, WORD_TABLES, WORDS_PER_IMAGE

    for upload_id, sig in originals:
        method.apply(method.evaluate(upload_id, sig), sig)
    n_real = len(method)
    clusters_real = method.cluster_count()
    ratio = clusters_real / max(1, n_real)
    templates = [sig.local_record for _, sig in originals]
    counts = np.array([len(sig.local.keypoints) for _, sig in originals])
    real_codes = np.stack([s.code for _, s in originals])
    synth = synthetic_codes(real_codes, max(sizes) - n_real, rng)
    n_synth_clusters = 0
    founders: list[str] = []
    filled = 0
    points = []
    for n in sizes:
        need = n - n_real - filled
        t0 = time.perf_counter()
        # zero-padded: each fill chunk is a key range of its own, so RocksDB ingests its
        # table file below the others instead of compacting 30 GB while the queries are timed
        image_ids = [f"s{i:09d}" for i in range(filled, filled + need)]
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
        for lo in range(0, need, FILL_CHUNK):
            ids = image_ids[lo : lo + FILL_CHUNK]
            records = synthetic_records(templates, counts, len(ids), rng)
            store.bulk_put(zip(ids, records, strict=True))
        method.bulk_load(
            image_ids,
            cluster_ids,
            [shas[32 * i : 32 * i + 32] for i in range(need)],
            synth[filled : filled + need],
            coarse,
            words,
        )
        del words
        store.settle()
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
        new_image = by_evidence.get(Evidence.CLUSTER, [])
        order = int(rng.integers(1 << 31))  # one stream for both passes
        split = commit_pass(
            method, queries, f"c{n}", np.random.default_rng(order), CATCH_UP_RESIDUAL
        )
        unsplit = commit_pass(method, queries, f"u{n}", np.random.default_rng(order), None)
        points.append(
            {
                "stored": stored,
                "decide_ms_p50": p50,
                "decide_ms_p99": p99,
                "match_ms_p50": _percentiles(split.match_ms)[0],
                "commit_ms_p50": _percentiles(split.commit_ms)[0],
                "commit_ms_p99": _percentiles(split.commit_ms)[1],
                "commit_reevaluated": split.reevaluated,
                "commit_checks_run": split.checks_run,
                "commit_unverified_ms_p99": _percentiles(split.unverified_ms)[1],
                "commit_index_queried": split.index_queried,
                "catch_up_ms_p50": (
                    _percentiles(split.catch_up_ms)[0] if split.catch_up_ms else None
                ),
                "caught_up": len(split.catch_up_ms),
                "without_catch_up": {
                    "commit_ms_p50": _percentiles(unsplit.commit_ms)[0],
                    "commit_ms_p99": _percentiles(unsplit.commit_ms)[1],
                    "commit_reevaluated": unsplit.reevaluated,
                    "commit_checks_run": unsplit.checks_run,
                    "match_ms_p50": _percentiles(unsplit.match_ms)[0],
                },
                "decide_ms_mean": round(float(np.mean(times)), 4),
                "new_image_ms_p50": _percentiles(new_image)[0] if new_image else None,
                "bytes_per_image": round(
                    (method.memory_bytes() + store.memory_bytes()) / stored, 1
                ),
                "index_bytes_per_image": round(method.memory_bytes() / stored, 1),
                "disk_bytes_per_image": round(store.disk_bytes() / stored, 1),
                "index_ms_p50": {k: _percentiles(v)[0] for k, v in stages.items()},
                "by_evidence": {
                    k: {"decisions": len(v), "decide_ms_p50": _percentiles(v)[0]}
                    for k, v in sorted(by_evidence.items())
                },
                "fill_s": round(dt, 1),
            }
        )
    return points


@dataclass(frozen=True)
class SplitTimes:
    match_ms: list[float]
    commit_ms: list[float]
    reevaluated: int
    checks_run: int  # verifications the commits ran that their matches had not
    unverified_ms: list[float]  # the commits that ran no verification of their own
    index_queried: int  # evaluations again that queried the index (engine.index_queries)
    catch_up_ms: list[float]  # the workers' settling of their own matches (part of match_ms)


@dataclass
class InFlight:
    """A query matched and not yet committed (``match``: its index in match_ms)."""

    upload_id: str
    sig: Any
    matched: Any
    position: int
    checks: CheckMemo
    match: int


def commit_pass(
    method: Any,
    queries: list[Any],
    prefix: str,
    rng: np.random.Generator,
    catch_up_residual: int | None,
) -> SplitTimes:
    """The queries as a stream through the split decide, COMMIT_WINDOW in flight: each is
    matched at the index's position then, and committed (``settle`` + ``apply``, the commit's
    engine work) after the COMMIT_WINDOW - 1 queries matched before it are, so its settle sees
    the changes those made. With ``catch_up_residual`` R, a match is caught up (settled at
    the position then, as IndexReplica.catch_up does on the worker) once only R queries ahead
    of it remain to be committed: its commit then sees the changes of those R. The stream is
    the queries shuffled: picked in manifest order, the copies of one picture would follow each
    other, the burst in which every commit must evaluate again. The entries committed leave
    the index again afterwards (untimed), so the next size starts from the same images."""
    match_ms: list[float] = []
    commit_ms: list[float] = []
    unverified_ms: list[float] = []
    catch_up_ms: list[float] = []
    reevaluated = 0
    checks_run = 0
    index_queried = 0
    in_flight: list[InFlight] = []
    committed: list[tuple[str, Any]] = []

    def catch_up() -> None:
        if catch_up_residual is None or len(in_flight) <= catch_up_residual:
            return
        m = in_flight[catch_up_residual]
        if m.position == method.position:
            return
        t = time.perf_counter()
        m.matched = method.settle(m.upload_id, m.sig, m.matched, m.position, m.checks).decision
        m.position = method.position
        catch_up_ms.append((time.perf_counter() - t) * 1e3)
        match_ms[m.match] += catch_up_ms[-1]

    def commit_one() -> None:
        nonlocal reevaluated, checks_run, index_queried
        m = in_flight.pop(0)
        t = time.perf_counter()
        settled = method.settle(m.upload_id, m.sig, m.matched, m.position, m.checks)
        if method.apply(settled.decision, m.sig):
            committed.append((m.upload_id, settled.decision))
        commit_ms.append((time.perf_counter() - t) * 1e3)
        if not settled.checks_run:
            unverified_ms.append(commit_ms[-1])
        reevaluated += settled.reevaluated
        checks_run += settled.checks_run
        index_queried += settled.index_queried
        catch_up()

    for j in rng.permutation(len(queries)).tolist():
        sig = queries[j]
        upload_id = f"{prefix}-{j}"
        position = method.position
        t = time.perf_counter()
        checks = CheckMemo()
        matched = method.evaluate(upload_id, sig, checks)
        match_ms.append((time.perf_counter() - t) * 1e3)
        in_flight.append(InFlight(upload_id, sig, matched, position, checks, len(match_ms) - 1))
        if len(in_flight) >= COMMIT_WINDOW:
            commit_one()
    while in_flight:
        commit_one()
    for upload_id, decision in reversed(committed):
        if decision.is_duplicate:
            method.remove_alias(upload_id)
        else:
            method.remove(upload_id)
    return SplitTimes(
        match_ms, commit_ms, reevaluated, checks_run, unverified_ms, index_queried, catch_up_ms
    )


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
    ap.add_argument(
        "--store-dir", type=Path, help="where the on-disk feature store goes (default: temp dir)"
    )
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
        points, more = bench_default(orig_sigs, query_sigs, sizes, rng, args.store_dir)
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
