"""The Python producer API: validate an upload, then publish it with acks=all and idempotence.

Validation happens before anything reaches Kafka so a caller gets a clear error at once; the
extract stage validates again (a producer is not trusted) and dead-letters what it cannot use.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import RecordMetadata

from infra.kafka_clients import reliable_producer
from infra.settings import Settings
from producers import metrics
from schemas.envelope import SchemaError
from schemas.events import PostDeleteEvent, PostUpdateEvent, UploadEvent
from stream_processors.engine.decode import ImageRejected, sniff_format

SEND_ATTEMPTS = 6
PUBLISH_LINGER_MS = 5  # a replay's concurrent sends share batches
# aiokafka buffers one batch per partition and a send waits while it is full: with its 16 KiB
# default every image above that travelled alone, one produce request and ack per image and
# partition. A larger bound lets a replay's concurrent uploads share requests (a record above
# it still goes, in a batch of its own).
PUBLISH_BATCH_BYTES = 1024 * 1024
SEND_RETRY_SECONDS = 2.0


class UploadRefused(ValueError):
    """An upload that would certainly fail; ``reason`` is a stable code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PublishedUpload:
    upload_id: str
    partition: int
    offset: int
    byte_size: int


def check_text(where: str, **fields: str) -> None:
    """Refuse text Postgres cannot store (a NUL character): published, it would stop the
    Postgres sink at that record, since no retry can write it."""
    for name, value in fields.items():
        if "\x00" in value:
            raise UploadRefused(
                "invalid-text", f"{where}: {name} contains a NUL character, which no text can hold"
            )


def check_image(image: bytes, max_bytes: int, where: str) -> None:
    """The checks an image passes before it is published (or searched): not empty, under the
    cap, and a supported format by its magic bytes; :class:`UploadRefused` says which failed."""
    if not image:
        raise UploadRefused("empty", f"{where}: the image has no bytes")
    if len(image) > max_bytes:
        raise UploadRefused("too-large", f"{where}: {len(image)} bytes > cap {max_bytes}")
    try:
        sniff_format(image)
    except ImageRejected as exc:
        raise UploadRefused(str(exc.reason), f"{where}: {exc.detail}") from exc


def build_upload(
    upload_id: str, author: str, title: str, image: bytes, max_bytes: int, *,
    description: str = "", filename: str = "", uploaded_at: str | None = None,
) -> UploadEvent:
    """Validate and build an upload event; raises :class:`UploadRefused` with the reason."""
    check_image(image, max_bytes, filename or upload_id)
    check_text(filename or upload_id, author=author, title=title, description=description)
    try:
        return UploadEvent(
            upload_id=upload_id,
            author=author,
            title=title,
            uploaded_at=uploaded_at or _now(),
            image=image,
            description=description,
            filename=filename,
        )
    except SchemaError as exc:
        raise UploadRefused(exc.code, exc.detail) from exc


def _retriable(exc: KafkaError) -> bool:
    """Kafka's own flag, plus a client-side timeout: the broker may just be restarting."""
    return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class UploadPublisher:
    """Publishes upload events; use as an async context manager."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = reliable_producer(
            settings, linger_ms=PUBLISH_LINGER_MS, max_batch_size=PUBLISH_BATCH_BYTES
        )

    async def __aenter__(self) -> UploadPublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def publish(self, upload: UploadEvent) -> PublishedUpload:
        """Send one upload keyed by its id, so all its events share a partition."""
        started = time.perf_counter()
        meta = await self._send(upload.upload_id.encode(), upload.to_record())
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        metrics.PUBLISHED.inc()
        metrics.PUBLISHED_BYTES.inc(len(upload.image))
        return PublishedUpload(upload.upload_id, meta.partition, meta.offset, len(upload.image))

    async def update_post(self, post_id: str, title: str, description: str) -> PublishedUpload:
        """Keyed by the post id, so the update lands behind its upload in the same partition."""
        check_text(f"post {post_id}", title=title, description=description)
        event = PostUpdateEvent(
            post_id=post_id, title=title, description=description, updated_at=_now()
        )
        return await self._send_lifecycle(post_id, event.to_record())

    async def delete_post(self, post_id: str) -> PublishedUpload:
        event = PostDeleteEvent(post_id=post_id, deleted_at=_now())
        return await self._send_lifecycle(post_id, event.to_record())

    async def _send_lifecycle(self, post_id: str, record: bytes) -> PublishedUpload:
        if not post_id.strip():
            raise UploadRefused("empty-field", "post id must not be empty")
        meta = await self._send(post_id.encode(), record)
        return PublishedUpload(post_id, meta.partition, meta.offset, 0)

    async def publish_raw(self, record: bytes, key: bytes | None = None) -> PublishedUpload:
        """Publish a record as is, bypassing validation: for tests of the dead-letter path."""
        meta = await self._send(key, record)
        return PublishedUpload("", meta.partition, meta.offset, len(record))

    async def _send(self, key: bytes | None, record: bytes) -> RecordMetadata:
        """Send with acks=all; retry a failed send, which the pipeline's idempotence makes safe.

        The producer already retries internally until its request timeout; this outer loop
        carries an upload across a longer outage (a broker restart) instead of dropping it.
        """
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                return await self._producer.send_and_wait(
                    self._settings.topic_uploads, record, key=key
                )
            except KafkaError as exc:
                if attempt == SEND_ATTEMPTS or not _retriable(exc):
                    raise
                metrics.RETRIES.inc()
                await asyncio.sleep(SEND_RETRY_SECONDS * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")
