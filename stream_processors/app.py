"""The Faust worker: thin adapters from Kafka to the extract and decide logic.

``extract`` is stateless and CPU-bound: it decodes and signs each upload in a thread pool
(OpenCV releases the GIL) and publishes a compact feature event, or dead-letters the upload
with its reason. ``decide`` is stateful and single-partition, so every decision sees every stored
image in one fixed order; its tables are changelog-backed and co-partitioned with its input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust

from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import (
    FEATURE_TOPIC_EVENTS,
    UPLOAD_TOPIC_EVENTS,
    DecisionEvent,
    FeatureEvent,
    PostDeletedEvent,
    PostDeleteEvent,
    PostUpdateEvent,
    UploadEvent,
    UploadRef,
    parse_event,
)
from stream_processors import metrics
from stream_processors.dead_letters import dead_letter
from stream_processors.decider import Decider, Emit, Refuse
from stream_processors.engine.decision import DecisionKind
from stream_processors.engine.decode import DecodeLimits
from stream_processors.engine.method import build_method
from stream_processors.extraction import Rejection, extract_features

log = logging.getLogger(__name__)

STAGE_EXTRACT = "extract"
STAGE_DECIDE = "decide"


def create_app(settings: Settings) -> faust.App:
    datadir = settings.data_dir / "faust" / settings.faust_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.faust_app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.faust_store,
        datadir=str(datadir),
        processing_guarantee="at_least_once",
        topic_partitions=1,
        topic_replication_factor=1,
        producer_max_request_size=settings.max_record_bytes,
        consumer_max_fetch_size=settings.max_record_bytes,
        producer_acks=-1,
        # A SIGKILLed worker's partitions move to its successor after this, not Faust's 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # Faust's web server only serves its own stats pages; bind it to loopback on our port.
        web_enabled=False,
        web_host="127.0.0.1",
        web_port=settings.faust_web_port,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    uploads = app.topic(settings.topic_uploads, **raw)
    features = app.topic(settings.topic_features, **raw)
    decisions_topic = app.topic(settings.topic_decisions, **raw)
    dlq = app.topic(settings.topic_uploads_dlq, **raw)

    # Co-partitioned with picnix.features (one partition). value_type=bytes selects the raw
    # codec: values are our own versioned frames; reference counts are JSON integers.
    posts_table = app.Table("posts", partitions=1, key_type=str, value_type=bytes)
    stored_table = app.Table("stored-images", partitions=1, key_type=str, value_type=bytes)
    refs_table = app.Table("image-refs", partitions=1, key_type=str, value_type=int)

    extract_method = build_method(settings.engine_method)
    limits = DecodeLimits(max_bytes=settings.max_image_bytes)
    executor = ThreadPoolExecutor(max_workers=settings.extract_threads)

    @app.agent(uploads)
    async def extract(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            ref = UploadRef(event.message.topic, event.message.partition, event.message.offset)
            record: bytes = event.value
            try:
                parsed = parse_event(record, UPLOAD_TOPIC_EVENTS)
            except SchemaError as exc:
                await _dead_letter(dlq, STAGE_EXTRACT, exc.code, exc.detail, ref, record, None)
                continue
            if not isinstance(parsed, UploadEvent):
                # Lifecycle events need no extraction; they keep their order behind the upload.
                await features.send(key=event.key, value=record)
                continue
            metrics.UPLOADS.inc()
            metrics.UPLOAD_BYTES.inc(len(parsed.image))
            result = await loop.run_in_executor(
                executor, extract_features, parsed, ref, extract_method, limits
            )
            if isinstance(result, Rejection):
                await _dead_letter(
                    dlq, STAGE_EXTRACT, result.reason, result.detail, ref, record, parsed.upload_id
                )
                continue
            metrics.EXTRACT_SECONDS.observe(result.extract_seconds)
            await features.send(key=parsed.upload_id.encode(), value=result.to_record())

    decider = Decider(
        build_method(settings.engine_method), posts_table, stored_table, refs_table
    )

    @app.agent(features)
    async def decide(stream: faust.StreamT) -> None:
        async for event in stream.events():
            ref = UploadRef(event.message.topic, event.message.partition, event.message.offset)
            try:
                parsed = parse_event(event.value, FEATURE_TOPIC_EVENTS)
            except SchemaError as exc:
                await _dead_letter(dlq, STAGE_DECIDE, exc.code, exc.detail, ref, event.value, None)
                continue
            assert isinstance(parsed, FeatureEvent | PostUpdateEvent | PostDeleteEvent)
            started = time.perf_counter()
            outcome = decider.handle(parsed, seq=event.message.offset)
            metrics.DECIDE_SECONDS.observe(time.perf_counter() - started)
            if isinstance(outcome, Refuse):
                await _dead_letter(
                    dlq, STAGE_DECIDE, outcome.reason, outcome.detail, ref, event.value, None
                )
                continue
            _count(outcome)
            await decisions_topic.send(key=event.key, value=outcome.event.to_record())

    return app


def _count(outcome: Emit) -> None:
    if outcome.redelivered:
        metrics.REDELIVERED.inc()
        return
    event = outcome.event
    if isinstance(event, DecisionEvent):
        metrics.DECISIONS.labels(decision=event.decision.kind).inc()
        if event.decision.kind == DecisionKind.DUPLICATE_REFERENCE:
            metrics.BYTES_SAVED.inc(event.image.byte_size)
    elif isinstance(event, PostDeletedEvent):
        metrics.LIFECYCLE.labels(event="delete").inc()
    else:
        metrics.LIFECYCLE.labels(event="update").inc()


async def _dead_letter(
    dlq: faust.TopicT,
    stage: str,
    reason: str, detail: str, ref: UploadRef, record: bytes | None,
    upload_id: str | None,
) -> None:
    log.warning("dead-letter %s at %s: %s", reason, ref, detail)
    metrics.DLQ.labels(reason=reason).inc()
    event = dead_letter(reason, detail, stage, ref, record, upload_id)
    await dlq.send(key=(upload_id or "").encode() or None, value=event.to_record())
