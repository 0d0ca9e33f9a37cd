"""Reads the dead-letter topic from the beginning: what `picnix dlq list` shows."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka_clients import manual_consumer, topic_partitions
from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import DeadLetterEvent


async def read_dead_letters_async(settings: Settings) -> list[DeadLetterEvent]:
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(settings, settings.topic_uploads_dlq)
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        events: list[DeadLetterEvent] = []
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        events.append(DeadLetterEvent.from_record(record.value))
                    except SchemaError:
                        continue  # not ours to judge: the DLQ keeps whatever landed there
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            if not batches:
                remaining = {tp for tp in remaining if await consumer.position(tp) < end[tp]}
        return events
    finally:
        await consumer.stop()


async def count_dead_letters(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> int:
    """Records on the dead-letter topic from its offsets alone (end minus start, summed): O(1)
    however many there are. The DLQ is written without transactions, so offsets are records."""
    start = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    return sum(end[tp] - start[tp] for tp in partitions)


def read_dead_letters(settings: Settings) -> list[DeadLetterEvent]:
    return asyncio.run(read_dead_letters_async(settings))
