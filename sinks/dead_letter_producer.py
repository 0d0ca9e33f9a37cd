"""The sinks' dead-letter path: a record they cannot read goes to the DLQ with its reason."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas.events import UploadRef
from sinks import metrics
from stream_processors.dead_letters import dead_letter


async def send_dead_letter(
    producer: AIOKafkaProducer, settings: Settings, stage: str, reason: str, detail: str,
    ref: UploadRef, original: bytes | None, upload_id: str | None = None,
) -> None:
    event = dead_letter(reason, detail, stage, ref, original, upload_id)
    await producer.send_and_wait(settings.topic_uploads_dlq, event.to_record())
    metrics.DEAD_LETTERS.labels(sink=stage, reason=reason).inc()
