"""A sink's dead letter is sent, then counted by sink and reason
(``picnix_sink_dead_letters_total``), which the dashboard's dead-letters panel adds to the
workers' ``picnix_dlq_total``."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from infra.settings import Settings
from schemas.events import DeadLetterEvent, UploadRef
from sinks.dead_letter_producer import send_dead_letter

LABELS = {"sink": "blob", "reason": "upload_record_missing"}


class RecordingProducer:
    """Takes what a sink sends; a real broker is the e2e tests' business."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes) -> None:
        self.sent.append((topic, value))


class FailingProducer:
    async def send_and_wait(self, topic: str, value: bytes) -> None:
        raise ConnectionError(f"no broker for {topic}")


def _count() -> float:
    return REGISTRY.get_sample_value("picnix_sink_dead_letters_total", LABELS) or 0.0


def _send(producer: object) -> None:
    ref = UploadRef("t", 0, 7)
    asyncio.run(send_dead_letter(
        producer, Settings(), "blob", "upload_record_missing", "gone", ref, b"x",
        upload_id="post-1",
    ))


def test_a_sent_dead_letter_is_counted_by_sink_and_reason() -> None:
    before = _count()
    producer = RecordingProducer()
    _send(producer)
    (topic, value), = producer.sent
    assert topic == Settings().topic_uploads_dlq
    assert DeadLetterEvent.from_record(value).reason == "upload_record_missing"
    assert _count() == before + 1


def test_a_dead_letter_the_broker_did_not_take_is_not_counted() -> None:
    before = _count()
    with pytest.raises(ConnectionError):  # reaches the sink, which retries the batch
        _send(FailingProducer())
    assert _count() == before
