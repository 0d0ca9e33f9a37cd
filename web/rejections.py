"""Follows the dead-letter topic so a post the pipeline refused reads as rejected, with why.

The producer check at the gateway sees magic bytes only; extract decodes, and may still refuse
(truncated, corrupt, a decompression bomb). Without this, such a post would stay pending for
ever. The follower copies each dead letter that names an upload into ``api_rejections`` and
keeps its position in ``sink_offsets`` in the same transaction, like the Postgres sink, so a
restart neither loses nor repeats one. It reads and records; it decides nothing.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from infra.kafka_clients import manual_consumer, topic_partitions
from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import DeadLetterEvent

log = logging.getLogger(__name__)

CONSUMER_NAME = "api-rejections"
RETRY_SECONDS = 2.0
BATCH_MAX_RECORDS = 200


async def _stored_offsets(
    conn: psycopg.AsyncConnection, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    cur = await conn.execute(
        "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s",
        (CONSUMER_NAME,),
    )
    known = {TopicPartition(t, p): o for t, p, o in await cur.fetchall()}
    return {tp: known[tp] for tp in partitions if tp in known}


def rejections_of(values: list[bytes | None]) -> list[DeadLetterEvent]:
    """The dead letters that name an upload; records of another shape are not ours to judge."""
    found = []
    for value in values:
        try:
            event = DeadLetterEvent.from_record(value)
        except SchemaError:
            continue
        if event.upload_id:
            found.append(event)
    return found


async def _write(
    conn: psycopg.AsyncConnection, tp: TopicPartition, events: list[DeadLetterEvent],
    next_offset: int,
) -> None:
    async with conn.transaction():
        for ev in events:
            await conn.execute(
                "INSERT INTO api_rejections (post_id, stage, reason, detail, failed_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (ev.upload_id, ev.stage, ev.reason, ev.detail, ev.failed_at),
            )
        await conn.execute(
            "INSERT INTO sink_offsets (consumer, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, topic, partition)"
            " DO UPDATE SET next_offset = EXCLUDED.next_offset",
            (CONSUMER_NAME, tp.topic, tp.partition, next_offset),
        )


async def _follow_once(settings: Settings, consumer: AIOKafkaConsumer) -> None:
    partitions = await topic_partitions(settings, settings.topic_uploads_dlq)
    async with await psycopg.AsyncConnection.connect(settings.pg_dsn, connect_timeout=5) as conn:
        consumer.assign(partitions)
        stored = await _stored_offsets(conn, partitions)
        await conn.commit()
        for tp in partitions:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH_MAX_RECORDS)
            for tp, records in batches.items():
                events = rejections_of([r.value for r in records])
                await _write(conn, tp, events, records[-1].offset + 1)


async def follow_rejections(settings: Settings) -> None:
    """Run until cancelled; a Kafka or Postgres outage is logged and retried, not fatal."""
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        while True:
            try:
                await _follow_once(settings, consumer)
            # RuntimeError: topic_partitions found no such topic (not provisioned yet)
            except (KafkaError, psycopg.Error, RuntimeError) as exc:
                log.warning("following %s failed (%s); retrying in %.0f s",
                            settings.topic_uploads_dlq, exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
    finally:
        await consumer.stop()
