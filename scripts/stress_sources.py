"""`python -m scripts.stress_sources fetch NAME [--limit N]`: originals for a stress set.

Issue 15 asks for stress sets built on images the engine was never tuned on, from two sources:
one to calibrate on and another to report on, so a threshold chosen on the first is judged on
pictures it never saw. Both come from Debian packages through the machine's own mirror
(``apt-get download`` + ``dpkg-deb -x``, nothing installed, no other download site):

- ``neverball`` (calibration): ``neverball-data``'s level screenshots, 3-D renders in which many
  levels share one sky box, so shared backgrounds come for free;
- ``pysiogame`` (reporting): ``pysiogame``'s art4apps illustrations, hand-drawn animals, people,
  food and objects in one painted style (the hidden set's "two creatures from one game's art").

Never ``openclipart-png``: that is the throughput crawl, and a set one tunes on can no longer
say how the engine generalises.

The fetch writes ``~/.cache/picnix/sources/NAME/`` as ``images/`` (one file per picture, named
by the first 16 hex digits of its SHA-256) and a dev-format ``manifest.csv`` (``path, group_id,
kind, transform, source``; every row an ``original`` of its own group) that
``scripts.make_stress_set`` takes. Pictures too small (short side < 128 px), nearly flat, or a
near-copy of one already kept (the same 64-bit difference hash up to a few bits: a package often
ships one drawing twice, at two sizes) are left out, since two copies of one picture under two
group ids would be scored as a false positive the engine did not make. A marker written last
makes the fetch idempotent, as for ``picnix dataset fetch``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from infra.settings import Settings
from scripts.datasets import (
    MARKER_NAME,
    DatasetError,
    Runner,
    _complete,
    _write_marker,
    remove_unpacked,
    unpack_deb,
)

MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("path", "group_id", "kind", "transform", "source")
IMAGES_DIR = "images"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})

MIN_SHORT_SIDE = 128  # below this a picture is an icon, not art worth re-posting
MIN_GREY_STD = 12.0  # a nearly flat picture (a blank card, a plain panel) is not an artwork
NEAR_COPY_BITS = 6  # dHash distance at or below which two package files are one picture
DHASH_SIDE = 8
SHA_PREFIX = 16


@dataclass(frozen=True)
class StressSource:
    """A Debian package whose pictures serve as stress-set originals, and its role."""

    name: str
    role: str  # "calibration" or "reporting"
    package: str
    image_root: str  # inside the package's file tree
    subdirs: tuple[str, ...]  # under image_root; each file's group family is its sub-folder
    default_limit: int
    # files (under image_root) that repeat another file's drawing under another word: found by
    # looking at each false positive of a first evaluation, kept out so that a match between
    # two of the package's own copies is not scored as the engine's mistake
    excluded: frozenset[str] = frozenset()


NEVERBALL = StressSource(
    name="neverball",
    role="calibration",
    package="neverball-data",
    image_root="usr/share/games/neverball",
    subdirs=(
        "shot-easy",
        "shot-medium",
        "shot-hard",
        "shot-mym",
        "shot-mym2",
        "shot-fwp",
        "shot-tones",
        "shot-misc",
    ),
    default_limit=200,
)
PYSIOGAME = StressSource(
    name="pysiogame",
    role="reporting",
    package="pysiogame",
    image_root="usr/share/games/pysiogame/res/images/art4apps",
    subdirs=(
        "actions",
        "animals",  # not "body": one boy's face and body with an arrow at a different part
        "clothes_n_accessories",
        "construction",
        "food",
        "fruit_n_veg",
        "jobs",
        "nature",
        "people",
        "sport",
        "transport",
    ),
    default_limit=300,
    excluded=frozenset({
        "people/wife.jpg",  # actions/kiss.jpg with an arrow added
        "people/husband.jpg",  # the same, the arrow elsewhere
        "actions/croak.jpg",  # animals/toad.jpg
        "people/mother.jpg",  # people/mom.jpg
        "actions/explore.jpg",  # sport/hike.jpg
        "jobs/fisherman.jpg",  # actions/catch.jpg mirrored and recoloured
    }),
)
SOURCES = {s.name: s for s in (NEVERBALL, PYSIOGAME)}


@dataclass(frozen=True)
class FetchedSource:
    name: str
    root: Path
    manifest: Path
    count: int
    version: str
    reused: bool


def source_root(settings: Settings, name: str) -> Path:
    return settings.home / "sources" / name


def fetch(
    settings: Settings, name: str, limit: int | None = None, run: Runner = subprocess.run
) -> FetchedSource:
    """Fetch source ``name`` into the cache unless a complete copy is there; returns it.

    ``limit`` caps the originals (default: the source's own); ``run`` executes the apt and dpkg
    commands, so tests can pass a fake and need no network.
    """
    try:
        spec = SOURCES[name]
    except KeyError:
        raise DatasetError(f"unknown stress source {name!r}; known: {sorted(SOURCES)}") from None
    cap = spec.default_limit if limit is None else limit
    if cap <= 0:
        raise DatasetError(f"{name}: --limit must be positive, got {cap}")
    root = source_root(settings, name)
    done = _complete(root)
    if done is not None and _marker_limit(root) == cap:
        return FetchedSource(done.name, root, done.manifest, done.count, done.version, True)
    if root.exists():
        shutil.rmtree(root)
    unpacked = unpack_deb(spec.package, spec.image_root, root, run)
    version = unpacked.version
    count = index_pictures(
        spec, unpacked.tree, root, f"deb:{spec.package}={version}:/{spec.image_root}", cap
    )
    remove_unpacked(root)
    if count == 0:
        raise DatasetError(f"{spec.package} {version}: no usable picture under {spec.image_root}")
    _write_marker(root, {"name": name, "package": spec.package, "version": version,
                         "count": count, "role": spec.role, "limit": cap})
    return FetchedSource(name, root, root / MANIFEST_NAME, count, version, reused=False)


def _marker_limit(root: Path) -> int | None:
    """The ``limit`` a complete copy was fetched with (a copy fetched with another is redone)."""
    try:
        value = json.loads((root / MARKER_NAME).read_text()).get("limit")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash of a BGR picture: survives resizing and re-encoding."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (DHASH_SIDE + 1, DHASH_SIDE), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def usable(img: np.ndarray | None) -> bool:
    """Big enough and not flat: see :data:`MIN_SHORT_SIDE` and :data:`MIN_GREY_STD`."""
    if img is None or min(img.shape[:2]) < MIN_SHORT_SIDE:
        return False
    return float(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).std()) >= MIN_GREY_STD


def index_pictures(spec: StressSource, tree: Path, root: Path, source_prefix: str,
                   limit: int) -> int:
    """Copy up to ``limit`` distinct usable pictures of ``tree`` into ``root/images`` and write
    ``root/manifest.csv``; returns the row count.

    Files are taken in the order of their SHA-256 (a spread over the sub-folders that is the same
    on every machine), skipping near-copies of a kept picture (:data:`NEAR_COPY_BITS`).
    """
    candidates: list[tuple[str, Path, str]] = []
    for sub in spec.subdirs:
        for path in sorted((tree / sub).rglob("*")):
            inner = path.relative_to(tree).as_posix()
            if (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
                    and inner not in spec.excluded):
                candidates.append((hashlib.sha256(path.read_bytes()).hexdigest(), path, sub))
    candidates.sort()
    images = root / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    kept: list[int] = []
    rows: list[tuple[str, str, str, str, str]] = []
    seen_sha: set[str] = set()
    for sha, path, sub in candidates:
        if len(rows) >= limit:
            break
        if sha in seen_sha:
            continue
        seen_sha.add(sha)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or not usable(img):
            continue
        h = dhash(img)
        if any(bin(h ^ k).count("1") <= NEAR_COPY_BITS for k in kept):
            continue
        kept.append(h)
        dest = images / f"{sha[:SHA_PREFIX]}{path.suffix.lower()}"
        shutil.copyfile(path, dest)
        inner = path.relative_to(tree).as_posix()
        group = f"{spec.name[:2].upper()}{len(rows) + 1:05d}"
        rows.append((f"{IMAGES_DIR}/{dest.name}", group, "original",
                     f"none;family={spec.name}_{sub}", f"{source_prefix}/{inner}"))
    tmp = root / (MANIFEST_NAME + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows(rows)
    os.replace(tmp, root / MANIFEST_NAME)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.stress_sources",
                                description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["fetch"])
    p.add_argument("name", choices=sorted(SOURCES))
    p.add_argument("--limit", type=int, default=None, help="most originals to keep")
    args = p.parse_args(argv)
    try:
        got = fetch(Settings.from_env(), args.name, args.limit)
    except DatasetError as exc:
        print(f"stress_sources: {exc}", file=sys.stderr)
        return 1
    state = "reused" if got.reused else "fetched"
    print(f"{got.name} ({SOURCES[got.name].role}): {got.count} originals "
          f"({state}, version {got.version})")
    print(f"manifest: {got.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
