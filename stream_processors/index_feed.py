"""Feeds a worker's replica from ``picnix.index``: the Kafka side of ``replica.IndexReplica``.

Every worker reads the whole index log (it is not shared out by a consumer group: each replica
needs every entry) and applies each record on the replica's own thread, where matches are
evaluated too, so a match never sees a record half applied. ``ready`` is set once the replica
has applied the log as far as it reached when the worker started: matching on a replica far
behind would make the commit evaluate every upload again.

A restart need not read the log from its start: now and then (and once caught up) the replica's
in-memory index is saved as a snapshot (engine.snapshot) with the log offset it reflects, beside
its local features on disk; a worker that finds one loads it and reads only the records after.
The commit's engine starts from the same snapshot (``load_base``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from aiokafka import TopicPartition

from infra.kafka_clients import manual_consumer
from infra.settings import Settings
from stream_processors import metrics
from stream_processors.engine.default_method import DefaultMethod
from stream_processors.engine.feature_store import (
    FeatureStore,
    MappingFeatureStore,
    RocksFeatureStore,
)
from stream_processors.engine.method import DedupMethod, build_method
from stream_processors.engine.snapshot import SnapshotRefused, load_snapshot, save_snapshot
from stream_processors.replica import IndexReplica

log = logging.getLogger(__name__)

INDEX_PARTITION = 0
FETCH_TIMEOUT_MS = 500
# records applied per hop to the replica's thread: few enough that a match waits little
APPLY_BATCH = 64
# the replica's local features and its index snapshots, in the worker's datadir
REPLICA_STORE_DIR = "replica-features"
REPLICA_SNAPSHOT_DIR = "replica-snapshot"
# A snapshot after this many records applied, or this long after the last one when anything
# changed: a restart then reads at most ~20k records (~10 s) of the log again. Saving costs
# ~1 s at 100k stored, on the replica's thread (matches wait meanwhile).
SNAPSHOT_EVERY_RECORDS = 20_000
SNAPSHOT_EVERY_SECONDS = 300.0


@dataclass(frozen=True)
class ReplicaStart:
    """A worker's replica as it starts, and the index-log offset to read on from."""

    replica: IndexReplica
    log_offset: int


def _snapshot(directory: Path, store: FeatureStore) -> tuple[DefaultMethod, int] | None:
    """The newest snapshot over ``store``, or None (none, or one refused: then the caller
    rebuilds from the log, and the refusal is logged with the file it names)."""
    try:
        loaded = load_snapshot(directory, store)
    except (SnapshotRefused, OSError) as exc:
        log.warning("index snapshot in %s not used: %s", directory, exc)
        return None
    return None if loaded is None else (loaded.method, loaded.position)


def open_replica(settings: Settings, datadir: Path) -> ReplicaStart:
    """This worker's replica: from its latest snapshot when it has one (the default method's),
    else empty, to be built from the log's start."""
    store = RocksFeatureStore(datadir / REPLICA_STORE_DIR)
    if settings.engine_method == DefaultMethod.name:
        found = _snapshot(datadir / REPLICA_SNAPSHOT_DIR, store)
        if found is not None:
            method, offset = found
            log.info("replica from its snapshot: %d images, log offset %d", len(method), offset)
            return ReplicaStart(IndexReplica(method), offset)
    return ReplicaStart(IndexReplica(build_method(settings.engine_method, store)), 0)


def load_base(
    settings: Settings, datadir: Path, local: MutableMapping[str, bytes]
) -> DedupMethod | None:
    """The commit engine's starting point: this worker's latest replica snapshot over the
    commit's own local-features table (``Decider`` re-applies its tables' changes since)."""
    if settings.engine_method != DefaultMethod.name:
        return None
    found = _snapshot(datadir / REPLICA_SNAPSHOT_DIR, MappingFeatureStore(local))
    return None if found is None else found[0]


async def follow_index_log(
    settings: Settings, start: ReplicaStart, executor: Executor, ready: asyncio.Event,
    snapshot_dir: Path,
) -> None:
    """Apply the index log to the replica for as long as the worker runs, snapshotting it."""
    loop = asyncio.get_running_loop()
    replica = start.replica
    consumer = manual_consumer(settings, group_id=None)
    tp = TopicPartition(settings.topic_index, INDEX_PARTITION)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start.log_offset)
        end = (await consumer.end_offsets([tp]))[tp]
        if end <= start.log_offset:
            ready.set()
        unsaved, saved_at = 0, time.monotonic()
        while True:
            batches = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
            records = [r for batch in batches.values() for r in batch]
            for i in range(0, len(records), APPLY_BATCH):
                chunk = records[i : i + APPLY_BATCH]
                values = [r.value for r in chunk if r.value is not None]
                applied = await loop.run_in_executor(executor, _apply_all, replica, values)
                metrics.REPLICA_RECORDS.inc(applied)
                unsaved += applied
            # every record before the consumer's position has been returned, and applied
            next_offset = await consumer.position(tp)
            caught_up = not ready.is_set() and next_offset >= end
            due = unsaved >= SNAPSHOT_EVERY_RECORDS or (
                unsaved and time.monotonic() - saved_at >= SNAPSHOT_EVERY_SECONDS
            )
            if isinstance(replica.method, DefaultMethod) and unsaved and (caught_up or due):
                await loop.run_in_executor(
                    executor, save_snapshot, replica.method, next_offset, snapshot_dir
                )
                unsaved, saved_at = 0, time.monotonic()
            if caught_up:
                log.info("replica caught up with the index log at position %d", replica.position)
                ready.set()
    finally:
        await consumer.stop()


def _apply_all(replica: IndexReplica, records: list[bytes]) -> int:
    """Only the commit writes this topic: a record the replica cannot read (SchemaError) is a
    bug, and stops the worker rather than leave its replica silently short of an entry."""
    return sum(replica.apply(record) for record in records)
