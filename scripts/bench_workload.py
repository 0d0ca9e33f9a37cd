"""The uploads `scripts/bench_pipeline.py` replays, built once into a cache dir and reused.

``full``: the openclipart crawl (``picnix dataset fetch openclipart``), re-uploads made from 30 %
of it with the stress-set edits (``scripts.make_stress_set``; half by the original's author, half
by another), the dev set, and a share of large photos (>= 8 MP JPEGs, dev photos upscaled) so
reduced-size decoding is exercised; shuffled with a fixed seed. ``synthetic``: the same mix made
from generated pictures only, for tests and bare machines (no download, no ../shared).

The shuffled list is split in two manifests: ``phase1.csv`` (the throughput phase) and
``phase2.csv`` (the fixed-rate latency phase), so the second phase only offers uploads the first
has not seen. Paths in them are relative to the manifest (crawl and dev images stay where they
are); ``picnix replay`` takes either as any manifest. A marker written last makes the build
idempotent: a complete workload is reused, a half-built one is built again.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from producers.replay import ReplayItem, discover
from scripts.make_stress_set import family_deck, make_variant, plan_variant
from stream_processors.engine.decode import DecodeLimits, ImageRejected, decode_image

WORKLOAD_VERSION = 1  # part of the cache dir's name: bump when what is built changes
MARKER_NAME = ".complete.json"
PHASE1_MANIFEST = "phase1.csv"
PHASE2_MANIFEST = "phase2.csv"
MANIFEST_FIELDS = ("path", "author", "title", "kind")
GENERATED_DIR = "generated"

REUPLOAD_SHARE = 0.30  # of the crawl, re-uploaded with stress-set edits
OTHER_AUTHOR_SHARE = 0.5  # of the re-uploads, by someone other than the original's author
REUPLOADERS = 50  # distinct re-uploading accounts
LARGE_PHOTO_SHARE = 0.02  # of the whole workload
LARGE_PHOTO_PIXELS = (8.2e6, 12e6)  # >= 8 MP, so decode takes its reduced-size path
LARGE_JPEG_QUALITY = (85, 95)
FULL_PHASE2_POOL = 3000  # 60 s at 50 uploads/s
SYNTHETIC_SIDE = 256
SYNTHETIC_GRID = 16
SYNTHETIC_LARGE = 2
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]


class WorkloadError(RuntimeError):
    """The workload could not be built: a missing input or an image that cannot be made."""


@dataclass(frozen=True)
class Upload:
    """One upload of the workload: a file (absolute while building) and who posts it."""

    path: Path
    author: str
    title: str
    kind: str


@dataclass(frozen=True)
class Workload:
    root: Path
    phase1: Path
    phase2: Path
    phase1_count: int
    phase2_count: int
    kinds: dict[str, int]
    reused: bool


@dataclass(frozen=True)
class _EditJob:
    """A re-upload to make in a pool process: everything it depends on is in here."""

    source: Path
    dest_stem: Path
    primary: str
    seed: tuple[int, ...]


@dataclass(frozen=True)
class _LargeJob:
    source: Path
    dest: Path
    seed: tuple[int, ...]


def build_full(
    cache_dir: Path, seed: int, crawl_manifest: Path, dev_manifest: Path, jobs: int,
) -> Workload:
    """The full workload (crawl + re-uploads + dev + large photos) under ``cache_dir``."""
    for manifest in (crawl_manifest, dev_manifest):
        if not manifest.is_file():
            raise WorkloadError(f"{manifest}: no such manifest")
    root = cache_dir / f"full-seed{seed}-v{WORKLOAD_VERSION}"
    done = _complete(root)
    if done:
        return done
    generated = _fresh(root)
    crawl = discover(crawl_manifest)
    dev = discover(dev_manifest)
    rng = np.random.default_rng([seed, 1])
    picked = sorted(rng.choice(len(crawl), size=round(REUPLOAD_SHARE * len(crawl)), replace=False))
    deck = family_deck(seed)
    edit_jobs = [
        _EditJob(crawl[i].path, generated / f"reupload-{n:05d}", next(deck), (seed, 2, n))
        for n, i in enumerate(picked)
    ]
    photos = [item for item in dev if item.path.suffix.lower() in (".jpg", ".jpeg")]
    if not photos:
        raise WorkloadError(f"{dev_manifest}: no JPEG photos to upscale")
    total = len(crawl) + len(edit_jobs) + len(dev)
    large_count = math.ceil(LARGE_PHOTO_SHARE * total / (1 - LARGE_PHOTO_SHARE))
    large_sources = [photos[n % len(photos)] for n in range(large_count)]
    large_jobs = [
        _LargeJob(item.path, generated / f"large-{n:04d}.jpg", (seed, 3, n))
        for n, item in enumerate(large_sources)
    ]
    uploads = [_upload(item, "crawl") for item in crawl] + [_upload(item, "dev") for item in dev]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        made = list(pool.map(_make_reupload, edit_jobs, chunksize=16))
        larges = list(pool.map(_make_large, large_jobs, chunksize=4))
    for n, (i, path) in enumerate(zip(picked, made, strict=True)):
        if path is not None:
            original = crawl[i]
            uploads.append(Upload(path, _reuploader(original.author, n, rng), original.title,
                                  "reupload"))
    for n, (item, path) in enumerate(zip(large_sources, larges, strict=True)):
        if path is not None:
            owner = item.author if n % 2 else f"photographer-{n % REUPLOADERS}"
            uploads.append(Upload(path, owner, item.title, "large"))
    return _finish(root, uploads, FULL_PHASE2_POOL, seed)


def build_synthetic(cache_dir: Path, seed: int, count: int, phase2_count: int) -> Workload:
    """``count`` uploads made of generated pictures: distinct ones, their edited re-uploads, exact
    copies and large photos, in the full workload's proportions; no input needed."""
    if count < 10 or phase2_count < 1 or phase2_count >= count:
        raise WorkloadError(f"synthetic workload of {count}, phase 2 {phase2_count}: too small")
    root = cache_dir / f"synthetic-seed{seed}-n{count}-p{phase2_count}-v{WORKLOAD_VERSION}"
    done = _complete(root)
    if done:
        return done
    generated = _fresh(root)
    rng = np.random.default_rng([seed, 4])
    copies = max(1, count // 20)
    reuploads = round(REUPLOAD_SHARE * (count - SYNTHETIC_LARGE - copies) / (1 + REUPLOAD_SHARE))
    distinct = count - SYNTHETIC_LARGE - copies - reuploads
    uploads = []
    for n in range(distinct):
        path = generated / f"picture-{n:05d}.png"
        path.write_bytes(_encode(".png", _synthetic_picture(rng), PNG_PARAMS))
        uploads.append(Upload(path, f"artist-{n % 7}", f"picture {n}", "crawl"))
    deck = family_deck(seed)
    for n in range(reuploads):
        original = uploads[n % distinct]
        made = _make_reupload(
            _EditJob(original.path, generated / f"reupload-{n:05d}", next(deck), (seed, 5, n))
        )
        if made is not None:
            uploads.append(Upload(made, _reuploader(original.author, n, rng), original.title,
                                  "reupload"))
    for n in range(copies):
        original = uploads[n % distinct]
        path = generated / f"copy-{n:05d}.png"
        shutil.copyfile(original.path, path)
        uploads.append(Upload(path, f"copier-{n}", original.title, "copy"))
    for n in range(SYNTHETIC_LARGE):
        path = generated / f"large-{n:04d}.jpg"
        made = _make_large(_LargeJob(uploads[n].path, path, (seed, 6, n)))
        if made is None:
            raise WorkloadError(f"cannot make a large photo from {uploads[n].path}")
        uploads.append(Upload(made, f"photographer-{n}", f"large {n}", "large"))
    return _finish(root, uploads, phase2_count, seed)


def _upload(item: ReplayItem, kind: str) -> Upload:
    return Upload(item.path, item.author, item.title, kind)


def _reuploader(author: str, n: int, rng: np.random.Generator) -> str:
    if rng.random() < OTHER_AUTHOR_SHARE:
        return f"reuploader-{n % REUPLOADERS}"
    return author


def _synthetic_picture(rng: np.random.Generator) -> np.ndarray:
    """Random colours enlarged smoothly: every picture is a different image to the engine."""
    small = rng.integers(0, 256, (SYNTHETIC_GRID, SYNTHETIC_GRID, 3), dtype=np.uint8)
    return cv2.resize(small, (SYNTHETIC_SIDE, SYNTHETIC_SIDE), interpolation=cv2.INTER_CUBIC)


def _encode(ext: str, img: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params)
    if not ok:
        raise WorkloadError(f"OpenCV could not encode a {img.shape} image as {ext}")
    return bytes(buf.tobytes())


def _pixels(path: Path) -> np.ndarray | None:
    """The picture as the engine sees it (alpha over its background, upright), or None if the
    engine refuses it (the workload still uploads the original, which goes to the DLQ)."""
    data = path.read_bytes()
    try:
        return decode_image(data, DecodeLimits(max_bytes=max(len(data), 1))).pixels
    except ImageRejected:
        return None


def _make_reupload(job: _EditJob) -> Path | None:
    img = _pixels(job.source)
    if img is None:
        return None
    rng = np.random.default_rng(list(job.seed))
    data, ext, _transform = make_variant(img, plan_variant(job.primary, rng), rng)
    dest = job.dest_stem.with_suffix(ext)
    dest.write_bytes(data)
    return dest


def _make_large(job: _LargeJob) -> Path | None:
    img = _pixels(job.source)
    if img is None:
        return None
    rng = np.random.default_rng(list(job.seed))
    h, w = img.shape[:2]
    scale = math.sqrt(float(rng.uniform(*LARGE_PHOTO_PIXELS)) / (h * w))
    big = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    quality = int(rng.integers(LARGE_JPEG_QUALITY[0], LARGE_JPEG_QUALITY[1] + 1))
    job.dest.write_bytes(_encode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, quality]))
    return job.dest


def _finish(root: Path, uploads: list[Upload], phase2_count: int, seed: int) -> Workload:
    if len(uploads) <= phase2_count:
        raise WorkloadError(f"{len(uploads)} uploads leave none for phase 1 after {phase2_count}")
    order = np.random.default_rng([seed, 7]).permutation(len(uploads))
    shuffled = [uploads[i] for i in order]
    phase1, phase2 = shuffled[:-phase2_count], shuffled[-phase2_count:]
    _write_manifest(root / PHASE1_MANIFEST, phase1)
    _write_manifest(root / PHASE2_MANIFEST, phase2)
    kinds = dict(Counter(u.kind for u in uploads))
    info = {"phase1": len(phase1), "phase2": len(phase2), "kinds": kinds}
    tmp = root / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, root / MARKER_NAME)
    return Workload(root, root / PHASE1_MANIFEST, root / PHASE2_MANIFEST, len(phase1),
                    len(phase2), kinds, reused=False)


def _write_manifest(path: Path, uploads: list[Upload]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows(
            (os.path.relpath(u.path, path.parent), u.author, u.title, u.kind) for u in uploads
        )


def _complete(root: Path) -> Workload | None:
    marker = root / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
        return Workload(root, root / PHASE1_MANIFEST, root / PHASE2_MANIFEST,
                        int(info["phase1"]), int(info["phase2"]),
                        {str(k): int(v) for k, v in info["kinds"].items()}, reused=True)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _fresh(root: Path) -> Path:
    """An emptied workload folder (a half-built one is redone); returns its folder for the
    pictures the workload generates."""
    if root.exists():
        shutil.rmtree(root)
    generated = root / GENERATED_DIR
    generated.mkdir(parents=True)
    return generated


def manifest_paths(manifest: Path, limit: int = 0) -> Iterator[Path]:
    """The image files of a workload manifest, in order (the first ``limit`` when given)."""
    with manifest.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            if limit and n >= limit:
                return
            yield manifest.parent / row["path"]
