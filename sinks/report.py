"""The dedup report, and waiting until the pipeline has handled everything published.

Waiting for the drain compares positions, never contents: each stage's committed offsets against
the end offsets of its input topic. Every poll costs the same few small requests whatever the
log holds, so a long replay's wait takes no CPU from the workers it waits for.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError

from infra.kafka_clients import topic_partitions
from infra.settings import Settings
from sinks.object_store import ObjectStore
from sinks.pg_sink import CONSUMER_NAME as PG_SINK_CONSUMER

log = logging.getLogger(__name__)

DRAIN_POLL_SECONDS = 1.0
KAFKA_TIMEOUT_MS = 15_000
COORDINATOR_ATTEMPTS = 5  # a broker creates __consumer_offsets on the first group lookup
COORDINATOR_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class DedupReport:
    posts: int
    images: int
    duplicate_references: int
    clusters: int
    alerts: int
    bytes_uploaded: int
    bytes_stored_db: int
    objects: int
    bytes_in_object_store: int

    @property
    def saving_percent(self) -> float:
        if not self.bytes_uploaded:
            return 0.0
        return 100.0 * (1 - self.bytes_stored_db / self.bytes_uploaded)

    def render(self, settings: Settings, uploads: int | None = None) -> str:
        rows = [
            ("uploads replayed", str(uploads) if uploads is not None else "-"),
            ("posts", str(self.posts)),
            ("distinct images stored", str(self.images)),
            ("duplicate references", str(self.duplicate_references)),
            ("clusters", str(self.clusters)),
            ("IP-theft alerts", str(self.alerts)),
            ("objects in bucket", str(self.objects)),
            ("bytes uploaded", f"{self.bytes_uploaded:,}"),
            ("bytes stored", f"{self.bytes_in_object_store:,}"),
            ("saving", f"{self.saving_percent:.1f} %"),
            ("Postgres", settings.pg_dsn),
            ("MinIO bucket", f"http://{settings.s3_endpoint}/{settings.s3_bucket}"),
            ("Prometheus", settings.prometheus_url),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# The bytes really stored: each distinct object once, the stored images' and the own bytes of
# the copies that keep theirs (they added content of their own: matches.own_blob_key), so a
# kept copy saves nothing. A scalar subquery, shared by the report and the pipeline benchmark.
STORED_BYTES_SQL = (
    "(SELECT coalesce(sum(byte_size), 0) FROM ("
    " SELECT blob_key, byte_size FROM images"
    " UNION SELECT m.own_blob_key, p.byte_size FROM matches m JOIN posts p USING (post_id)"
    " WHERE m.own_blob_key IS NOT NULL) stored)"
)

# The report's figures from the tables, one statement: the report and the HTTP API's /v1/stats
# (which runs it on its own async connection) share it, so both count the same way.
COUNTS_SQL = (
    "SELECT"
    " (SELECT count(*) FROM posts),"
    " (SELECT count(*) FROM images),"
    " (SELECT count(*) FROM posts WHERE decision = 'duplicate-reference'),"
    " (SELECT count(*) FROM clusters WHERE member_count > 0),"
    " (SELECT count(*) FROM alerts),"
    " (SELECT coalesce(sum(byte_size), 0) FROM posts),"
    f" {STORED_BYTES_SQL}"
)


@dataclass(frozen=True)
class DedupCounts:
    """What :data:`COUNTS_SQL` returns, named."""

    posts: int
    images: int
    duplicate_references: int
    clusters: int
    alerts: int
    bytes_uploaded: int
    bytes_stored_db: int

    @classmethod
    def from_row(cls, row: Sequence[Any] | None) -> DedupCounts:
        if row is None or len(row) != 7:
            raise ValueError(f"COUNTS_SQL returned {row!r}, not one row of seven counts")
        return cls(*(int(v) for v in row))

    @property
    def bytes_saved(self) -> int:
        """Bytes uploaded that were not stored: what referencing duplicates saved (a copy that
        keeps its own bytes saves nothing)."""
        return self.bytes_uploaded - self.bytes_stored_db

    @property
    def dedup_rate(self) -> float:
        """The share of posts that reference an image already stored."""
        return self.duplicate_references / self.posts if self.posts else 0.0


def build_report(settings: Settings) -> DedupReport:
    with psycopg.connect(settings.pg_dsn) as conn:
        counts = DedupCounts.from_row(conn.execute(COUNTS_SQL).fetchone())
    objects, object_bytes = ObjectStore(settings).count_and_bytes()
    return DedupReport(
        posts=counts.posts, images=counts.images,
        duplicate_references=counts.duplicate_references, clusters=counts.clusters,
        alerts=counts.alerts, bytes_uploaded=counts.bytes_uploaded,
        bytes_stored_db=counts.bytes_stored_db, objects=objects,
        bytes_in_object_store=object_bytes,
    )


@dataclass(frozen=True)
class StagePosition:
    """How far one consumer has come through its input topic (summed over partitions)."""

    stage: str
    topic: str
    consumed: int
    end: int

    @property
    def behind(self) -> int:
        return max(self.end - self.consumed, 0)

    def describe(self) -> str:
        return f"{self.stage} at {self.consumed}/{self.end} of {self.topic}"


class DrainProbe:
    """Positions of every stage, through one admin client, one consumer and one connection.

    Upstream is read before downstream in each poll: a Faust worker flushes what it produced
    before it commits its input, so once a stage's input is consumed, everything it will emit
    is already counted in the next topic's end offsets when those are read.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
            request_timeout_ms=KAFKA_TIMEOUT_MS,
        )
        self._conn: psycopg.Connection | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}
        self._upload_targets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Connect, and fix the uploads to wait for: everything in the log now."""
        s = self._settings
        await self._admin.start()
        await self._consumer.start()
        self._conn = psycopg.connect(s.pg_dsn, autocommit=True, connect_timeout=5)
        for topic in (s.topic_uploads, s.topic_features, s.topic_decisions):
            self._partitions[topic] = await topic_partitions(s, topic)
        self._upload_targets = await self._consumer.end_offsets(self._partitions[s.topic_uploads])

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()
        if self._conn is not None:
            self._conn.close()

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self._admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def _pg_sink_offsets(self) -> dict[TopicPartition, int]:
        assert self._conn is not None, "start() first"
        rows = self._conn.execute(
            "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s",
            (PG_SINK_CONSUMER,),
        ).fetchall()
        return {TopicPartition(t, p): o for t, p, o in rows}

    async def positions(self) -> list[StagePosition]:
        s = self._settings
        worker = await self._committed(s.worker_group_id)
        features_end = await self._consumer.end_offsets(self._partitions[s.topic_features])
        decisions_end = await self._consumer.end_offsets(self._partitions[s.topic_decisions])
        pg = self._pg_sink_offsets()
        blob = await self._committed(s.blob_sink_group)

        def stage(name: str, topic: str, done: dict[TopicPartition, int],
                  end: dict[TopicPartition, int]) -> StagePosition:
            consumed = sum(min(done.get(tp, 0), e) for tp, e in end.items())
            return StagePosition(name, topic, consumed, sum(end.values()))

        return [
            stage("worker (extract)", s.topic_uploads, worker, self._upload_targets),
            stage("worker (decide)", s.topic_features, worker, features_end),
            stage("postgres sink", s.topic_decisions, pg, decisions_end),
            stage("blob sink", s.topic_decisions, blob, decisions_end),
        ]


async def _wait_drained(settings: Settings, idle_timeout: float) -> list[StagePosition]:
    probe = DrainProbe(settings)
    try:
        await probe.start()
        last: list[StagePosition] | None = None
        last_progress = time.monotonic()
        while True:
            positions = await probe.positions()
            if not any(p.behind for p in positions):
                return positions
            if positions != last:
                last, last_progress = positions, time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout:
                return positions
            await asyncio.sleep(DRAIN_POLL_SECONDS)
    finally:
        await probe.close()


def wait_drained(
    settings: Settings, upload_ids: Sequence[str] = (), idle_timeout: float = 90.0
) -> int:
    """Wait until every stage has consumed what was in the log when the wait began.

    Then every upload has a post or a dead letter and every stored image its object (each
    sink commits only what is durable). Returns 0, or, when nothing moved for
    ``idle_timeout`` seconds, the records still behind, after saying on stderr which stage
    stopped and where. ``upload_ids`` (a replay's) only size that message.
    """
    positions = asyncio.run(_wait_drained(settings, idle_timeout))
    behind = sum(p.behind for p in positions)
    if behind:
        stuck = "; ".join(p.describe() for p in positions if p.behind)
        replayed = f" after a replay of {len(upload_ids)} uploads" if upload_ids else ""
        print(
            f"pipeline did not drain{replayed}: nothing moved for {idle_timeout:.0f} s; {stuck}"
            " (see `picnix pipeline status` and the logs in ~/.cache/picnix/run/logs)",
            file=sys.stderr,
        )
    return behind


async def _group_members(admin: AIOKafkaAdminClient, group: str) -> int:
    for attempt in range(1, COORDINATOR_ATTEMPTS + 1):
        try:
            (response,) = await admin.describe_consumer_groups([group])
            break
        except GroupCoordinatorNotAvailableError:
            if attempt == COORDINATOR_ATTEMPTS:
                return 0  # no group has ever been coordinated here: nobody consumes
            await asyncio.sleep(COORDINATOR_RETRY_SECONDS)
    groups = response.to_object()["groups"]
    return sum(len(g["members"]) for g in groups if g["group"] == group)


def nothing_consumes(settings: Settings, drain: bool) -> str | None:
    """Why a replay would publish into a void (no worker, or no blob sink to wait for), or None.

    Asked of Kafka's group coordinator, so workers on other machines count as well.
    """

    async def ask() -> str | None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS
        )
        try:
            await admin.start()
            wanted = [(settings.worker_group_id, "pipeline worker")]
            if drain:
                wanted.append((settings.blob_sink_group, "blob sink"))
            for group, what in wanted:
                if not await _group_members(admin, group):
                    return (
                        f"no {what} consumes (Kafka consumer group {group!r} has no members); "
                        "start the pipeline with `picnix pipeline up`"
                    )
            return None
        except KafkaError as exc:
            return f"cannot ask Kafka at {settings.kafka_bootstrap} who consumes: {exc!r}"
        finally:
            await admin.close()

    return asyncio.run(ask())
