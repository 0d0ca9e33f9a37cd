"""Feature stores: a record per entry, written once, read back whole; RocksDB's RAM bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_processors.engine.feature_store import (
    ROCKS_BLOCK_CACHE_BYTES,
    FeatureRecordMissing,
    MappingFeatureStore,
    RocksFeatureStore,
)


def test_a_mapping_store_writes_a_record_once() -> None:
    """A restore re-applies every entry: a second put must not write (a Faust table would send
    the record to its changelog again)."""

    class CountingDict(dict[str, bytes]):
        writes = 0

        def __setitem__(self, key: str, value: bytes) -> None:
            CountingDict.writes += 1
            super().__setitem__(key, value)

    table = CountingDict()
    store = MappingFeatureStore(table)
    store.put("a", b"first")
    store.put("a", b"first")
    assert CountingDict.writes == 1 and store.get("a") == b"first"
    store.delete("a")
    store.delete("a")
    with pytest.raises(FeatureRecordMissing, match="entry a"):
        store.get("a")


def test_a_rocks_store_keeps_records_on_disk_with_bounded_ram(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = {f"s{i}": rng.bytes(20_000) for i in range(3_000)}  # 60 MB, 4x the block cache
    store = RocksFeatureStore(tmp_path / "store")
    store.bulk_put(list(records.items())[:2_000])
    for key, record in list(records.items())[2_000:]:
        store.put(key, record)
    store.settle()
    for key in rng.choice(list(records), 500).tolist():
        assert store.get(key) == records[key]
    assert store.memory_bytes() <= 2 * ROCKS_BLOCK_CACHE_BYTES
    assert store.disk_bytes() >= sum(len(r) for r in records.values())
    store.delete("s1")
    with pytest.raises(FeatureRecordMissing):
        store.get("s1")
    store.close()
    reopened = RocksFeatureStore(tmp_path / "store")
    assert reopened.get("s2999") == records["s2999"]
    reopened.destroy()
    assert not (tmp_path / "store").exists()
