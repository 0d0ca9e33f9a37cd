"""An upload record deleted before the blob sink read it (retention outran a lagging sink): the
decision goes to the dead-letter topic with its reason and the sink goes on storing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse
import urllib.request

import pytest
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from infra.kafka_clients import manual_consumer, topic_partitions
from infra.pipeline import COMPONENTS, pipeline_up
from infra.settings import Settings
from infra.stack.process import stop_service
from producers.publisher import UploadPublisher, build_upload
from schemas.events import DECISION_TOPIC_EVENTS, DecisionEvent, parse_event
from sinks.blob_keys import blob_key
from sinks.blob_sink import SINK, UPLOAD_MISSING
from sinks.dead_letters_view import read_dead_letters
from sinks.object_store import ObjectStore
from tests.e2e.waiting import query, wait_for
from tests.imagegen import distinct_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BLOB_SINK = next(c for c in COMPONENTS if c.name == "picnix-blob-sink")


async def _publish(settings: Settings, post_id: str, image: bytes) -> None:
    async with UploadPublisher(settings) as publisher:
        await publisher.publish(
            build_upload(post_id, "carol", post_id, image, settings.max_image_bytes)
        )


async def _delete_every_upload(settings: Settings) -> None:
    partitions = await topic_partitions(settings, settings.topic_uploads)
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(end[tp]) for tp in partitions})
    finally:
        await admin.close()


async def _decision_records(settings: Settings) -> dict[str, bytes]:
    partitions = await topic_partitions(settings, settings.topic_decisions)
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: dict[str, bytes] = {}
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    event = parse_event(r.value, DECISION_TOPIC_EVENTS)
                    if isinstance(event, DecisionEvent) and r.value is not None:
                        out[event.upload_id] = r.value
        return out
    finally:
        await consumer.stop()


def test_a_decision_whose_upload_is_gone_is_dead_lettered_and_the_sink_goes_on(
    pipeline: Settings,
) -> None:
    settings = pipeline
    store = ObjectStore(settings)
    gone, kept = distinct_png(1), distinct_png(2)
    stop_service(settings, BLOB_SINK.name, BLOB_SINK.marker)  # a sink far behind the log
    asyncio.run(_publish(settings, "gone-1", gone))
    wait_for("the post", lambda: query(settings, "SELECT 1 FROM posts WHERE post_id = 'gone-1'"))
    # the stopped sink's group falls behind, and `picnix serve` reads that from the broker
    lag_expr = (
        f'picnix_consumer_lag_records{{group="{settings.blob_sink_group}",'
        f'topic="{settings.topic_decisions}"}}'
    )
    wait_for("the stopped blob sink's lag in Prometheus",
             lambda: (_scraped(settings, lag_expr) or 0) >= 1, timeout=60)
    asyncio.run(_delete_every_upload(settings))
    pipeline_up(settings)  # the blob sink again
    asyncio.run(_publish(settings, "kept-1", kept))

    kept_key = blob_key(hashlib.sha256(kept).hexdigest())
    wait_for("the later upload's object", lambda: store.exists(kept_key), timeout=120)
    # the two decisions may travel on different partitions: either may be handled first
    letters = wait_for(
        "the sink's dead letter",
        lambda: [e for e in read_dead_letters(settings) if e.stage == SINK],
        timeout=60,
    )
    assert [(e.upload_id, e.reason) for e in letters] == [("gone-1", UPLOAD_MISSING)]
    assert "outside the log" in letters[0].detail
    # the original decision is kept whole, so the post can be repaired from a re-upload
    assert letters[0].original == asyncio.run(_decision_records(settings))["gone-1"]
    assert not store.exists(blob_key(hashlib.sha256(gone).hexdigest()))
    # counted by sink and reason, which the dashboard's dead-letters panel shows
    letters_expr = f'picnix_sink_dead_letters_total{{sink="{SINK}",reason="{UPLOAD_MISSING}"}}'
    wait_for("the sink's dead letter in Prometheus",
             lambda: _scraped(settings, letters_expr) == 1, timeout=60)


def _scraped(settings: Settings, expr: str) -> float | None:
    """The value of a one-series query against the stack's Prometheus, None before a scrape."""
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None
