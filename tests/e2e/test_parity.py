"""Parity: the split decide (match on every worker's replica, one sequential commit) makes exactly
the decisions one sequential decide makes in the commit's order, with 1 worker and with 2.

Each run replays the sample dataset through the real pipeline (Kafka, the worker processes, the
Postgres sink), then pairs of copies of new images published at the same moment on different
``picnix.features`` partitions: the hard case, where each copy is matched before the other is
committed. The commit's input log (``picnix.matches``) is then decided again, in its order, by
one in-process ``Decider``: every decision the pipeline emitted must be byte for byte the one
that sequential decide makes, and the Postgres rows those decisions imply must be there.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from skimage import data

from infra.kafka_clients import manual_consumer
from infra.settings import Settings
from producers.replay import discover, replay, upload_id_for
from schemas.events import (
    FEATURE_TOPIC_EVENTS,
    MATCH_TOPIC_EVENTS,
    DecisionEvent,
    MatchEvent,
    parse_event,
)
from scripts.make_sample_dataset import SampleDataset
from sinks.report import wait_drained
from stream_processors.decider import Decider, Emit
from stream_processors.engine.feature_store import MappingFeatureStore
from stream_processors.engine.method import build_method
from tests.conftest import fresh_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.parity]

# Bundled pictures the sample dataset does not hold, each published as two copies at once.
PAIR_SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "clock": data.clock,
    "text": data.text,
}


@dataclass(frozen=True)
class Run:
    """What one pipeline run left: the commit's input, the decisions log, the Postgres rows."""

    matches: list[tuple[int, bytes]]
    decisions: list[bytes]
    posts: dict[str, tuple[str, str]]  # post id -> (decision kind, image id)
    image_refs: dict[str, int]
    pairs: list[tuple[str, str]]


def _read_all(settings: Settings, topic: str) -> list[tuple[int, bytes]]:
    async def read() -> list[tuple[int, bytes]]:
        consumer = manual_consumer(settings, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            out: list[tuple[int, bytes]] = []
            while await consumer.position(tp) < end:
                for batch in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    out.extend((r.offset, r.value) for r in batch if r.value is not None)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _pair_files(root: Path, partitions: int) -> list[list[Path]]:
    """Two copies per picture (the PNG and a half-size JPEG), named so that their upload ids
    fall on different partitions of picnix.features."""
    out: list[list[Path]] = []
    for name, load in PAIR_SOURCES.items():
        rgb = load()
        if rgb.ndim == 2:
            rgb = np.stack([rgb] * 3, axis=-1)
        bgr = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        half = cv2.resize(bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        ok1, png = cv2.imencode(".png", bgr)
        ok2, jpg = cv2.imencode(".jpg", half, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok1 and ok2
        for attempt in range(100):
            stem = f"{name}-{attempt}"
            paths = [root / "erin" / f"{stem}.png", root / "frank" / f"{stem}.jpg"]
            parts = {
                _partition(upload_id_for(p.relative_to(root).as_posix(), b.tobytes()), partitions)
                for p, b in zip(paths, (png, jpg), strict=True)
            }
            if len(parts) == 2:
                break
        for path, blob in zip(paths, (png, jpg), strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob.tobytes())
        out.append(paths)
    return out


def _partition(upload_id: str, partitions: int) -> int:
    return (murmur2(upload_id.encode()) & 0x7FFFFFFF) % partitions


def _run(stack_settings: Settings, dataset: SampleDataset, workers: int, tmp: Path) -> Run:
    from infra.pipeline import pipeline_down, pipeline_up

    pair_root = tmp / f"pairs-{workers}"
    shutil.rmtree(pair_root, ignore_errors=True)
    with fresh_namespace(stack_settings) as settings:
        pipeline_up(settings, workers=workers)
        try:
            items = discover(dataset.root)
            summary = asyncio.run(replay(settings, items, progress=None))
            assert wait_drained(settings, summary.upload_ids, idle_timeout=120) == 0
            pair_paths = _pair_files(pair_root, settings.features_partitions)
            pairs: list[tuple[str, str]] = []
            for paths in pair_paths:  # each pair in one burst, after the rest is decided
                pair_items = [i for i in discover(pair_root) if i.path in paths]
                published = asyncio.run(replay(settings, pair_items, progress=None))
                assert wait_drained(settings, published.upload_ids, idle_timeout=120) == 0
                pairs.append((published.upload_ids[0], published.upload_ids[1]))
            matches = _read_all(settings, settings.topic_matches)
            decisions = [v for _, v in _read_all(settings, settings.topic_decisions)]
            with psycopg.connect(settings.pg_dsn) as conn:
                rows = conn.execute("SELECT post_id, decision, image_id FROM posts").fetchall()
                images = conn.execute("SELECT image_id, ref_count FROM images").fetchall()
        finally:
            pipeline_down(settings)
    return Run(
        matches=matches,
        decisions=decisions,
        posts={p: (kind, image) for p, kind, image in rows},
        image_refs=dict(images),
        pairs=pairs,
    )


def _sequential(matches: list[tuple[int, bytes]]) -> list[bytes]:
    """One in-process decide over the commit's input, in its order, at its offsets."""
    tables: tuple[dict[str, bytes], dict[str, bytes], dict[str, int]] = ({}, {}, {})
    decider = Decider(build_method("default", MappingFeatureStore({})), *tables)
    out: list[bytes] = []
    for offset, record in matches:
        event = parse_event(record, MATCH_TOPIC_EVENTS)
        if isinstance(event, MatchEvent):
            event = parse_event(event.feature, FEATURE_TOPIC_EVENTS)
        outcome = decider.handle(event, seq=offset)  # type: ignore[arg-type]
        if isinstance(outcome, Emit):
            out.append(outcome.event.to_record())
    return out


@pytest.fixture(scope="module")
def runs(
    stack_settings: Settings,
    sample_dataset: SampleDataset,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[int, Run]]:
    tmp = Path(tmp_path_factory.mktemp("parity"))
    yield {w: _run(stack_settings, sample_dataset, w, tmp) for w in (1, 2)}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_pipeline_decides_as_one_sequential_decide_in_the_commit_order(
    runs: dict[int, Run], workers: int
) -> None:
    run = runs[workers]
    assert run.decisions == _sequential(run.matches)


@pytest.mark.parametrize("workers", [1, 2])
def test_postgres_holds_the_rows_the_decisions_make(runs: dict[int, Run], workers: int) -> None:
    run = runs[workers]
    decided = [parse_event(d, (DecisionEvent,)) for d in run.decisions]
    expected = {d.upload_id: (d.decision.kind, d.decision.image_id) for d in decided}  # type: ignore[attr-defined]
    assert run.posts == expected
    refs: dict[str, int] = {}
    for _, image in expected.values():
        refs[image] = refs.get(image, 0) + 1
    assert run.image_refs == refs


@pytest.mark.parametrize("workers", [1, 2])
def test_two_copies_of_a_new_image_at_once_make_one_image_and_one_reference(
    runs: dict[int, Run], workers: int
) -> None:
    run = runs[workers]
    for first, second in run.pairs:
        kinds = sorted(run.posts[p][0] for p in (first, second))
        assert kinds == ["duplicate-reference", "new-cluster"], (first, second, kinds)
        images = {run.posts[p][1] for p in (first, second)}
        assert len(images) == 1 and images <= {first, second}


def test_with_two_workers_some_copy_was_matched_before_its_twin_was_committed(
    runs: dict[int, Run],
) -> None:
    """The hard case really happened: a replica matched a copy at a position from before the
    other copy's commit, and the commit still referenced it."""
    run = runs[2]
    position_of: dict[str, int] = {}
    committed_at: dict[str, int] = {}
    for offset, record in run.matches:
        event = parse_event(record, MATCH_TOPIC_EVENTS)
        if isinstance(event, MatchEvent):
            position_of[event.upload_id] = event.position
            committed_at[event.upload_id] = offset
    stale = [
        pair for pair in run.pairs
        for a, b in (pair, pair[::-1])
        if committed_at[a] < committed_at[b] and position_of[b] < committed_at[a]
    ]
    assert stale, "no copy was matched while its twin was in flight: the hard case was not run"


def test_one_and_two_workers_group_the_same_uploads_into_images(runs: dict[int, Run]) -> None:
    def groups(run: Run) -> set[frozenset[str]]:
        by_image: dict[str, set[str]] = {}
        for post, (_, image) in run.posts.items():
            by_image.setdefault(image, set()).add(post)
        return {frozenset(g) for g in by_image.values()}

    assert groups(runs[1]) == groups(runs[2])
