"""The Faust worker: thin adapters from Kafka to the extract, match and commit logic.

``extract`` is stateless and CPU-bound: it decodes and signs each upload in a thread pool
(OpenCV releases the GIL) and publishes a compact feature event, or dead-letters the upload
with its reason. ``match`` runs on every worker holding a partition of ``picnix.features``: it
evaluates the upload (candidate search and verification, the expensive part) on the worker's
replica of the index, which follows ``picnix.index`` (index_feed), and passes the result on
with the log position the replica had applied. ``commit`` is the one sequential step, on the
single partition of ``picnix.matches``: it settles each match against the index changes since
(usually none to check, see engine.delta), applies the seed's cluster rule, writes its
changelog-backed tables (co-partitioned with its input) and emits the decision and the index
changes. Decisions are exactly those of one sequential decide in the commit's input order.
Tables live in RocksDB with bounded caches, the local features of stored images in a table of
their own read only for a decision's candidates: the worker's RAM holds the indexes, not the
records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust

from infra.settings import Settings
from schemas.cloudevents import upload_id_of
from schemas.envelope import SchemaError
from schemas.events import (
    FEATURE_TOPIC_EVENTS,
    MATCH_TOPIC_EVENTS,
    DecisionEvent,
    FeatureEvent,
    MatchEvent,
    PostDeletedEvent,
    PostDeleteEvent,
    PostUpdateEvent,
    UploadEvent,
    UploadRef,
    parse_event,
)
from schemas.upload_records import MS_PER_S, parse_upload_record
from stream_processors import metrics
from stream_processors.dead_letters import dead_letter
from stream_processors.decider import Decider, Emit, Pending, Refuse, SearchResult
from stream_processors.engine.decision import DecisionKind, Settled
from stream_processors.engine.decode import DecodeLimits
from stream_processors.engine.feature_store import (
    ROCKS_BLOCK_CACHE_BYTES,
    ROCKS_MAX_WRITE_BUFFERS,
    ROCKS_WRITE_BUFFER_BYTES,
    MappingFeatureStore,
)
from stream_processors.engine.method import build_method
from stream_processors.extraction import Rejection, extract_features, extract_probe
from stream_processors.index_feed import (
    REPLICA_SNAPSHOT_DIR,
    follow_index_log,
    load_base,
    open_replica,
)
from stream_processors.memory_release import RELEASE_INTERVAL_S, release_free_memory
from stream_processors.replica import CaughtUp, IndexReplica
from stream_processors.search_view import SearchRefused, install_search_view

log = logging.getLogger(__name__)

STAGE_EXTRACT = "extract"
STAGE_MATCH = "match"
# How far (commit inputs) a worker's matches may run ahead of the commit before it waits, and
# for how long at most: bench_decide's window, where a commit usually settles in ~1 ms.
MATCH_AHEAD = 4
MATCH_AHEAD_WAIT_S = 0.25
MATCH_AHEAD_POLL_S = 0.002
STAGE_DECIDE = "decide"
# faust's RocksDB defaults (2 GiB block cache, 3 x 64 MiB memtables a table) would let the
# worker grow by gigabytes with the images it has seen; these bound it (see feature_store).
# local-features is read for every candidate of a decision and holds the large records: it gets
# the engine's store budget. The other tables hold ~1 KB values read once a decision (posts,
# image-refs) or only on a restore (stored-images): their reads are bloom-filtered misses or
# page-cache hits, so a 1 MiB cache and memtables lose nothing and keep a worker's RocksDB RAM
# at ~21 MiB instead of 96 (with 2 workers the standby replicas count twice).
def _rocks_table_options(cache_bytes: int, write_buffer_bytes: int) -> dict[str, Any]:
    return {
        "block_cache_size": cache_bytes,
        "block_cache_compressed_size": 0,
        "write_buffer_size": write_buffer_bytes,
        "max_write_buffer_number": ROCKS_MAX_WRITE_BUFFERS,
    }


SMALL_TABLE_BYTES = 1024 * 1024
RECORD_TABLE_OPTIONS = _rocks_table_options(ROCKS_BLOCK_CACHE_BYTES, ROCKS_WRITE_BUFFER_BYTES)
SMALL_TABLE_OPTIONS = _rocks_table_options(SMALL_TABLE_BYTES, SMALL_TABLE_BYTES)


def create_app(settings: Settings) -> faust.App:
    datadir = settings.faust_datadir  # per worker index: one RocksDB owner per directory
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.faust_app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.faust_store,
        datadir=str(datadir),
        processing_guarantee="at_least_once",
        topic_partitions=1,
        topic_replication_factor=settings.topic_replication,
        producer_max_request_size=settings.max_record_bytes,
        consumer_max_fetch_size=settings.max_record_bytes,
        producer_acks=-1,
        # A SIGKILLed worker's partitions move to its successor after this, not Faust's 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # The web server answers searches (search_view) beside Faust's own stats pages; the
        # canonical URL is how the other workers reach this one to forward a search to it.
        web_enabled=True,
        web_host=settings.faust_web_host,
        web_port=settings.faust_web_port,
        canonical_url=f"http://{settings.faust_web_host}:{settings.faust_web_port}",
        web_application_options={"client_max_size": settings.max_record_bytes},
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    uploads = app.topic(settings.topic_uploads, **raw)
    features = app.topic(settings.topic_features, **raw)
    matches = app.topic(settings.topic_matches, **raw)
    decisions_topic = app.topic(settings.topic_decisions, **raw)
    index_topic = app.topic(settings.topic_index, **raw)
    dlq = app.topic(settings.topic_uploads_dlq, **raw)

    # Co-partitioned with picnix.features (one partition). value_type=bytes selects the raw
    # codec: values are our own versioned frames; reference counts are JSON integers.
    def table(name: str, value_type: type, options: dict[str, Any]) -> Any:
        # faust's RocksDB store pops keys from the options it is given: a copy per table
        return app.Table(
            name, partitions=1, key_type=str, value_type=value_type, options=dict(options)
        )

    posts_table = table("posts", bytes, SMALL_TABLE_OPTIONS)
    stored_table = table("stored-images", bytes, SMALL_TABLE_OPTIONS)
    refs_table = table("image-refs", int, SMALL_TABLE_OPTIONS)
    # upload id of a stored image or alias -> its local-features record (the engine's store)
    local_table = table("local-features", bytes, RECORD_TABLE_OPTIONS)

    extract_method = build_method(settings.engine_method)
    limits = DecodeLimits(max_bytes=settings.max_image_bytes)
    executor = ThreadPoolExecutor(max_workers=settings.extract_threads)

    @app.agent(uploads)
    async def extract(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            ref = UploadRef(event.message.topic, event.message.partition, event.message.offset)
            record: bytes = event.value
            # PNX frames carry none; a CloudEvents record's attributes travel with its letter
            headers = list(event.message.headers or ())
            try:
                # a record without a timestamp (none since Kafka 0.10) would fall back to 0
                timestamp_ms = round((event.message.timestamp or 0) * MS_PER_S)
                parsed = parse_upload_record(headers, record, timestamp_ms)
            except SchemaError as exc:
                await _dead_letter(
                    dlq, STAGE_EXTRACT, exc.code, exc.detail, ref, record, upload_id_of(headers),
                    headers,
                )
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
                    dlq, STAGE_EXTRACT, result.reason, result.detail, ref, record,
                    parsed.upload_id, headers,
                )
                continue
            metrics.EXTRACT_SECONDS.observe(result.extract_seconds)
            await features.send(key=parsed.upload_id.encode(), value=result.to_record())

    @app.timer(interval=RELEASE_INTERVAL_S)
    async def release_memory() -> None:
        # large decodes leave freed pages resident in the extract threads' arenas
        release_free_memory()

    decide_method = build_method(settings.engine_method, MappingFeatureStore(local_table))
    decider = Decider(
        decide_method, posts_table, stored_table, refs_table,
        base=lambda: load_base(settings, datadir, local_table),
    )
    decide_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
    # Held from a commit's begin to its end, and by a search while it evaluates: a search reads
    # the commit's engine on its thread, and must not see a decision half applied.
    engine_lock = asyncio.Lock()

    # This worker's replica of the index, fed from picnix.index; its local features on disk
    # beside the worker's tables. One thread applies the log and evaluates matches, in turn.
    replica_start = open_replica(settings, datadir)
    replica = replica_start.replica
    replica_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="match")
    replica_ready = asyncio.Event()

    @app.on_partitions_revoked.connect
    async def drop_decide_state(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # with several workers the commit partition can move away and back: rebuild then
        revoked: set[Any] = args[0] if args else set()
        if any(tp.topic == settings.topic_matches for tp in revoked):
            store = MappingFeatureStore(local_table)
            decider.invalidate(build_method(settings.engine_method, store))

    @app.task
    async def feed_replica() -> None:
        await follow_index_log(
            settings, replica_start, replica_executor, replica_ready,
            datadir / REPLICA_SNAPSHOT_DIR,
        )

    @app.agent(features)
    async def match(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        await replica_ready.wait()  # matching on a replica far behind would only be redone
        sent = DeliveredOffset()  # of this worker's matches on picnix.matches
        async for event in stream.events():
            ref = UploadRef(event.message.topic, event.message.partition, event.message.offset)
            try:
                parsed = parse_event(event.value, FEATURE_TOPIC_EVENTS)
            except SchemaError as exc:
                await _dead_letter(dlq, STAGE_MATCH, exc.code, exc.detail, ref, event.value, None)
                continue
            if not isinstance(parsed, FeatureEvent):
                # lifecycle events keep their order behind their upload, as far as the commit
                await matches.send(key=event.key, value=event.value)
                continue
            await _pace(replica, sent.offset)
            started = await loop.run_in_executor(
                replica_executor, replica.start_match, parsed, event.value
            )
            # the index records that arrived meanwhile are applied first (one thread, in turn)
            caught_up = await loop.run_in_executor(replica_executor, replica.catch_up, started)
            _count_caught_up(caught_up)
            result = caught_up.event
            metrics.MATCH_SECONDS.observe(result.match_seconds)
            # not awaited: the next match need not wait for the broker (Faust flushes the
            # producer before it commits the features offset, so nothing sent is lost)
            delivery = await matches.send(key=event.key, value=result.to_record())
            asyncio.ensure_future(delivery).add_done_callback(sent.note)

    @app.agent(matches)
    async def commit(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            ref = UploadRef(event.message.topic, event.message.partition, event.message.offset)
            try:
                parsed = _commit_input(event.value)
            except SchemaError as exc:
                await _dead_letter(dlq, STAGE_DECIDE, exc.code, exc.detail, ref, event.value, None)
                continue
            started = time.perf_counter()
            async with engine_lock:
                if isinstance(parsed, MatchEvent):
                    feature = FeatureEvent.from_record(parsed.feature)
                    step = decider.begin(feature, seq=event.message.offset)
                else:
                    step = decider.begin(parsed, seq=event.message.offset)
                if isinstance(step, Pending):
                    assert isinstance(parsed, MatchEvent)
                    # usually a few hash comparisons; an evaluation again when a change since
                    # the match could alter it: off the event loop either way
                    settled = await loop.run_in_executor(
                        decide_executor, decider.settle, step, parsed
                    )
                    _count_settled(parsed, settled, decider.position)
                    outcome: Emit | Refuse = decider.commit(step, settled.decision)
                else:
                    outcome = step
            commit_seconds = time.perf_counter() - started
            metrics.COMMIT_SECONDS.observe(commit_seconds)
            if isinstance(outcome, Refuse):
                await _dead_letter(
                    dlq, STAGE_DECIDE, outcome.reason, outcome.detail, ref, event.value, None
                )
                continue
            if isinstance(parsed, MatchEvent):
                metrics.DECIDE_SECONDS.observe(parsed.match_seconds + commit_seconds)
            _count(outcome)
            for record in outcome.index:
                await index_topic.send(key=record.upload_id.encode(), value=record.to_record())
            await decisions_topic.send(key=event.key, value=outcome.event.to_record())

    async def search(image: bytes) -> SearchResult | SearchRefused:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        probe = await loop.run_in_executor(executor, extract_probe, image, decide_method, limits)
        if isinstance(probe, Rejection):
            metrics.SEARCHES.labels(outcome="refused").inc()
            return SearchRefused(422, probe.reason, probe.detail)
        async with engine_lock:
            result = await loop.run_in_executor(decide_executor, decider.search, probe)
        metrics.SEARCHES.labels(outcome="match" if result.match else "no-match").inc()
        metrics.SEARCH_SECONDS.observe(time.perf_counter() - started)
        return result

    install_search_view(app, posts_table, settings.topic_matches, search)
    return app


class DeliveredOffset:
    """The highest offset a worker's sends to one partition have been delivered at (-1: none
    yet), kept by delivery callbacks so the sender need not wait for each."""

    def __init__(self) -> None:
        self.offset = -1

    def note(self, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            return  # the producer reports its own errors; pacing only loses one step
        self.offset = max(self.offset, int(delivery.result().offset))


async def _pace(replica: IndexReplica, sent: int) -> None:
    """Wait, a little, until the commit has come within MATCH_AHEAD of this worker's latest
    match (the replica's position is the commit input offset of the latest index change): a
    match made far ahead of the commit is settled against many changes, and evaluated again
    at the commit more often, which slows the commit and lets matches run further ahead. The
    wait is bounded, as commits that change nothing in the index move no position."""
    waited = 0.0
    while sent - replica.position > MATCH_AHEAD and waited < MATCH_AHEAD_WAIT_S:
        await asyncio.sleep(MATCH_AHEAD_POLL_S)
        waited += MATCH_AHEAD_POLL_S
    metrics.MATCH_PACED_SECONDS.observe(waited)


def _commit_input(record: bytes) -> MatchEvent | PostUpdateEvent | PostDeleteEvent:
    """A picnix.matches record: a match, or a lifecycle event passed on by match."""
    parsed = parse_event(record, MATCH_TOPIC_EVENTS)
    assert isinstance(parsed, MatchEvent | PostUpdateEvent | PostDeleteEvent)
    return parsed


def _count_settled(match: MatchEvent, settled: Settled, position: int) -> None:
    if settled.reevaluated:
        metrics.REEVALUATED.inc()
        metrics.COMMIT_CHECKS.inc(settled.checks_run)
        if settled.index_queried:
            metrics.COMMIT_QUERIES.inc()
    metrics.MATCH_LAG.observe(max(0, position - match.position))


def _count_caught_up(caught_up: CaughtUp) -> None:
    metrics.MATCH_CATCH_UP.observe(caught_up.positions)
    if caught_up.settled is not None and caught_up.settled.reevaluated:
        metrics.MATCH_CATCH_UP_REEVALUATED.inc()


def _count(outcome: Emit) -> None:
    if outcome.redelivered:
        metrics.REDELIVERED.inc()
        return
    event = outcome.event
    if isinstance(event, DecisionEvent):
        metrics.DECISIONS.labels(decision=event.decision.kind).inc()
        metrics.UPLOAD_TO_DECISION_SECONDS.observe(_seconds_since(event.post.uploaded_at))
        # a duplicate that keeps its own bytes (it added content of its own) saves nothing
        d = event.decision
        if d.kind == DecisionKind.DUPLICATE_REFERENCE and not d.keeps_own_bytes:
            metrics.BYTES_SAVED.inc(event.image.byte_size)
    elif isinstance(event, PostDeletedEvent):
        metrics.LIFECYCLE.labels(event="delete").inc()
    else:
        metrics.LIFECYCLE.labels(event="update").inc()


def _seconds_since(timestamp: str) -> float:
    """Seconds from an ISO-8601 timestamp to now (0 for one without a zone or in the future)."""
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return 0.0
    if then.tzinfo is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


async def _dead_letter(
    dlq: faust.TopicT,
    stage: str,
    reason: str, detail: str, ref: UploadRef, record: bytes | None,
    upload_id: str | None, headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """``headers``: the input's own, kept on the letter: a CloudEvents record's attributes are
    there, not in its value, and the letter must keep the whole input."""
    log.warning("dead-letter %s at %s: %s", reason, ref, detail)
    metrics.DLQ.labels(reason=reason).inc()
    event = dead_letter(reason, detail, stage, ref, record, upload_id)
    await dlq.send(
        key=(upload_id or "").encode() or None, value=event.to_record(), headers=headers or None
    )
