"""Feeds a worker's replica from ``picnix.index``: the Kafka side of ``replica.IndexReplica``.

Every worker reads the whole index log (it is not shared out by a consumer group: each replica
needs every entry), from its start, and applies each record on the replica's own thread, where
matches are evaluated too, so a match never sees a record half applied. ``ready`` is set once
the replica has applied the log as far as it reached when the worker started: matching on a
replica far behind would make the commit evaluate every upload again.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from aiokafka import TopicPartition

from infra.kafka_clients import manual_consumer
from infra.settings import Settings
from stream_processors import metrics
from stream_processors.replica import IndexReplica

log = logging.getLogger(__name__)

INDEX_PARTITION = 0
FETCH_TIMEOUT_MS = 500
# records applied per hop to the replica's thread: few enough that a match waits little
APPLY_BATCH = 64


async def follow_index_log(
    settings: Settings, replica: IndexReplica, executor: Executor, ready: asyncio.Event
) -> None:
    """Apply the index log to ``replica`` for as long as the worker runs."""
    loop = asyncio.get_running_loop()
    consumer = manual_consumer(settings, group_id=None)
    tp = TopicPartition(settings.topic_index, INDEX_PARTITION)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            ready.set()
        while True:
            batches = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
            records = [r for batch in batches.values() for r in batch]
            for i in range(0, len(records), APPLY_BATCH):
                chunk = [r.value for r in records[i : i + APPLY_BATCH] if r.value is not None]
                applied = await loop.run_in_executor(executor, _apply_all, replica, chunk)
                metrics.REPLICA_RECORDS.inc(applied)
            if not ready.is_set() and await consumer.position(tp) >= end:
                log.info("replica caught up with the index log at position %d", replica.position)
                ready.set()
    finally:
        await consumer.stop()


def _apply_all(replica: IndexReplica, records: list[bytes]) -> int:
    """Only the commit writes this topic: a record the replica cannot read (SchemaError) is a
    bug, and stops the worker rather than leave its replica silently short of an entry."""
    return sum(replica.apply(record) for record in records)
