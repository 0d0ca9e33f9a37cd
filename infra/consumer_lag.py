"""Consumer lag of PicNix's Kafka consumer groups, from committed offsets and high watermarks.

Lag is what an operator looks at first when decisions are late: records in the log that a
group has not yet committed as processed. It is read from the broker (the group's committed
offsets and each partition's log start and end), not from the consumers themselves, so a
stuck or dead consumer shows a growing lag instead of no number at all.

The groups watched are the Faust workers' (``settings.worker_group_id``, on the uploads topic
for extract and the features topic for decide) and the blob sink's (``settings.blob_sink_group``
on the decisions topic). The Postgres sink has no group offsets to read: it keeps its position
in Postgres (``sink_offsets``), in the transaction of its rows, so its lag is the
``picnix_sink_lag_records{sink="postgres"}`` gauge it reports itself.

Offsets count records here: every PicNix producer is idempotent but not transactional, so no
transaction markers occupy offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.settings import Settings

log = logging.getLogger(__name__)

# A few seconds: Prometheus scrapes every 2 s, and each poll is a handful of small requests
# (one metadata, one offset fetch per group, one list-offsets pair) whatever the log holds.
POLL_SECONDS = 5.0
KAFKA_TIMEOUT_MS = 10_000
NO_COMMITTED_OFFSET = -1  # what the broker answers for a partition the group never committed


@dataclass(frozen=True)
class WatchedGroup:
    """A consumer group and the topics it is meant to consume."""

    group: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class TopicLag:
    """Records of ``topic`` that ``group`` has not committed, summed over partitions."""

    group: str
    topic: str
    records: int


def watched_groups(settings: Settings) -> tuple[WatchedGroup, ...]:
    """Every PicNix consumer group that keeps its position in Kafka (not the Postgres sink)."""
    return (
        WatchedGroup(settings.worker_group_id, (settings.topic_uploads, settings.topic_features)),
        WatchedGroup(settings.blob_sink_group, (settings.topic_decisions,)),
    )


def partition_lag(committed: int | None, log_start: int, log_end: int) -> int:
    """Records from a group's position to the log end of one partition.

    A partition the group never committed counts from its log start, where these groups begin
    (``auto_offset_reset=earliest``); a committed offset below the log start (records deleted
    by retention before they were read) counts from the log start too, since the deleted
    records can no longer be consumed. Never negative.
    """
    position = log_start if committed is None else max(committed, log_start)
    return max(log_end - position, 0)


def lag_by_topic(
    committed: Mapping[TopicPartition, int],
    log_start: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
) -> dict[str, int]:
    """Per topic, the sum of :func:`partition_lag` over every partition with a known log end.

    ``committed`` holds only the partitions the group committed (a negative offset means none);
    a partition missing from ``log_start`` is taken to start at offset 0.
    """
    totals: dict[str, int] = {}
    for tp, end in log_end.items():
        offset = committed.get(tp)
        known = offset if offset is not None and offset >= 0 else None
        totals[tp.topic] = totals.get(tp.topic, 0) + partition_lag(
            known, log_start.get(tp, 0), end
        )
    return totals


async def _partitions(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, list[TopicPartition]]:
    """Each existing topic's partitions; a topic not (yet) created is left out.

    Asked as metadata of every topic, not of these by name: a request naming a topic that does
    not exist makes a broker with ``auto.create.topics.enable`` (ours: Faust needs it) create
    it with the default partition count, which would recreate a namespace's deleted topics.
    """
    wanted = set(topics)
    found: dict[str, list[TopicPartition]] = {}
    for described in await admin.describe_topics():
        if described["topic"] not in wanted:
            continue
        if described["error_code"] == 0 and described["partitions"]:
            found[described["topic"]] = sorted(
                TopicPartition(described["topic"], p["partition"])
                for p in described["partitions"]
            )
    return found


async def read_consumer_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, groups: Sequence[WatchedGroup]
) -> list[TopicLag]:
    """One reading of every watched group's lag on each of its topics that exists."""
    partitions = await _partitions(admin, sorted({t for g in groups for t in g.topics}))
    every = [tp for tps in partitions.values() for tp in tps]
    if not every:
        return []
    log_start = await consumer.beginning_offsets(every)
    log_end = await consumer.end_offsets(every)
    lags: list[TopicLag] = []
    for watched in groups:
        tps = [tp for topic in watched.topics for tp in partitions.get(topic, [])]
        if not tps:
            continue
        offsets = await admin.list_consumer_group_offsets(watched.group, partitions=tps)
        committed = {tp: meta.offset for tp, meta in offsets.items()}
        by_topic = lag_by_topic(committed, log_start, {tp: log_end[tp] for tp in tps})
        lags.extend(TopicLag(watched.group, topic, n) for topic, n in sorted(by_topic.items()))
    return lags


async def _read_with_own_consumer(
    settings: Settings, admin: AIOKafkaAdminClient, groups: Sequence[WatchedGroup]
) -> list[TopicLag]:
    """One reading through a consumer opened for it: a consumer that outlived the reading
    would go on naming these topics in its metadata refreshes, and a broker that auto-creates
    topics would re-create one of them deleted meanwhile (a namespace dropped after a test)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    await consumer.start()
    try:
        return await read_consumer_lag(admin, consumer, groups)
    finally:
        await consumer.stop()


Publish = Callable[[list[TopicLag], float], None]


async def poll_consumer_lag(
    settings: Settings, publish: Publish, interval: float = POLL_SECONDS
) -> None:
    """Read the lag every ``interval`` seconds and hand it to ``publish`` with the wall-clock
    time of the reading, until cancelled.

    A broker that is away (at start or later) is logged once per outage and retried: the
    process this runs in (``picnix serve``) must keep serving without Kafka, and the gauges'
    collection timestamp shows how old the last reading is.
    """
    groups = watched_groups(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS
    )
    admin_up = failing = False
    try:
        while True:
            try:
                if not admin_up:
                    await admin.start()
                    admin_up = True
                publish(await _read_with_own_consumer(settings, admin, groups), time.time())
                if failing:
                    log.info("consumer lag readable again from %s", settings.kafka_bootstrap)
                failing = False
            except (KafkaError, OSError) as exc:  # OSError includes TimeoutError
                if not failing:
                    log.warning(
                        "cannot read consumer lag from Kafka at %s (%s: %s); retrying every "
                        "%.0f s", settings.kafka_bootstrap, type(exc).__name__, exc, interval,
                    )
                failing = True
            await asyncio.sleep(interval)
    finally:
        if admin_up:
            await admin.close()
