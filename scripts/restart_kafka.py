"""The Kafka side of ``bench_restart``: read a worker's changelogs, write the fill into them,
move the workers' group past the filled uploads, watch for a decision, drop the namespace.

Each call is one ``asyncio.run`` with clients of its own: the benchmark makes a handful of them,
so connection set-up costs nothing that is measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.kafka_clients import manual_consumer
from infra.settings import Settings

PRODUCE_BATCH_BYTES = 1024 * 1024
PRODUCE_LINGER_MS = 20
IN_FLIGHT = 2000  # sends awaited together: enough to fill batches, bounded memory
POLL_MS = 200
READ_IDLE_SECONDS = 10.0
MS = 1000.0


class KafkaStepError(RuntimeError):
    """A Kafka step of the benchmark failed; the message says which and why."""


async def _read(settings: Settings, topic: str) -> list[tuple[bytes, bytes | None]]:
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[tuple[bytes, bytes | None]] = []
        idle_since = time.monotonic()
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=POLL_MS)
            for record in batch.get(tp, []):
                if record.key is None:
                    raise KafkaStepError(f"{topic} offset {record.offset} has no key")
                out.append((record.key, record.value))
            if batch:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > READ_IDLE_SECONDS:
                raise KafkaStepError(f"reading {topic}: stuck at offset "
                                     f"{await consumer.position(tp)} of {end}")
        return out
    finally:
        await consumer.stop()


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every record of a one-partition topic, in log order."""
    return asyncio.run(_read(settings, topic))


async def _produce(
    settings: Settings, batches: Iterable[list[tuple[str, bytes, bytes | None]]],
    progress: Callable[[int], None],
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        max_request_size=settings.max_record_bytes, linger_ms=PRODUCE_LINGER_MS,
        max_batch_size=PRODUCE_BATCH_BYTES,
    )
    await producer.start()
    sent = 0
    try:
        for batch in batches:
            for lo in range(0, len(batch), IN_FLIGHT):
                futures = [
                    await producer.send(topic, value, key=key, partition=0)
                    for topic, key, value in batch[lo:lo + IN_FLIGHT]
                ]
                await asyncio.gather(*futures)
            sent += len(batch)
            progress(sent)
    finally:
        await producer.stop()
    return sent


def produce(
    settings: Settings, batches: Iterable[list[tuple[str, bytes, bytes | None]]],
    progress: Callable[[int], None],
) -> int:
    """Send (topic, key, value) records to partition 0 in order, acks=all; returns how many.
    ``progress`` gets the running count after each batch."""
    try:
        return asyncio.run(_produce(settings, batches, progress))
    except KafkaError as exc:
        raise KafkaStepError(f"writing the fill to Kafka failed: {exc!r}") from exc


async def _commit_end(settings: Settings, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = int((await consumer.end_offsets([tp]))[tp])
        consumer.assign([tp])
        await consumer.commit({tp: end})
        return end
    finally:
        await consumer.stop()


def commit_end(settings: Settings, group: str, topic: str) -> int:
    """Commit ``group``'s offset on ``topic`` at its end (the group must have no members): the
    workers then start after the records there. Returns the offset."""
    try:
        return asyncio.run(_commit_end(settings, group, topic))
    except KafkaError as exc:
        raise KafkaStepError(f"committing {group}'s offset on {topic} failed (a worker still "
                             f"in the group?): {exc!r}") from exc


def end_offset(settings: Settings, topic: str) -> int:
    async def ask() -> int:
        consumer = manual_consumer(settings, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    return asyncio.run(ask())


async def _wait_for(
    settings: Settings, topic: str, start: int, key: bytes, timeout: float,
    tick: Callable[[], None],
) -> float:
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=POLL_MS)
            for record in batch.get(tp, []):
                if record.key == key:
                    return float(record.timestamp) / MS
            tick()
        raise KafkaStepError(f"no record keyed {key.decode()} on {topic} within {timeout:.0f} s")
    finally:
        await consumer.stop()


def wait_for_key(
    settings: Settings, topic: str, start: int, key: bytes, timeout: float,
    tick: Callable[[], None],
) -> float:
    """The Kafka timestamp (s) of the first record keyed ``key`` at or after ``start``;
    ``tick`` runs between polls (and may raise to give up, e.g. when the worker died)."""
    return asyncio.run(_wait_for(settings, topic, start, key, timeout, tick))


def delete_prefixed_topics(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (the namespace's and Faust's)."""
    async def delete() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
            if names:
                await admin.delete_topics(names)
            return names
        finally:
            await admin.close()

    return asyncio.run(delete())
