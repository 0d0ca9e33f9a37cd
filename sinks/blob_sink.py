"""The blob sink: stores the bytes of each distinct image once, under a content-addressed key.

Decisions carry no image bytes; a decision that stores an image points at its upload record
(partition and offset), which this sink reads back from the log. A duplicate that keeps its own
bytes (it added a caption, stickers, a frame: ``DecisionInfo.keeps_own_bytes``) is stored the
same way under its own content's key, beside the reference to its original. A deletion that
orphans an image removes its object, and a deleted post's own bytes go with it. Offsets are
committed to Kafka
only after every object of the batch is durable; a redelivered batch finds its keys present.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from infra.kafka_clients import manual_consumer, positioned_reader, reliable_producer
from infra.readiness import set_ready
from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import (
    DECISION_TOPIC_EVENTS,
    DecisionEvent,
    PostDeletedEvent,
    UploadEvent,
    UploadRef,
    parse_event,
)
from schemas.upload_records import parse_upload_record
from sinks import metrics
from sinks.blob_keys import blob_key
from sinks.dead_letter_producer import send_dead_letter
from sinks.object_store import ObjectStore
from stream_processors.engine.decision import DecisionKind

log = logging.getLogger(__name__)

SINK = "blob"
BATCH_MAX_RECORDS = 100
RETRY_SECONDS = 1.0
FETCH_TIMEOUT_MS = 10_000
CONTENT_TYPES = {
    "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
    "bmp": "image/bmp", "tiff": "image/tiff",
}


UPLOAD_MISSING = "upload_record_missing"  # dead-letter reason: the bytes cannot be read back


class UploadNotFound(LookupError):
    """The upload record a decision points at is not in the log: deleted by retention or by
    hand before this sink read it, or never there. The decision is dead-lettered (the bytes
    are gone; retrying cannot bring them back) and the sink goes on."""


class UploadLogUnavailable(TimeoutError):
    """The upload log gave no record in time (a broker restarting): the batch is retried, as
    when the object store is down, instead of ending the sink."""


class UploadReader:
    """Reads single upload records by position; a consumer of its own, outside any group.

    Each read fetches about one record: the fetch size is small (the broker still returns the
    first whole record batch, however large), and the partition is paused between reads so the
    consumer never prefetches the records after it. Without both, every read pulled up to a
    full fetch of the uploads behind it (10 MiB a partition), parsed them and threw them away.
    Only the partition being read is assigned: records left buffered for another partition
    would hold every fetch to their broker back by aiokafka's prefetch backoff (100 ms).
    """

    def __init__(self, settings: Settings) -> None:
        self._consumer = positioned_reader(settings)

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read(self, ref: UploadRef) -> bytes:
        """The record's value (a ``PNX`` upload is all in it)."""
        return (await self._record(ref)).value or b""

    async def read_upload(self, ref: UploadRef) -> UploadEvent:
        """The upload at ``ref`` in either binding: a CloudEvents upload's attributes are in
        its headers. Raises ``SchemaError`` when the record there is no upload."""
        record = await self._record(ref)
        event = parse_upload_record(list(record.headers), record.value, record.timestamp)
        if not isinstance(event, UploadEvent):
            raise SchemaError("wrong-schema", f"a {type(event).__name__}, not an upload")
        return event

    async def _record(self, ref: UploadRef) -> ConsumerRecord[bytes, bytes]:
        tp = TopicPartition(ref.topic, ref.partition)
        if self._consumer.assignment() != {tp}:
            self._consumer.assign([tp])
        self._consumer.seek(tp, ref.offset)
        self._consumer.resume(tp)
        try:
            return await self._read_at(tp, ref)
        finally:
            self._consumer.pause(tp)

    async def _read_at(self, tp: TopicPartition, ref: UploadRef) -> ConsumerRecord[bytes, bytes]:
        deadline = time.monotonic() + FETCH_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            batches = await self._consumer.getmany(tp, timeout_ms=1000, max_records=1)
            for record in batches.get(tp, []):
                if record.offset == ref.offset:
                    return record
                raise UploadNotFound(f"{ref}: the log returned offset {record.offset} instead")
        # nothing came back: either the broker is away, or the offset is outside the log (its
        # records were deleted up to the end, or it never existed)
        try:
            first = (await self._consumer.beginning_offsets([tp]))[tp]
            end = (await self._consumer.end_offsets([tp]))[tp]
        except KafkaError as exc:
            raise UploadLogUnavailable(f"{ref}: no record, and no offsets: {exc!r}") from exc
        if not first <= ref.offset < end:
            raise UploadNotFound(f"{ref}: outside the log, which holds offsets {first}..{end - 1}")
        raise UploadLogUnavailable(f"{ref}: no record within {FETCH_TIMEOUT_MS} ms")


class BlobSink:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store = ObjectStore(settings)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = manual_consumer(self._settings, group_id=self._settings.blob_sink_group)
        reader = UploadReader(self._settings)
        producer = reliable_producer(self._settings)
        await asyncio.to_thread(self._store.ensure_bucket)
        await consumer.start()
        await reader.start()
        await producer.start()
        consumer.subscribe([self._settings.topic_decisions])
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_MAX_RECORDS)
                set_ready(bool(consumer.assignment()))  # joined the group, partitions assigned
                for tp, records in batches.items():
                    started = time.perf_counter()
                    try:
                        for record in records:
                            await self._store_one(record.value, tp, record.offset, reader, producer)
                    # UploadLogUnavailable is an OSError (TimeoutError)
                    except (S3Error, HTTPError, OSError, KafkaError) as exc:
                        metrics.FAILURES.labels(sink=SINK).inc()
                        log.warning(
                            "object store or upload log unavailable (%s); retrying the batch", exc
                        )
                        await asyncio.sleep(RETRY_SECONDS)
                        await _rewind_to_committed(consumer, tp)
                        break
                    await consumer.commit({tp: records[-1].offset + 1})
                    metrics.RECORDS.labels(sink=SINK).inc(len(records))
                    metrics.BATCH_SECONDS.labels(sink=SINK).observe(time.perf_counter() - started)
                    metrics.set_lag(SINK, consumer.highwater(tp), records[-1].offset + 1)
        finally:
            await consumer.stop()
            await reader.stop()
            await producer.stop()

    async def _store_one(
        self, value: bytes | None, tp: TopicPartition, offset: int, reader: UploadReader,
        producer: AIOKafkaProducer,
    ) -> None:
        ref = UploadRef(tp.topic, tp.partition, offset)
        try:
            event = parse_event(value, DECISION_TOPIC_EVENTS)
        except SchemaError as exc:
            await send_dead_letter(
                producer, self._settings, SINK, exc.code, exc.detail, ref, value
            )
            return
        if isinstance(event, PostDeletedEvent):
            for sha256 in deleted_objects(event):
                await asyncio.to_thread(self._store.delete, blob_key(sha256))
                metrics.DELETES.inc()
            return
        if not isinstance(event, DecisionEvent) or not stores_bytes(event):
            return
        key = blob_key(event.image.sha256)
        if await asyncio.to_thread(self._store.exists, key):
            return
        try:
            upload = await reader.read_upload(event.upload_ref)
        except UploadNotFound as exc:
            await send_dead_letter(
                producer, self._settings, SINK, UPLOAD_MISSING, str(exc), ref, value,
                upload_id=event.upload_id,
            )
            return
        except SchemaError as exc:  # the record at that position is no upload
            await send_dead_letter(
                producer, self._settings, SINK, exc.code, f"{event.upload_ref}: {exc.detail}",
                ref, value, upload_id=event.upload_id,
            )
            return
        content_type = CONTENT_TYPES.get(event.image.image_format, "application/octet-stream")
        # absent a moment ago; a concurrent writer of this key writes the same bytes
        await asyncio.to_thread(self._store.put, key, upload.image, content_type)
        metrics.WRITES.labels(sink=SINK).inc()
        metrics.BYTES_STORED.inc(len(upload.image))


def stores_bytes(event: DecisionEvent) -> bool:
    """Whether the upload's own bytes are stored: a new image's, and a duplicate's that added
    content of its own (engine.decision.Decision.stores_image); a plain copy's never are."""
    d = event.decision
    return DecisionKind(d.kind) is not DecisionKind.DUPLICATE_REFERENCE or d.keeps_own_bytes


def deleted_objects(event: PostDeletedEvent) -> list[str]:
    """The content hashes of the objects a deletion removes: the post's own kept bytes, and
    its image's when the post was the image's last."""
    out = [] if event.own_sha256 is None else [event.own_sha256]
    if event.orphaned:
        out.append(event.sha256)
    return out


async def _rewind_to_committed(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    committed = await consumer.committed(tp)
    if committed is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, committed)
