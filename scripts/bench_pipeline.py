"""Benchmark: the whole stack on one box, measured: `python scripts/bench_pipeline.py --json`.

It needs the local stack (started when not up), wipes the pipeline's state while the stack keeps
running (topics with Faust's changelog and leader topics deleted and recreated, tables dropped
and migrated again, bucket emptied, the workers' Faust state removed), starts the pipeline with
``picnix pipeline up --workers W`` and leaves stack and pipeline running, so it runs back to back.

Workload (``scripts.bench_workload``, built once into ``settings.home/bench``): the openclipart
crawl, 30 % of it re-uploaded with the stress-set edits (half by another author), the dev set and
2 % large photos, shuffled with a fixed seed; ``--workload synthetic`` makes the same mix from
generated pictures (no download, for tests and bare machines). Uploads are published by the
product's own producer, ``picnix replay``, as a child process whose CPU the bench takes from
``wait4``.

1. Throughput: phase 1's uploads as fast as the pipeline takes them, from the first publish (the
   first upload record's Kafka timestamp) to the moment every decision is durable in Postgres and
   every blob in MinIO. Completion costs O(1) a poll: counts of posts and of dead letters, the
   Postgres sink's stored offsets and the blob sink's committed offsets against the decision
   log's end offsets; never a bucket listing nor a topic read.
2. Latency: ``--phase2-seconds`` (60) offered at ``--rate`` (50) uploads/s, uploads phase 1 has not
   seen; upload->decision latency from the upload record's Kafka timestamp to its decision
   record's, joined on the key (the upload id) after the phase. Uploads still undecided when
   ``--drain-timeout`` runs out count with the time waited (a lower bound), as ``censored``.

CPU per upload is phase 1's, by process group (``scripts.bench_stats``); RSS per stored image is
the growth from the first ``--rss-after`` (500) decided uploads to the end over the images stored
in between; disk per stored image is each data dir's growth over the images stored; the extract
floor is decode + extract in a spawned process pool on every core over a sample of phase 1's
images, in the same run, after the pipeline has drained. ``worker_stage_ms_mean`` is the workers'
own extract/decide/match/commit histograms (wall time) from Prometheus, to split the worker's
share; ``commit_ms_p50``/``p99``, ``match_ms_p50``/``p99``, ``commit_reevaluated`` (the
verifications those ran that their matches had not, ``commit_checks_run``, and how many of them
queried the index instead of merging their match's answers, ``commit_index_queried``),
``match_lag_positions_p50``/``p99`` (and ``match_lag_zero_share``, the commits with no change to
settle), ``catch_up_positions_p50``/``p99`` and ``catch_up_reevaluated`` (the workers settling
their own matches before sending them) and ``extracted_by_worker``/``matched_by_worker`` come
from the same histograms over the whole run (``decide_split``): the sequential step, the parallel
one, and each worker's share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from minio import Minio
from minio.deleteobjects import DeleteObject
from psycopg import sql

from infra.kafka_clients import manual_consumer, topic_partitions
from infra.pipeline import pipeline_down
from infra.settings import Settings, get_settings
from infra.stack.manager import stack_status, stack_up
from infra.stack.process import http_get, log_path, logs_dir
from infra.stack.topics import ensure_topics
from schemas.envelope import SchemaError
from schemas.events import DeadLetterEvent
from scripts import bench_stats
from scripts.bench_workload import (
    Workload,
    WorkloadError,
    build_full,
    build_synthetic,
    manifest_paths,
)
from scripts.datasets import fetch
from sinks.migrate import migrate
from sinks.pg_sink import CONSUMER_NAME as PG_CONSUMER
from sinks.report import STORED_BYTES_SQL
from stream_processors.engine.decision import DecisionKind

T = TypeVar("T")

# ../shared relative to the checkout, wherever it is cloned
DEV_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared/datasets/dev/manifest.csv"
DEFAULT_SEED = 0
DEFAULT_RATE = 50.0
DEFAULT_PHASE2_SECONDS = 60.0
DEFAULT_RSS_AFTER = 500
DEFAULT_FLOOR_SAMPLE = 1000
DEFAULT_SYNTHETIC_COUNT = 60
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 15.0
IDLE_TIMEOUT_SECONDS = 180.0  # phase 1 fails when nothing moved for this long
DRAIN_TIMEOUT_SECONDS = 240.0  # phase 2 waits this long after its last publish
TOPIC_DELETE_TIMEOUT_SECONDS = 60.0
PIPELINE_UP_TIMEOUT_SECONDS = 300.0
KAFKA_TIMEOUT_MS = 15_000
READ_IDLE_MS = 2_000
LOCK_TIMEOUT = "30s"  # a DROP blocked by someone's open transaction fails instead of hanging
FAUST_LEADER_TOPIC = "{app}-__assignor-__leader"
PERCENTILES = (50, 99)
GIT_TIMEOUT_SECONDS = 10.0
STAGES = ("extract", "decide", "match", "commit")
QUANTILES = (0.5, 0.99)
HTTP_OK = 200
SCRAPE_WAIT_SECONDS = 5.0  # two scrape intervals: the last samples reach Prometheus
MS = 1000.0


class BenchError(RuntimeError):
    """The benchmark could not run: a step failed, and the message says which and why."""


# --------------------------------------------------------------------------------------------
# Kafka: one event loop and long-lived clients behind a synchronous face


class Kafka:
    """End offsets, group offsets and record reads, cheap enough to poll every half second."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}

    def __enter__(self) -> Kafka:
        self._run(self._start())
        return self

    async def _start(self) -> None:
        """aiokafka clients are made inside the loop that runs them."""
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.kafka_bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS
        )
        await self._admin.start()
        self._consumer = manual_consumer(self._settings, group_id=None)
        await self._consumer.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # closing must not hide the error that ended us
            if self._consumer is not None:
                self._run(self._consumer.stop())
            if self._admin is not None:
                self._run(self._admin.close())
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use Kafka as a context manager"
        return self._consumer

    @property
    def admin(self) -> AIOKafkaAdminClient:
        assert self._admin is not None, "use Kafka as a context manager"
        return self._admin

    def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, asked once (recreated topics keep their specified count)."""
        if topic not in self._partitions:
            self._partitions[topic] = self._run(topic_partitions(self._settings, topic))
        return self._partitions[topic]

    def end_offsets(self, topic: str) -> dict[int, int]:
        parts = self.partitions(topic)
        ends = self._run(self.consumer.end_offsets(parts))
        return {tp.partition: int(ends[tp]) for tp in parts}

    def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        offsets = self._run(self.admin.list_consumer_group_offsets(group))
        return {tp.partition: int(o.offset) for tp, o in offsets.items() if tp.topic == topic}

    def list_topics(self) -> set[str]:
        return set(self._run(self.admin.list_topics()))

    def delete_topics(self, names: list[str]) -> None:
        for name in names:
            self._partitions.pop(name, None)
        if names:
            self._run(self.admin.delete_topics(names, timeout_ms=KAFKA_TIMEOUT_MS))

    def read(self, topic: str, start: dict[int, int], end: dict[int, int]) -> list[
        tuple[bytes | None, int, bytes | None]
    ]:
        """(key, timestamp ms, value) of every record in [start, end) of each partition."""
        return self._run(self._read(topic, start, end))

    async def _read(self, topic: str, start: dict[int, int], end: dict[int, int]) -> list[
        tuple[bytes | None, int, bytes | None]
    ]:
        consumer = self.consumer
        wanted = {TopicPartition(topic, p): end[p] for p in end if end[p] > start.get(p, 0)}
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp.partition, 0))
        out: list[tuple[bytes | None, int, bytes | None]] = []
        idle_since = time.monotonic()
        while wanted:
            batches = await consumer.getmany(*wanted, timeout_ms=500)
            if batches:
                idle_since = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    if record.offset < wanted.get(tp, 0):
                        out.append((record.key, int(record.timestamp), record.value))
                if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
            if wanted and time.monotonic() - idle_since > READ_IDLE_MS / MS:
                wanted = {tp: e for tp, e in wanted.items() if await consumer.position(tp) < e}
                if wanted and time.monotonic() - idle_since > KAFKA_TIMEOUT_MS / MS:
                    raise BenchError(f"reading {topic}: no records for {sorted(wanted)}")
        consumer.assign([])
        return out


# --------------------------------------------------------------------------------------------
# A clean state while the stack keeps running


def ensure_stack(settings: Settings) -> None:
    if all(s.healthy for s in stack_status(settings)):
        return
    log("stack not (all) up: picnix stack up")
    down = [s for s in stack_up(settings) if not s.healthy]
    if down:
        raise BenchError(f"stack not healthy after stack up: {[(s.name, s.detail) for s in down]}")


def faust_topics(settings: Settings, existing: set[str]) -> list[str]:
    """The app's own Faust topics: its tables' changelogs (named by the app itself, so a table
    the lead adds is wiped too) and its assignor's leader topic. Other apps' topics (a test
    session's app ``picnix-test-...`` shares the prefix) are never touched."""
    from stream_processors.app import create_app

    with tempfile.TemporaryDirectory() as scratch:  # create_app makes its datadir
        app = create_app(dataclasses.replace(settings, home=Path(scratch)))
        names = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    names.add(FAUST_LEADER_TOPIC.format(app=settings.faust_app_id))
    return sorted(names & existing)


def reset_state(settings: Settings, kafka: Kafka) -> None:
    """Pipeline stopped, its topics, tables, objects and worker state wiped, topics recreated."""
    stopped = pipeline_down(settings)
    log(f"pipeline stopped ({', '.join(stopped) or 'nothing was running'}); wiping its state")
    existing = kafka.list_topics()
    ours = [settings.topic_uploads, settings.topic_uploads_dlq, settings.topic_features,
            settings.topic_matches, settings.topic_decisions, settings.topic_index]
    doomed = sorted({t for t in ours if t in existing} | set(faust_topics(settings, existing)))
    kafka.delete_topics(doomed)
    deadline = time.monotonic() + TOPIC_DELETE_TIMEOUT_SECONDS
    while (left := set(doomed) & kafka.list_topics()):
        if time.monotonic() > deadline:
            raise BenchError(f"topics {sorted(left)} still there {TOPIC_DELETE_TIMEOUT_SECONDS} s "
                             "after their deletion")
        time.sleep(POLL_SECONDS)
    # The broker drops a group's offsets of a deleted topic some moments after the deletion;
    # left there, they would tell the completion check the blob sink is already at the end.
    while (stale := kafka.group_offsets(settings.blob_sink_group, settings.topic_decisions)):
        if time.monotonic() > deadline:
            raise BenchError(f"group {settings.blob_sink_group} kept offsets {stale} of the "
                             f"deleted {settings.topic_decisions} for "
                             f"{TOPIC_DELETE_TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)
    ensure_topics(settings)
    _reset_tables(settings)
    _empty_bucket(settings)
    shutil.rmtree(settings.data_dir / "faust" / settings.faust_app_id, ignore_errors=True)


def _reset_tables(settings: Settings) -> None:
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )]
        if tables:
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            ))
    migrate(settings.pg_dsn)


def _empty_bucket(settings: Settings) -> None:
    client = Minio(settings.s3_endpoint, access_key=settings.s3_access_key,
                   secret_key=settings.s3_secret_key, secure=settings.s3_secure)
    if not client.bucket_exists(settings.s3_bucket):
        client.make_bucket(settings.s3_bucket)
        return
    doomed = (DeleteObject(o.object_name) for o in
              client.list_objects(settings.s3_bucket, recursive=True) if o.object_name)
    errors = list(client.remove_objects(settings.s3_bucket, doomed))
    if errors:
        raise BenchError(f"emptying bucket {settings.s3_bucket}: {len(errors)} objects not "
                         f"deleted, first: {errors[0]}")


def start_pipeline(settings: Settings, workers: int) -> None:
    """``picnix pipeline up`` returns once every process consumes (or fails with a log tail)."""
    argv = [sys.executable, "-m", "infra.cli", "pipeline", "up", "--workers", str(workers)]
    result = subprocess.run(argv, env={**os.environ, **settings.to_env()}, capture_output=True,
                            text=True, check=False, timeout=PIPELINE_UP_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv[2:])} exited {result.returncode}:\n"
                         f"{result.stdout[-2000:]}{result.stderr[-4000:]}")


# --------------------------------------------------------------------------------------------
# Progress, cheaply


@dataclass(frozen=True)
class Progress:
    posts: int
    images: int
    dlq_records: int
    uploads_published: int
    sinks_caught_up: bool

    @property
    def handled(self) -> int:
        return self.posts + self.dlq_records


class Probe:
    """One poll: two counts in Postgres, end offsets and group offsets in Kafka."""

    def __init__(self, settings: Settings, kafka: Kafka) -> None:
        self._settings = settings
        self._kafka = kafka
        self._conn = psycopg.connect(settings.pg_dsn, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def counts(self) -> tuple[int, int]:
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM images)"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def poll(self) -> Progress:
        s = self._settings
        posts, images = self.counts()
        decisions_end = self._kafka.end_offsets(s.topic_decisions)
        pg: dict[int, int] = dict(self._conn.execute(
            "SELECT partition, next_offset FROM sink_offsets WHERE consumer = %s AND topic = %s",
            (PG_CONSUMER, s.topic_decisions),
        ).fetchall())
        blob = self._kafka.group_offsets(s.blob_sink_group, s.topic_decisions)
        caught_up = all(
            end == 0 or (pg.get(p, 0) >= end and blob.get(p, 0) >= end)
            for p, end in decisions_end.items()
        )
        return Progress(
            posts=posts, images=images,
            dlq_records=sum(self._kafka.end_offsets(s.topic_uploads_dlq).values()),
            uploads_published=sum(self._kafka.end_offsets(s.topic_uploads).values()),
            sinks_caught_up=caught_up,
        )


@dataclass
class Producer:
    """``picnix replay`` as a child process; its CPU comes from wait4 when it exits."""

    proc: subprocess.Popen[bytes]
    cpu_seconds: float = 0.0
    exited: bool = False

    @classmethod
    def start(cls, settings: Settings, manifest: Path, limit: int, rate: float | None) -> Producer:
        argv = [sys.executable, "-m", "infra.cli", "replay", str(manifest), "--limit", str(limit)]
        if rate:
            argv += ["--rate", str(rate)]
        out = log_path(settings, "bench-replay").open("ab")
        with out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **settings.to_env()})
        return cls(proc)

    def check(self) -> bool:
        """True once the producer has exited (successfully; a failure raises)."""
        if self.exited:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exited = True
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        if self.proc.returncode != 0:
            raise BenchError(f"picnix replay exited {self.proc.returncode}; see the end of "
                             "bench-replay.log in the pipeline's log dir")
        return True


def drain(
    settings: Settings, probe: Probe, producer: Producer, *,
    idle_timeout: float | None, deadline_after_publish: float | None, what: str,
) -> tuple[Progress, float, bool]:
    """Poll until every published upload is decided (or dead-lettered) and both sinks are at
    the decision log's end. Returns the last progress, its time and whether it completed."""
    last_change = time.monotonic()
    last_handled = -1
    last_print = 0.0
    published_at: float | None = None
    while True:
        now = time.monotonic()
        if producer.check() and published_at is None:
            published_at = now
        progress = probe.poll()
        if published_at is not None and progress.sinks_caught_up and (
            progress.handled >= progress.uploads_published
        ):
            return progress, now, True
        if progress.handled != last_handled:
            last_handled, last_change = progress.handled, now
        if now - last_print > PROGRESS_SECONDS:
            last_print = now
            log(f"{what}: {progress.handled}/{progress.uploads_published} handled, "
                f"{progress.images} stored")
        if idle_timeout is not None and now - last_change > idle_timeout:
            raise BenchError(f"{what}: nothing decided for {idle_timeout:.0f} s at "
                             f"{progress}; see the logs in {logs_dir(settings)}")
        if (deadline_after_publish is not None and published_at is not None
                and now - published_at > deadline_after_publish):
            return progress, now, False
        time.sleep(POLL_SECONDS)


# --------------------------------------------------------------------------------------------
# The run


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_workload(args: argparse.Namespace, settings: Settings) -> Workload:
    cache = args.cache_dir or settings.home / "bench"
    phase2 = math.ceil(args.rate * args.phase2_seconds)
    jobs = os.cpu_count() or 1
    if args.workload == "synthetic":
        return build_synthetic(cache, args.seed, args.synthetic_count, phase2)
    crawl = fetch(settings, "openclipart").manifest
    workload = build_full(cache, args.seed, crawl, args.dev_manifest, jobs)
    if workload.phase2_count < phase2:
        raise WorkloadError(f"phase 2 offers {phase2} uploads, the workload keeps "
                            f"{workload.phase2_count} for it: lower --rate or --phase2-seconds")
    return workload


def code_version() -> dict[str, Any]:
    """The commit measured, and the files that differed from it: a figure names its code."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, check=True, timeout=GIT_TIMEOUT_SECONDS).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=repo, capture_output=True, text=True, check=True,
                                timeout=GIT_TIMEOUT_SECONDS).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"no git version for {repo}: {exc}")
        return {"commit": None, "modified": []}
    return {"commit": head, "modified": sorted(line[3:] for line in status.splitlines())}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    started = time.monotonic()
    code = code_version()  # at the start: the code the pipeline processes are started from
    workload = build_workload(args, settings)
    log(f"workload {workload.root} ({'reused' if workload.reused else 'built'}): "
        f"phase 1 {workload.phase1_count}, phase 2 {workload.phase2_count}, {workload.kinds}")
    phase1_limit = min(args.limit or workload.phase1_count, workload.phase1_count)
    phase2_count = min(math.ceil(args.rate * args.phase2_seconds), workload.phase2_count)
    ensure_stack(settings)
    with Kafka(settings) as kafka:
        reset_state(settings, kafka)
        start_pipeline(settings, args.workers)
        log(f"pipeline up with {args.workers} workers; phase 1: {phase1_limit} uploads")
        probe = Probe(settings, kafka)
        try:
            result = _phases(args, settings, kafka, probe, workload, phase1_limit,
                             phase2_count, started)
        finally:
            probe.close()
    return {"code": code, **result}


def _phases(
    args: argparse.Namespace, settings: Settings, kafka: Kafka, probe: Probe,
    workload: Workload, phase1_limit: int, phase2_count: int, started: float,
) -> dict[str, Any]:
    topics = [settings.topic_uploads, settings.topic_uploads_dlq, settings.topic_features,
              settings.topic_decisions, *faust_topics(settings, kafka.list_topics())]
    warm_csv, main_csv = split_manifest(workload.phase1, args.rss_after, phase1_limit)
    warm = Producer.start(settings, warm_csv, args.rss_after, None)
    log(f"warm-up: {args.rss_after} uploads, drained before phase 1 is measured")
    drain(settings, probe, warm, idle_timeout=args.idle_timeout, deadline_after_publish=None,
          what="warm-up")
    # Both RSS samples are taken drained (no backlog in the consumers' buffers), so the growth
    # between them is what the images stored in between left behind.
    warm_stored = probe.counts()[1]
    before = bench_stats.sample_groups(settings)
    disk_before = bench_stats.disk_usage(settings, topics)
    bench_cpu_before = time.process_time()
    uploads_before = kafka.end_offsets(settings.topic_uploads)

    producer = Producer.start(settings, main_csv, phase1_limit - args.rss_after, None)
    progress1, done_at, _ = drain(settings, probe, producer, idle_timeout=args.idle_timeout,
                                  deadline_after_publish=None, what="phase 1")
    done_wall = time.time() - (time.monotonic() - done_at)
    after = bench_stats.sample_groups(settings)
    bench_cpu = time.process_time() - bench_cpu_before
    disk_after = bench_stats.disk_usage(settings, topics)
    stored1 = progress1.images - warm_stored
    uploads_end = kafka.end_offsets(settings.topic_uploads)
    uploads1 = sum(uploads_end.values()) - sum(uploads_before.values())
    firsts = {p: min(end, uploads_before[p] + 1) for p, end in uploads_end.items()}
    first_ts = min(ts for _k, ts, _v in kafka.read(settings.topic_uploads, uploads_before,
                                                   firsts))
    phase1_seconds = done_wall - first_ts / MS
    log(f"phase 1: {uploads1} uploads in {phase1_seconds:.1f} s "
        f"({uploads1 / phase1_seconds:.1f}/s), {stored1} images stored")

    decisions_start = kafka.end_offsets(settings.topic_decisions)
    producer2 = Producer.start(settings, workload.phase2, phase2_count, args.rate)
    log(f"phase 2: {phase2_count} uploads offered at {args.rate:g}/s")
    progress2, _, drained = drain(settings, probe, producer2, idle_timeout=None,
                                  deadline_after_publish=args.drain_timeout, what="phase 2")
    waited_until_ms = time.time() * MS
    latency = _latency(kafka, settings, uploads_end, decisions_start, waited_until_ms)
    latency["offered_per_s"] = args.rate
    latency["drained"] = drained

    rss_end = bench_stats.sample_groups(settings)
    totals = _totals(settings, kafka, probe)
    floor_paths = _floor_sample(workload.phase1, phase1_limit, args.floor_sample)
    log(f"extract floor over {len(floor_paths)} phase-1 images on {args.floor_processes} "
        "processes")
    floor = bench_stats.extract_floor(settings, floor_paths, args.floor_processes)
    if floor.seconds < SCRAPE_WAIT_SECONDS:
        time.sleep(SCRAPE_WAIT_SECONDS - floor.seconds)
    stages = worker_stage_means(settings)
    split = decide_split(settings)

    cpu = {g: (after[g].cpu_seconds - before[g].cpu_seconds) * MS / uploads1 for g in after}
    cpu["producer"] = producer.cpu_seconds * MS / uploads1
    order = ("worker", "sinks", "producer", "kafka", "postgres", "minio", "prometheus")
    cpu_ms = {g: round(cpu.get(g, 0.0), 2) for g in order}
    cpu_ms["total"] = round(sum(cpu.get(g, 0.0) for g in order), 2)

    def per_stored(grown: float) -> float | None:
        return round(grown / stored1) if stored1 > 0 else None

    result: dict[str, Any] = {
        "workload": args.workload,
        "workers": args.workers,
        "uploads": totals["uploads"],
        "warmup_uploads": args.rss_after,
        "phase1_uploads": uploads1,
        "phase1_images_stored": stored1,
        "phase1_seconds": round(phase1_seconds, 2),
        "uploads_per_s": round(uploads1 / phase1_seconds, 2),
        "latency_ms": latency,
        "cpu_ms_per_upload": cpu_ms,
        "bench_poller_cpu_ms_per_upload": round(bench_cpu * MS / uploads1, 2),
        "worker_stage_ms_mean": stages,
        **split,
        "worker_rss_bytes_per_stored": per_stored(
            after["worker"].rss_bytes - before["worker"].rss_bytes),
        "sink_rss_bytes_per_stored": per_stored(
            after["sinks"].rss_bytes - before["sinks"].rss_bytes),
        "rss_bytes": {g: {"after_warmup": before[g].rss_bytes,
                          "after_phase1": after[g].rss_bytes, "end": rss_end[g].rss_bytes}
                      for g in ("worker", "sinks")},
        "disk_bytes_per_stored": {k: per_stored(disk_after[k] - disk_before[k])
                                  for k in disk_after},
        "extract_floor_per_s": round(floor.per_s, 2),
        "extract_floor": {"images": floor.images, "extracted": floor.extracted,
                          "seconds": round(floor.seconds, 2), "processes": floor.processes},
        "images_stored": totals["images_stored"],
        "decisions": totals["decisions"],
        "bytes_saved_ratio": totals["bytes_saved_ratio"],
        "dlq": totals["dlq"],
        "dlq_by_reason": totals["dlq_by_reason"],
        "undecided": totals["uploads"] - sum(totals["decisions"].values()) - totals["dlq"],
        "phase2_handled": progress2.handled - progress1.handled,
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result


def split_manifest(manifest: Path, warm: int, limit: int) -> tuple[Path, Path]:
    """The first ``warm`` rows and the rows up to ``limit``, as manifests beside the original
    (so relative paths, and the upload ids replay derives from them, stay the same)."""
    if not 0 < warm < limit:
        raise BenchError(f"the warm-up ({warm} uploads) must be shorter than phase 1 ({limit})")
    with manifest.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:limit + 1]
    out = []
    for name, part in (("warmup", body[:warm]), ("main", body[warm:])):
        path = manifest.with_name(f"{manifest.stem}-{name}-{warm}-{limit}.csv")
        with path.open("w", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows([header, *part])
        out.append(path)
    return out[0], out[1]


def _latency(
    kafka: Kafka, settings: Settings, uploads_start: dict[int, int],
    decisions_start: dict[int, int], waited_until_ms: float,
) -> dict[str, Any]:
    uploads = {
        k: ts for k, ts, _v in kafka.read(settings.topic_uploads, uploads_start,
                                          kafka.end_offsets(settings.topic_uploads)) if k
    }
    decided: dict[bytes, int] = {}
    for k, ts, _v in kafka.read(settings.topic_decisions, decisions_start,
                                kafka.end_offsets(settings.topic_decisions)):
        if k in uploads and k not in decided:
            decided[k] = ts
    dead = _dead_letter_ids(kafka, settings)
    values, censored = [], 0
    for key, ts in uploads.items():
        if key in decided:
            values.append(float(decided[key] - ts))
        elif key.decode() not in dead:
            values.append(waited_until_ms - ts)
            censored += 1
    out: dict[str, Any] = {f"p{q}": round(percentile(values, q), 1) for q in PERCENTILES}
    stamps = sorted(uploads.values())
    span_s = (stamps[-1] - stamps[0]) / MS if len(stamps) > 1 else 0.0
    out.update({"uploads": len(uploads), "decided": len(decided), "censored": censored,
                "max": round(max(values), 1) if values else 0.0,
                "published_per_s": round((len(stamps) - 1) / span_s, 2) if span_s else None})
    return out


def worker_stage_means(settings: Settings) -> dict[str, float | None]:
    """Mean wall time per upload of the workers' extract and decide stages, in ms, from
    Prometheus (every worker is scraped there): what part of a worker's time each stage takes."""
    out: dict[str, float | None] = {}
    for stage in STAGES:
        query = f"sum(picnix_{stage}_seconds_sum) / sum(picnix_{stage}_seconds_count)"
        url = f"{settings.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        status, body = http_get(url, timeout=5.0)
        value = None
        if status == HTTP_OK:
            found = json.loads(body).get("data", {}).get("result", [])
            value = round(float(found[0]["value"][1]) * MS, 2) if found else None
        if value is None or math.isnan(value):
            log(f"Prometheus has no {stage} timings ({status}): {query}")
            value = None
        out[stage] = value
    return out


def _prometheus(settings: Settings, query: str) -> list[dict[str, Any]]:
    url = f"{settings.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    status, body = http_get(url, timeout=5.0)
    if status != HTTP_OK:
        raise BenchError(f"Prometheus answered {status} to {query}: {body[:200]!r}")
    found: list[dict[str, Any]] = json.loads(body).get("data", {}).get("result", [])
    return found


def decide_split(settings: Settings) -> dict[str, Any]:
    """The split decide from the workers' histograms over the whole run: the sequential
    commit's and the parallel match's quantiles (ms, interpolated within the histogram's
    buckets), how many commits evaluated again, how far behind the commit the matches' replicas
    were (index-log positions, p50/p99), and each worker's share of the uploads (extracted and
    matched, by its metrics endpoint)."""
    out: dict[str, Any] = {}
    for prefix, metric, scale in (
        ("commit_ms", "picnix_commit_seconds", MS),
        ("match_ms", "picnix_match_seconds", MS),
        ("match_lag_positions", "picnix_match_lag_positions", 1.0),
        ("catch_up_positions", "picnix_match_catch_up_positions", 1.0),
    ):
        for q in QUANTILES:
            query = f"histogram_quantile({q}, sum by (le) ({metric}_bucket))"
            found = _prometheus(settings, query)
            value = float(found[0]["value"][1]) if found else math.nan
            out[f"{prefix}_p{round(q * 100)}"] = None if math.isnan(value) else round(
                value * scale, 3)
    # the share of commits whose match was settled in step: no change since to test
    found = _prometheus(settings, 'sum(picnix_match_lag_positions_bucket{le="0.0"}) / '
                                  "sum(picnix_match_lag_positions_count)")
    out["match_lag_zero_share"] = round(float(found[0]["value"][1]), 4) if found else None
    for name, metric in (("commit_reevaluated", "picnix_commit_reevaluated_total"),
                         ("commit_checks_run", "picnix_commit_checks_total"),
                         ("commit_index_queried", "picnix_commit_index_queries_total"),
                         ("catch_up_reevaluated", "picnix_match_catch_up_reevaluated_total")):
        found = _prometheus(settings, f"sum({metric})")
        out[name] = int(float(found[0]["value"][1])) if found else 0
    for name, metric in (("extracted_by_worker", "picnix_uploads_total"),
                         ("matched_by_worker", "picnix_match_seconds_count")):
        found = _prometheus(settings, f"sum by (instance) ({metric})")
        out[name] = {r["metric"].get("instance", "?"): int(float(r["value"][1])) for r in found}
    return out


def _dead_letter_ids(kafka: Kafka, settings: Settings) -> set[str]:
    records = kafka.read(settings.topic_uploads_dlq, {},
                         kafka.end_offsets(settings.topic_uploads_dlq))
    ids = set()
    for _k, _ts, value in records:
        with contextlib.suppress(SchemaError):
            letter = DeadLetterEvent.from_record(value)
            if letter.upload_id:
                ids.add(letter.upload_id)
    return ids


def _totals(settings: Settings, kafka: Kafka, probe: Probe) -> dict[str, Any]:
    letters: list[DeadLetterEvent] = []
    for _k, _ts, value in kafka.read(settings.topic_uploads_dlq, {},
                                     kafka.end_offsets(settings.topic_uploads_dlq)):
        with contextlib.suppress(SchemaError):
            letters.append(DeadLetterEvent.from_record(value))
    with psycopg.connect(settings.pg_dsn) as conn:
        decisions = dict.fromkeys((k.value for k in DecisionKind), 0)
        decisions.update({str(d): int(n) for d, n in conn.execute(
            "SELECT decision, count(*) FROM posts GROUP BY decision")})
        # stored: the images' bytes and those of the copies that keep their own (the report's)
        row = conn.execute(
            "SELECT (SELECT count(*) FROM images), (SELECT coalesce(sum(byte_size), 0) FROM"
            f" posts), {STORED_BYTES_SQL}"
        ).fetchone()
        assert row is not None
        ids = sorted({e.upload_id for e in letters if e.upload_id})
        posted = {r[0] for r in conn.execute(
            "SELECT post_id FROM posts WHERE post_id = ANY(%s)", (ids,))}
    unposted = [i for i in ids if i not in posted]
    anonymous = sum(1 for e in letters if not e.upload_id)
    uploaded, stored_bytes = int(row[1]), int(row[2])
    return {
        "uploads": sum(kafka.end_offsets(settings.topic_uploads).values()),
        "decisions": decisions,
        "images_stored": int(row[0]),
        "bytes_saved_ratio": round(1 - stored_bytes / uploaded, 4) if uploaded else 0.0,
        "dlq": len(unposted) + anonymous,
        "dlq_by_reason": dict(Counter(e.reason for e in letters)),
    }


def _floor_sample(manifest: Path, limit: int, sample: int) -> list[Path]:
    paths = list(manifest_paths(manifest, limit))
    if len(paths) <= sample:
        return paths
    step = len(paths) / sample
    return [paths[int(i * step)] for i in range(sample)]


def summary(result: dict[str, Any]) -> str:
    lat, cpu = result["latency_ms"], result["cpu_ms_per_upload"]
    parts = ", ".join(f"{k} {v}" for k, v in cpu.items() if k != "total")
    return "\n".join([
        f"{result['uploads']} uploads, {result['workers']} workers, {result['images_stored']} "
        f"images stored, decisions {result['decisions']}, dlq {result['dlq']}",
        f"throughput {result['uploads_per_s']} uploads/s (phase 1: {result['phase1_uploads']} "
        f"in {result['phase1_seconds']} s); extract floor {result['extract_floor_per_s']}/s",
        f"latency at {lat['offered_per_s']}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms "
        f"({lat['censored']} censored)",
        f"CPU per upload {cpu['total']} ms: {parts}; worker stages (wall mean, ms) "
        f"{result['worker_stage_ms_mean']}",
        f"RSS per stored image: worker {result['worker_rss_bytes_per_stored']} B, sinks "
        f"{result['sink_rss_bytes_per_stored']} B; disk {result['disk_bytes_per_stored']}",
        f"bytes saved {result['bytes_saved_ratio']:.1%}",
    ])


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/bench_pipeline.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="Faust workers (default: one per core)")
    p.add_argument("--limit", type=int, default=0, help="phase 1 uploads at most (0: all)")
    p.add_argument("--workload", choices=["full", "synthetic"], default="full",
                   help="full: openclipart + re-uploads + dev + large photos; synthetic: "
                        "generated pictures only (no download)")
    p.add_argument("--synthetic-count", type=int, default=DEFAULT_SYNTHETIC_COUNT)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="phase 2 uploads/s")
    p.add_argument("--phase2-seconds", type=float, default=DEFAULT_PHASE2_SECONDS)
    p.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT_SECONDS,
                   help="seconds phase 2 waits for decisions after its last publish")
    p.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_SECONDS)
    p.add_argument("--rss-after", type=int, default=DEFAULT_RSS_AFTER,
                   help="warm-up uploads, drained before phase 1's CPU, RSS and disk are "
                        "measured from there on")
    p.add_argument("--floor-sample", type=int, default=DEFAULT_FLOOR_SAMPLE,
                   help="phase-1 images the extract floor runs over")
    p.add_argument("--floor-processes", type=int, default=os.cpu_count() or 1)
    p.add_argument("--dev-manifest", type=Path, default=DEV_MANIFEST.resolve())
    p.add_argument("--cache-dir", type=Path, help="workload cache (default: PICNIX_HOME/bench)")
    p.add_argument("--prepare-only", action="store_true",
                   help="build (or find) the workload and stop; needs no stack")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    args = parse_args(argv, settings)
    try:
        if args.prepare_only:
            workload = build_workload(args, settings)
            print(f"workload {workload.root}: phase 1 {workload.phase1_count}, phase 2 "
                  f"{workload.phase2_count}, {workload.kinds}")
            return 0
        result = run(args, settings)
    except (BenchError, WorkloadError) as exc:
        print(f"bench_pipeline: {exc}", file=sys.stderr)
        return 1
    print(summary(result), file=sys.stderr)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
