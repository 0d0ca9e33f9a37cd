"""Kafka clients configured the way every PicNix component needs them.

Producers wait for all replicas and are idempotent; consumers never auto-commit, so a component
moves its position only once its own writes are durable. Record sizes follow the image cap.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import Settings


def manual_consumer(settings: Settings, group_id: str | None) -> AIOKafkaConsumer:
    """A consumer whose offsets move only when the sink says its writes are durable."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.max_record_bytes,
        fetch_max_bytes=4 * settings.max_record_bytes,
        isolation_level="read_committed",
    )


DEFAULT_BATCH_BYTES = 16 * 1024  # aiokafka's default: right for small records (decisions, DLQ)
# Far below one image: the broker returns the first record batch whole even when it is larger
# (KIP-74), so a positioned read gets its record and little or nothing after it.
POSITIONED_FETCH_BYTES = 64 * 1024


def positioned_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer outside any group for reading single records at known positions."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=POSITIONED_FETCH_BYTES,
        fetch_max_bytes=POSITIONED_FETCH_BYTES,
        isolation_level="read_committed",
    )


def reliable_producer(
    settings: Settings, linger_ms: int = 0, max_batch_size: int = DEFAULT_BATCH_BYTES
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.max_record_bytes,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
    )


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """The topic's partitions, or an error naming the fix when it does not exist.

    Read from the metadata of every topic: a request naming a missing topic makes a broker
    that auto-creates topics (ours: Faust needs it) create it with one partition, so the topic
    a moment later exists with the wrong partition count instead of being refused.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    ids = [
        p["partition"] for d in described if d["topic"] == topic and d["error_code"] == 0
        for p in d["partitions"]
    ]
    if not ids:
        raise RuntimeError(f"topic {topic!r} does not exist: run `picnix stack up`")
    return [TopicPartition(topic, p) for p in sorted(ids)]
