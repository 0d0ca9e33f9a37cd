"""Benchmark: the engine snapshot (save, load, size) and the per-record cost it replaces.

Run ``python scripts/bench_snapshot.py --stored 100000 --json`` (or ``python -m
scripts.bench_snapshot``). It prints ``stored``, ``save_s``, ``load_s``, ``snapshot_bytes``,
``apply_us_per_record``, ``process_cpu_s``, ``peak_rss_bytes`` and the rest described below.

What is measured, and why this way:

* The engine is filled as ``bench_decide`` fills it, by its own fill (imported, not copied): the
  dev set's originals through ``evaluate``/``apply``, then synthetic images up to N through
  ``DefaultMethod.bulk_load``, every local-feature record in an on-disk ``RocksFeatureStore``.
  A few dev variants are evaluated on the filled engine (``queries``).
* ``save_s``: ``snapshot.save_snapshot`` of the filled engine (arrays written, checksummed and
  synced, the directory renamed). The filled engine is then dropped, and ``load_s`` is
  ``snapshot.load_snapshot`` into a fresh engine over the same store (every file read back and
  checked). The page cache still holds the files just written, as on a restart of the worker
  on the same machine; a cold disk adds its read time of ``snapshot_bytes``.
  ``decisions_identical``: the loaded engine decides every query as the filled one did.
* ``apply_us_per_record``: what a restart without a snapshot pays per stored record, measured on
  the loaded engine (so at N stored): ``Decider.restore`` over ``--apply-records`` stored-image
  records made like the fill's synthetic ones (a dev original's signature with a new SHA-256 and
  64-100 flipped bits in each hash, new clusters at the dev ratio, the rest joining one), their
  local-feature records already in the store. Wall time over the records.
* ``process_cpu_s``: this process's user + system CPU from ``/proc/self/stat`` at the end (the
  fill included); ``save_cpu_s`` and ``load_cpu_s`` the CPU of those steps alone;
  ``peak_rss_bytes`` the process's VmHWM.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import DecisionInfo, StoredImageRecord
from scripts.bench_decide import (
    DEFAULT_MANIFEST,
    bench_default_into,
    extract_all,
    read_manifest,
    synthetic_records,
)
from stream_processors.decider import Decider
from stream_processors.engine.decision import DecisionKind
from stream_processors.engine.default_method import (
    DefaultMethod,
    DefaultSignature,
    Evidence,
    state_to_bytes,
)
from stream_processors.engine.feature_store import RocksFeatureStore
from stream_processors.engine.snapshot import load_snapshot, save_snapshot

DEFAULT_STORED = 100_000
DEFAULT_QUERIES = 40
DEFAULT_APPLY_RECORDS = 5000
FLIP_BITS = (64, 101)  # bits flipped per hash row of an applied record: no duplicate of anything
MERGE_DISTANCE = 50.0  # the distance a joining record's decision carries (not read by apply)
APPLY_PREFIX = "apply-"


def proc_cpu_s() -> float:
    """User + system CPU seconds of this process, from /proc/self/stat."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def stored_records(
    templates: Sequence[DefaultSignature],
    count: int,
    first_seq: int,
    cluster_ratio: float,
    rng: np.random.Generator,
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """``count`` stored-image records as the decide tables hold them (upload id -> record) and
    their local-feature records (upload id -> record), seqs from ``first_seq``."""
    counts = np.array([len(t.local.keypoints) for t in templates])
    stored: dict[str, bytes] = {}
    local: dict[str, bytes] = {}
    founders: list[str] = []
    for i in range(count):
        template = templates[i % len(templates)]
        upload_id = f"{APPLY_PREFIX}{i:08d}"
        bits = np.unpackbits(template.hashes, axis=1)
        flips = rng.random(bits.shape).argsort(axis=1) < rng.integers(*FLIP_BITS)
        sig = dataclasses.replace(
            template,
            sha256=rng.bytes(32),
            hashes=np.packbits(bits ^ flips, axis=1),
            coarse=rng.integers(0, 256, template.coarse.shape, dtype=np.uint8),
        )
        if founders and rng.random() >= cluster_ratio:
            cluster = founders[int(rng.integers(len(founders)))]
            info = DecisionInfo(
                str(DecisionKind.MERGE_CENTER), upload_id, cluster, MERGE_DISTANCE,
                Evidence.CLUSTER,
            )
        else:
            info = DecisionInfo(
                str(DecisionKind.NEW_CLUSTER), upload_id, upload_id, None, Evidence.CLUSTER
            )
            founders.append(upload_id)
        stored[upload_id] = StoredImageRecord(
            seq=first_seq + i, upload_id=upload_id, decision=info, signature=state_to_bytes(sig)
        ).to_record()
        local[upload_id] = synthetic_records([template.local_record], counts, 1, rng)[0]
    return stored, local


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fill, save, load and re-apply (module docstring); the store and snapshot are deleted
    after."""
    rng = np.random.default_rng(args.seed)
    rows = read_manifest(args.manifest)
    originals = [r for r in rows if r.kind == "original"]
    variants = [r for r in rows if r.kind != "original"]
    picked = [variants[i] for i in sorted(rng.choice(len(variants), args.queries, replace=False))]
    sigs = extract_all(originals + picked, args.workers)
    orig_sigs = [(f"o{i}", s) for i, s in enumerate(sigs[: len(originals)]) if s is not None]
    queries = [s for s in sigs[len(originals) :] if s is not None]
    work = Path(tempfile.mkdtemp(prefix="picnix-bench-snapshot-", dir=args.work_dir))
    store = RocksFeatureStore(work / "store")
    try:
        method = DefaultMethod(store)
        t0 = time.perf_counter()
        bench_default_into(orig_sigs, queries[:1], [args.stored], rng, store, method)
        fill_s = time.perf_counter() - t0
        ratio = method.cluster_count() / max(1, len(method))
        expected = [method.evaluate(f"q{j}", sig) for j, sig in enumerate(queries)]
        position = method.position

        cpu0, t0 = proc_cpu_s(), time.perf_counter()
        path = save_snapshot(method, position, work / "snapshots")
        save_s, save_cpu_s = time.perf_counter() - t0, proc_cpu_s() - cpu0
        files = [f for f in path.iterdir() if f.is_file()]
        del method
        gc.collect()

        cpu0, t0 = proc_cpu_s(), time.perf_counter()
        loaded = load_snapshot(work / "snapshots", store)
        load_s, load_cpu_s = time.perf_counter() - t0, proc_cpu_s() - cpu0
        if loaded is None:
            raise RuntimeError(f"no snapshot found in {work / 'snapshots'} after saving one")
        twin = loaded.method
        got = [twin.evaluate(f"q{j}", sig) for j, sig in enumerate(queries)]
        stored_n, clusters = len(twin), twin.cluster_count()

        templates = [sig for _, sig in orig_sigs]
        stored, local = stored_records(
            templates, args.apply_records, twin.position + 1, ratio, rng
        )
        store.bulk_put(local.items())
        store.settle()
        decider = Decider(twin, {}, stored, {})
        t0 = time.perf_counter()
        applied = decider.restore()
        apply_s = time.perf_counter() - t0
        return {
            "stored": stored_n,
            "clusters": clusters,
            "fill_s": round(fill_s, 1),
            "save_s": round(save_s, 2),
            "save_cpu_s": round(save_cpu_s, 2),
            "load_s": round(load_s, 2),
            "load_cpu_s": round(load_cpu_s, 2),
            "snapshot_bytes": sum(f.stat().st_size for f in files),
            "snapshot_files": len(files),
            "snapshot_bytes_per_image": round(
                sum(f.stat().st_size for f in files) / max(1, stored_n), 1
            ),
            "queries": len(queries),
            "decisions_identical": got == expected,
            "apply_records": applied,
            "apply_us_per_record": round(apply_s / max(1, applied) * 1e6, 1),
            "process_cpu_s": round(proc_cpu_s(), 1),
            "peak_rss_bytes": peak_rss_bytes(),
        }
    finally:
        store.destroy()
        shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stored", type=int, default=DEFAULT_STORED, help="images in the engine")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--queries", type=int, default=DEFAULT_QUERIES)
    ap.add_argument("--apply-records", type=int, default=DEFAULT_APPLY_RECORDS)
    ap.add_argument("--workers", type=int, default=2, help="processes for the dev extraction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--work-dir", type=Path, help="where the store and snapshot go (default: temp dir)"
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["decisions_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
