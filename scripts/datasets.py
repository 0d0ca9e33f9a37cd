"""`picnix dataset fetch openclipart`: a real crawl to replay, fetched once into the cache.

The openclipart crawl is Debian's ``openclipart-png`` package (8,121 public-domain PNG clip-art
images, ~130 MB): it comes through the machine's own package mirror with ``apt-get download``, so
no other download site or credential is needed, and ``dpkg-deb -x`` unpacks it without
installing anything. It is unlabelled (no group ids): use it for throughput and memory, never to
calibrate thresholds.

The dataset lives in ``settings.home / "datasets" / NAME`` as ``images/`` (the package's PNG tree)
and a ``manifest.csv`` that ``picnix replay`` takes like any other (``path`` relative to the
manifest, plus ``author``, ``title``, ``category`` and ``source``). A marker written last makes
the fetch idempotent: a complete dataset is reused as is; anything short of it (an interrupted
download, a half-unpacked tree, a missing manifest) is wiped and fetched again.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("path", "author", "title", "category", "source")
MARKER_NAME = ".complete.json"
IMAGES_DIR = "images"
DOWNLOAD_DIR = ".download"
UNPACK_DIR = ".unpack"
DEFAULT_AUTHOR = "openclipart"
APT_TIMEOUT_SECONDS = 900.0
UNPACK_TIMEOUT_SECONDS = 600.0

# openclipart 0.18 names a file ``<title>_<author>_NN.png``, title and author together cut to a
# fixed length (so "acquila_architetto_franc_01"): an author is a run of trailing words that ends
# several files of different titles. Two words at least, so a common last word ("icon", "red")
# is not taken for a person.
AUTHOR_MIN_WORDS = 2
AUTHOR_MAX_WORDS = 4
AUTHOR_MIN_FILES = 3
_SEQUENCE_SUFFIX = re.compile(r"_+\d*$")

Runner = Callable[..., subprocess.CompletedProcess[str]]


class DatasetError(RuntimeError):
    """A dataset could not be fetched, unpacked or indexed; the message says which step and why."""


@dataclass(frozen=True)
class DebianDataset:
    """A dataset shipped as a Debian package: where its images sit inside the package."""

    name: str
    package: str
    image_root: str  # inside the package's file tree
    suffixes: frozenset[str]


OPENCLIPART = DebianDataset(
    name="openclipart",
    package="openclipart-png",
    image_root="usr/share/openclipart/png",
    suffixes=frozenset({".png"}),
)
DATASETS = {OPENCLIPART.name: OPENCLIPART}


@dataclass(frozen=True)
class FetchedDataset:
    name: str
    root: Path
    manifest: Path
    count: int
    version: str
    reused: bool


@dataclass(frozen=True)
class ManifestRow:
    path: str
    author: str
    title: str
    category: str
    source: str


def dataset_root(settings: Settings, name: str) -> Path:
    return settings.home / "datasets" / name


def fetch(settings: Settings, name: str, run: Runner = subprocess.run) -> FetchedDataset:
    """Fetch dataset ``name`` into the cache unless a complete copy is there; returns it.

    ``run`` executes the apt and dpkg commands (``subprocess.run``'s signature); tests pass a
    fake so no network is needed.
    """
    try:
        spec = DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    root = dataset_root(settings, name)
    reused = _complete(root)
    if reused is not None:
        return reused
    if root.exists():
        log.info("%s: incomplete copy at %s, fetching again", name, root)
        shutil.rmtree(root)
    unpacked = unpack_deb(spec.package, spec.image_root, root, run)
    version = unpacked.version
    unpacked.tree.rename(root / IMAGES_DIR)
    remove_unpacked(root)
    source_prefix = f"deb:{spec.package}={version}:/{spec.image_root}"
    count = write_manifest(root, root / IMAGES_DIR, source_prefix, spec.suffixes)
    if count == 0:
        raise DatasetError(f"{spec.package} {version}: no images under {spec.image_root}")
    _write_marker(root, {"name": name, "package": spec.package, "version": version,
                         "count": count})
    log.info("%s: %d images from %s %s in %s", name, count, spec.package, version, root)
    return FetchedDataset(name, root, root / MANIFEST_NAME, count, version, reused=False)


@dataclass(frozen=True)
class UnpackedDeb:
    """A Debian package downloaded and unpacked under a cache root: its version and the
    directory of the pictures wanted from it."""

    version: str
    tree: Path


def unpack_deb(package: str, image_root: str, root: Path, run: Runner) -> UnpackedDeb:
    """``apt-get download`` the package into ``root`` and unpack it there (no install, no root
    needed for dpkg-deb); the caller takes what it needs from ``tree``, then calls
    ``remove_unpacked``."""
    version = _candidate_version(package, run)
    download = root / DOWNLOAD_DIR
    download.mkdir(parents=True)
    _run(["apt-get", "download", package], run, f"apt-get download {package}",
         cwd=download, timeout=APT_TIMEOUT_SECONDS)
    debs = sorted(download.glob("*.deb"))
    if len(debs) != 1:
        raise DatasetError(
            f"apt-get download {package} left {len(debs)} .deb files in {download}, wanted 1"
        )
    unpack = root / UNPACK_DIR
    _run(["dpkg-deb", "-x", str(debs[0]), str(unpack)], run, f"dpkg-deb -x {debs[0].name}",
         timeout=UNPACK_TIMEOUT_SECONDS)
    tree = unpack / image_root
    if not tree.is_dir():
        raise DatasetError(f"{debs[0].name} has no {image_root}/ (unpacked in {unpack})")
    return UnpackedDeb(version, tree)


def remove_unpacked(root: Path) -> None:
    """Drop what ``unpack_deb`` left under ``root`` once the pictures are taken."""
    shutil.rmtree(root / UNPACK_DIR)
    shutil.rmtree(root / DOWNLOAD_DIR)


def _complete(root: Path) -> FetchedDataset | None:
    """The dataset if its marker (written last) and its manifest are both there."""
    marker = root / MARKER_NAME
    manifest = root / MANIFEST_NAME
    if not (marker.is_file() and manifest.is_file()):
        return None
    try:
        info = json.loads(marker.read_text())
        return FetchedDataset(
            str(info["name"]), root, manifest, int(info["count"]), str(info["version"]),
            reused=True,
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable marker (%s), fetching again", marker, exc)
        return None


def _write_marker(root: Path, info: dict[str, object]) -> None:
    tmp = root / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, root / MARKER_NAME)


def _run(
    argv: Sequence[str], run: Runner, what: str, *, cwd: Path | None = None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    try:
        result = run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise DatasetError(f"{what}: {argv[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise DatasetError(f"{what}: no result after {timeout:.0f} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").splitlines()[-10:])
        raise DatasetError(f"{what}: exit code {result.returncode}\n{tail}")
    return result


def _candidate_version(package: str, run: Runner) -> str:
    """The version apt would download; runs ``apt-get update`` once when apt knows none."""
    version = _policy_candidate(package, run)
    if version is None:
        log.info("apt knows no candidate for %s: running apt-get update", package)
        _run(["apt-get", "update"], run, "apt-get update", timeout=APT_TIMEOUT_SECONDS)
        version = _policy_candidate(package, run)
    if version is None:
        raise DatasetError(
            f"apt has no candidate for {package} even after apt-get update: is Debian main "
            "among the sources (/etc/apt/sources.list*)?"
        )
    return version


def _policy_candidate(package: str, run: Runner) -> str | None:
    out = _run(["apt-cache", "policy", package], run, f"apt-cache policy {package}",
               timeout=APT_TIMEOUT_SECONDS).stdout
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return None if value in ("", "(none)") else value
    return None


def write_manifest(
    root: Path, images: Path, source_prefix: str, suffixes: Iterable[str] = (".png",)
) -> int:
    """Index every image under ``images`` into ``root/manifest.csv``; returns the row count.

    Rows are sorted by path (so the manifest, and the upload ids replay derives from it, are the
    same on every machine); author and title come from the file names (see
    :func:`derive_authors`), the category from the sub-folder.
    """
    wanted = {s.lower() for s in suffixes}
    files = sorted(p for p in images.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    stems = [_name_words(p) for p in files]
    authors = derive_authors(stems)
    rows = []
    for path, words in zip(files, stems, strict=True):
        inner = path.relative_to(images).as_posix()
        author_words = authors.get(tuple(words), ())
        title_words = words[: len(words) - len(author_words)] if author_words else words
        rows.append(ManifestRow(
            path=path.relative_to(root).as_posix(),
            author="_".join(author_words) or DEFAULT_AUTHOR,
            title=" ".join(title_words) or path.stem,
            category=Path(inner).parent.as_posix() if "/" in inner else "",
            source=f"{source_prefix}/{inner}",
        ))
    tmp = root / (MANIFEST_NAME + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows((r.path, r.author, r.title, r.category, r.source) for r in rows)
    os.replace(tmp, root / MANIFEST_NAME)
    return len(rows)


def _name_words(path: Path) -> list[str]:
    """``acquila_architetto_franc_01.png`` -> ``['acquila', 'architetto', 'franc']``."""
    stem = _SEQUENCE_SUFFIX.sub("", path.stem)
    return [w for w in stem.split("_") if w]


def derive_authors(names: Sequence[Sequence[str]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """For each file name (as words), the trailing words that name its author, if any.

    The package cuts ``<title>_<author>`` to a fixed length, so one author ends names as
    ``architetto_franc``, ``architetto_fra``, ``architetto_f``: trailing runs that agree on every
    word but the last, and whose last words share a first letter, are one author, named by its
    longest spelling. A run counts as an author when it ends at least :data:`AUTHOR_MIN_FILES`
    names with different leading (title) words; a name takes the longest such run that leaves a
    title of at least one word. Names without one get none (the caller falls back to
    :data:`DEFAULT_AUTHOR`): a heuristic, since the package carries no per-image metadata.
    """
    heads: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    spellings: dict[tuple[str, ...], str] = {}
    for words in names:
        for k in range(AUTHOR_MIN_WORDS, min(AUTHOR_MAX_WORDS, len(words) - 1) + 1):
            group = _author_group(words[-k:])
            heads.setdefault(group, set()).add(tuple(words[:-k]))
            if len(words[-1]) > len(spellings.get(group, "")):
                spellings[group] = words[-1]
    out: dict[tuple[str, ...], tuple[str, ...]] = {}
    for words in names:
        for k in range(min(AUTHOR_MAX_WORDS, len(words) - 1), AUTHOR_MIN_WORDS - 1, -1):
            group = _author_group(words[-k:])
            if len(heads[group]) >= AUTHOR_MIN_FILES:
                out[tuple(words)] = (*words[-k:-1], spellings[group])
                break
    return out


def _author_group(tail: Sequence[str]) -> tuple[str, ...]:
    """Every word but the last, and the last one's first letter: what its truncations keep."""
    return (*tail[:-1], tail[-1][:1])
