"""The in-memory engine saved to disk and loaded back, so a restarted worker need not re-apply
every stored record.

Why: a restarted worker rebuilt its ``DefaultMethod`` (three Hamming indexes, the visual-word
index, the clusters and the id maps) by re-applying each stored record, ~0.5-1 ms a record:
100 s at 100k stored images. The local features live in a FeatureStore that survives the
restart on its own, so only the index arrays need saving, and loading them is a file read. The
caller saves now and then with the log position the state reflects, and on a restart loads the
snapshot and re-applies only what the log holds after that position.

A snapshot is a directory of one ``.npy`` file per array of ``DefaultMethod.to_arrays`` (no
pickle: ``allow_pickle=False`` both ways) and a JSON header: format and version, the position,
counts, the 0-d arrays (scalars) and each array file's size and SHA-256; the header carries the
SHA-256 of its own body. Layout of the snapshot directory given to both functions:

    snapshot-<generation>/             complete snapshots (normally one)
    .tmp-snapshot-<generation>-<pid>/  a snapshot being written, or one a crash left behind

``save_snapshot`` writes the temporary directory, syncs every file and the directory, renames
it to the next generation (atomic within one file system) and syncs the parent; only then are
the older generations and left-over temporaries removed. A crash or an error at any point leaves
the previous snapshot as it was, so at most the work since the previous snapshot is lost.
One process writes a directory at a time.

``load_snapshot`` reads the highest generation and checks everything before building the
engine: the header's checksum, format and version, every array file's size and checksum, the
arrays against the classes (array_state) and the counts against the header. A snapshot that
fails any check raises SnapshotRefused naming the file; nothing falls back silently to an older
generation or a partial engine, the caller rebuilds from its log instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_processors.engine.array_state import StateMismatch, check_name
from stream_processors.engine.default_method import DefaultMethod
from stream_processors.engine.feature_store import FeatureStore

FORMAT_NAME = "picnix-engine-snapshot"
FORMAT_VERSION = 1
HEADER_FILE = "header.json"
ARRAY_SUFFIX = ".npy"
SNAPSHOT_PREFIX = "snapshot-"
TEMP_PREFIX = ".tmp-snapshot-"
_SNAPSHOT_NAME = re.compile(rf"^{re.escape(SNAPSHOT_PREFIX)}(\d+)$")
# 0-d arrays of these dtype kinds (bool, signed, unsigned, float) go in the header as scalars
_HEADER_SCALAR_KINDS = "biuf"
# the magic, version and header of a .npy file: np.save pads the header to 64 bytes, and the
# header of an array of plain dtype is well under 1 KiB (version 1.0 allows up to 64 KiB)
_NPY_HEADER_MAX = 12 + 65536


class SnapshotRefused(ValueError):
    """A snapshot that must not be loaded (torn, corrupt, or written by another version of the
    engine): the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class LoadedSnapshot:
    """An engine loaded from a snapshot: ``position`` is the log position its state reflects
    (as given to ``save_snapshot``), ``path`` the snapshot directory it was read from."""

    method: DefaultMethod
    position: int
    path: Path


class _HashingWriter:
    """A binary file that hashes and counts what is written to it (np.save writes to it)."""

    def __init__(self, file: io.BufferedWriter) -> None:
        self._file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._file.write(data)


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_array(path: Path, array: np.ndarray) -> dict[str, Any]:
    with path.open("wb") as f:
        writer = _HashingWriter(f)
        np.save(writer, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"file": path.name, "bytes": writer.size, "sha256": writer.sha256.hexdigest()}


def _generations(directory: Path) -> list[tuple[int, Path]]:
    """The complete snapshots in ``directory``, oldest first."""
    found = []
    for entry in directory.iterdir():
        match = _SNAPSHOT_NAME.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def save_snapshot(method: DefaultMethod, position: int, directory: Path) -> Path:
    """Save ``method``'s whole in-memory state, taken at log position ``position``, as the new
    snapshot in ``directory`` (created if needed); returns the snapshot's path. The previous
    snapshot is removed only once this one is complete (module docstring).

    Raises array_state.UnsavableAttribute, before writing anything, if the engine holds state
    the snapshot has no form for; any error while writing leaves the previous snapshot."""
    if type(position) is not int:
        raise TypeError(f"snapshot position must be an int, got {position!r}")
    state = method.to_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    existing = _generations(directory)
    generation = existing[-1][0] + 1 if existing else 1
    final = directory / f"{SNAPSHOT_PREFIX}{generation:08d}"
    temp = directory / f"{TEMP_PREFIX}{generation:08d}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        arrays: dict[str, Any] = {}
        scalars: dict[str, Any] = {}
        for name, array in sorted(state.items()):
            check_name(name)
            if array.ndim == 0 and array.dtype.kind in _HEADER_SCALAR_KINDS:
                scalars[name] = {"dtype": array.dtype.str, "value": array.item()}
            else:
                arrays[name] = _write_array(temp / f"{name}{ARRAY_SUFFIX}", array)
        body = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "method": method.name,
            "position": position,
            "created_unix_s": round(time.time(), 3),
            "counts": {"images": len(method), "clusters": method.cluster_count()},
            "scalars": scalars,
            "arrays": arrays,
        }
        header = {"body": body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}
        with (temp / HEADER_FILE).open("w") as f:
            json.dump(header, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(temp)
        temp.rename(final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    # best effort: a snapshot left behind is never loaded, the newest generation is
    for _, older in _generations(directory):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    for entry in directory.iterdir():
        if entry.name.startswith(TEMP_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
    return final


def _field(body: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    value = body.get(key)
    if type(value) is not kind:
        raise SnapshotRefused(f"{where}: header field {key!r} is {value!r}, not a {kind.__name__}")
    return value


def _read_header(path: Path) -> dict[str, Any]:
    """The header's body, checked: its checksum, format and version."""
    try:
        header = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SnapshotRefused(f"{path}: the snapshot has no header") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotRefused(f"{path}: the header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("body"), dict):
        raise SnapshotRefused(f"{path}: the header has no body")
    body: dict[str, Any] = header["body"]
    if hashlib.sha256(_canonical(body)).hexdigest() != header.get("sha256"):
        raise SnapshotRefused(f"{path}: the header does not match its checksum (corrupt)")
    if body.get("format") != FORMAT_NAME or body.get("version") != FORMAT_VERSION:
        raise SnapshotRefused(
            f"{path}: format {body.get('format')!r} version {body.get('version')!r}, this "
            f"engine reads {FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    return body


def _read_array(path: Path, meta: Any) -> np.ndarray:
    """One array file, its size and checksum checked before it is parsed; the array is a view
    of the file's bytes as read (writable, no second copy)."""
    if not isinstance(meta, dict):
        raise SnapshotRefused(f"{path}: the header's entry for this file is {meta!r}")
    size = _field(meta, "bytes", int, path)
    try:
        if path.stat().st_size != size:
            raise SnapshotRefused(
                f"{path}: {path.stat().st_size} bytes, the header says {size} (torn or corrupt)"
            )
        buf = bytearray(size)
        view = memoryview(buf)
        with path.open("rb", buffering=0) as f:
            done = 0
            while done < size:
                n = f.readinto(view[done:])
                if not n:
                    raise SnapshotRefused(f"{path}: ended after {done} of {size} bytes")
                done += n
    except FileNotFoundError:
        raise SnapshotRefused(f"{path}: missing from the snapshot") from None
    if hashlib.sha256(buf).hexdigest() != meta.get("sha256"):
        raise SnapshotRefused(f"{path}: the file does not match its checksum (corrupt)")
    try:
        stream = io.BytesIO(view[:_NPY_HEADER_MAX])  # BytesIO copies: the header's bytes only
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f".npy format version {version}")
    except ValueError as exc:
        raise SnapshotRefused(f"{path}: not a .npy file this engine writes ({exc})") from exc
    if fortran or dtype.hasobject:
        raise SnapshotRefused(f"{path}: a Fortran-ordered or object array ({dtype})")
    offset = stream.tell()
    count = int(np.prod(shape, dtype=np.int64))
    if offset + count * dtype.itemsize != size:
        raise SnapshotRefused(f"{path}: {size} bytes do not hold a {dtype} array of {shape}")
    return np.frombuffer(buf, dtype, count, offset).reshape(shape)


def load_snapshot(directory: Path, store: FeatureStore) -> LoadedSnapshot | None:
    """The newest snapshot in ``directory`` as an engine over ``store`` (the FeatureStore that
    holds the records of the entries it indexes), or None when there is none. Raises
    SnapshotRefused, naming the file, when that snapshot fails a check (module docstring)."""
    if not directory.is_dir():
        return None
    found = _generations(directory)
    if not found:
        return None
    path = found[-1][1]
    header_path = path / HEADER_FILE
    body = _read_header(header_path)
    position = _field(body, "position", int, header_path)
    if body.get("method") != DefaultMethod.name:
        raise SnapshotRefused(f"{header_path}: a snapshot of method {body.get('method')!r}")
    state: dict[str, np.ndarray] = {}
    for name, meta in _field(body, "arrays", dict, header_path).items():
        file = _field(meta, "file", str, header_path) if isinstance(meta, dict) else None
        if file != f"{name}{ARRAY_SUFFIX}":
            raise SnapshotRefused(f"{header_path}: array {name!r} names file {file!r}")
        state[name] = _read_array(path / file, meta)
    for name, meta in _field(body, "scalars", dict, header_path).items():
        try:
            state[name] = np.array(meta["value"], np.dtype(meta["dtype"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotRefused(f"{header_path}: scalar {name!r} is {meta!r}") from exc
    try:
        method = DefaultMethod.from_arrays(state, store)
    except StateMismatch as exc:
        raise SnapshotRefused(f"{path}: {exc}") from exc
    counts = {"images": len(method), "clusters": method.cluster_count()}
    if counts != body.get("counts"):
        raise SnapshotRefused(f"{header_path}: counts {body.get('counts')}, loaded {counts}")
    return LoadedSnapshot(method, position, path)
