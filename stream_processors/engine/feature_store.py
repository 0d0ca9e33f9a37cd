"""Where stored images' local-feature records live, keyed by the upload id of their index entry.

Why a store of its own: a record (keypoints and a thumbnail, ``local_features``) is ~25 KiB and
a decision reads only its few candidates' records, so records live on disk and RAM holds only
the indexes (~1 KiB an image). The worker's store is a changelog-backed Faust table on RocksDB
(``MappingFeatureStore`` over it), so another worker recovers it from Kafka; the benchmark's is
a ``RocksFeatureStore`` of the same engine, so candidate reads are timed as in production.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Protocol

import rocksdict

# RocksDB's RAM, bounded so that no process grows with the images it has seen: the block cache
# holds recently read records (a decision's candidates are mostly cold; the cache spares the
# few hot originals a burst of re-uploads reads), the memtables the writes not yet flushed.
ROCKS_BLOCK_CACHE_BYTES = 8 * 1024 * 1024
ROCKS_WRITE_BUFFER_BYTES = 2 * 1024 * 1024
ROCKS_MAX_WRITE_BUFFERS = 2
# Bloom filters spare a disk read for an absent key (put's existence check during a restore).
ROCKS_BLOOM_BITS_PER_KEY = 10
SETTLE_TIMEOUT_S = 600.0
SETTLE_POLL_S = 0.5


class FeatureStore(Protocol):
    """A record per index entry (stored image or alias), written once, read for candidates."""

    def put(self, entry_id: str, record: bytes) -> None: ...
    def get(self, entry_id: str) -> bytes: ...
    def delete(self, entry_id: str) -> None: ...


class FeatureRecordMissing(LookupError):
    """The index holds an entry whose record is not in the store: state and store diverged."""


class MappingFeatureStore:
    """A FeatureStore over any mapping: a dict (evaluation, tests) or a Faust table (worker).

    A record never changes for its entry id, so ``put`` of a present id writes nothing: a
    restored worker re-applies every entry, and a second write would only add changelog traffic.
    """

    def __init__(self, mapping: MutableMapping[str, bytes] | None = None) -> None:
        self._data: MutableMapping[str, bytes] = {} if mapping is None else mapping

    def put(self, entry_id: str, record: bytes) -> None:
        if entry_id not in self._data:
            self._data[entry_id] = record

    def get(self, entry_id: str) -> bytes:
        record = self._data.get(entry_id)
        if record is None:
            raise FeatureRecordMissing(f"no local-features record for entry {entry_id}")
        return record

    def delete(self, entry_id: str) -> None:
        self._data.pop(entry_id, None)


def _rocks_options(cache_bytes: int) -> rocksdict.Options:
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(ROCKS_WRITE_BUFFER_BYTES)
    opts.set_max_write_buffer_number(ROCKS_MAX_WRITE_BUFFERS)
    # descriptors are random bits and thumbnails already JPEG: compression would cost CPU only
    opts.set_compression_type(rocksdict.DBCompressionType.none())
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(rocksdict.Cache(cache_bytes))
    table.set_bloom_filter(ROCKS_BLOOM_BITS_PER_KEY, False)
    # index and filter blocks count against the cache instead of growing beside it
    table.set_cache_index_and_filter_blocks(True)
    opts.set_block_based_table_factory(table)
    return opts


class RocksFeatureStore:
    """A FeatureStore in a RocksDB directory of its own, with bounded RAM (see the constants)."""

    def __init__(self, path: Path, cache_bytes: int = ROCKS_BLOCK_CACHE_BYTES) -> None:
        self._path = path
        self._ingest_dir = path / "ingest"  # table files of bulk_put, until RocksDB moves them
        self._ingest_dir.mkdir(parents=True, exist_ok=True)
        self._db = rocksdict.Rdict(str(path / "db"), options=_rocks_options(cache_bytes))
        self._ingested = 0

    def put(self, entry_id: str, record: bytes) -> None:
        key = entry_id.encode()
        if not self._db.key_may_exist(key) or self._db.get(key) is None:
            self._db.put(key, record)

    def bulk_put(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Add many new records at once (a snapshot load, a benchmark fill): written as one
        sorted table file and ingested, so they are not rewritten by compaction."""
        rows = sorted((entry_id.encode(), record) for entry_id, record in items)
        if not rows:
            return
        self._ingested += 1
        sst = self._ingest_dir / f"bulk-{self._ingested:06d}.sst"
        writer = rocksdict.SstFileWriter(options=rocksdict.Options(raw_mode=True))
        writer.open(str(sst))
        for key, record in rows:
            writer[key] = record
        writer.finish()
        opts = rocksdict.IngestExternalFileOptions()
        opts.set_move_files(True)
        self._db.ingest_external_file([str(sst)], opts)

    def settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Flush the memtables and wait until no compaction is pending or running, so that
        what a benchmark times next is reads, not background work."""
        self._db.flush()
        deadline = time.monotonic() + timeout_s
        busy = ("rocksdb.compaction-pending", "rocksdb.num-running-compactions")
        while any(int(self._db.property_int_value(p) or 0) for p in busy):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._path}: compactions still running after {timeout_s} s")
            time.sleep(SETTLE_POLL_S)

    def get(self, entry_id: str) -> bytes:
        record = self._db.get(entry_id.encode())
        if record is None:
            raise FeatureRecordMissing(f"no local-features record for entry {entry_id}")
        return bytes(record)

    def delete(self, entry_id: str) -> None:
        self._db.delete(entry_id.encode())

    def memory_bytes(self) -> int:
        """RAM RocksDB holds for this store: block cache (records, index and filter blocks),
        memtables and table readers."""
        props = (
            "rocksdb.block-cache-usage",
            "rocksdb.cur-size-all-mem-tables",
            "rocksdb.estimate-table-readers-mem",
        )
        return sum(int(self._db.property_int_value(p) or 0) for p in props)

    def disk_bytes(self) -> int:
        self._db.flush()
        return sum(f.stat().st_size for f in self._path.rglob("*") if f.is_file())

    def close(self) -> None:
        self._db.close()

    def destroy(self) -> None:
        """Close the store and delete its directory."""
        self._db.close()
        shutil.rmtree(self._path, ignore_errors=True)
