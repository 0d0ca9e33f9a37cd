"""Kafka plumbing shared by the sinks: consumers that never auto-commit, and the DLQ producer."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import Settings
from schemas.events import UploadRef
from stream_processors.dead_letters import dead_letter

RECORD_HEADROOM_BYTES = 1024 * 1024


def manual_consumer(settings: Settings, group_id: str | None) -> AIOKafkaConsumer:
    """A consumer whose offsets move only when the sink says its writes are durable."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.max_image_bytes + RECORD_HEADROOM_BYTES,
        fetch_max_bytes=4 * (settings.max_image_bytes + RECORD_HEADROOM_BYTES),
        isolation_level="read_committed",
    )


def reliable_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.max_image_bytes + RECORD_HEADROOM_BYTES,
    )


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    ids = [p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"]]
    if not ids:
        raise RuntimeError(f"topic {topic!r} does not exist: run `picnix stack up`")
    return [TopicPartition(topic, p) for p in sorted(ids)]


async def send_dead_letter(
    producer: AIOKafkaProducer, settings: Settings, stage: str, reason: str, detail: str,
    ref: UploadRef, original: bytes | None,
) -> None:
    event = dead_letter(reason, detail, stage, ref, original)
    await producer.send_and_wait(settings.topic_uploads_dlq, event.to_record())
