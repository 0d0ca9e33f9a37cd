"""The whole flow against the real stack: replay → Kafka → Faust → Postgres + MinIO."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg
import pytest
from skimage import data

from infra.consumer_lag import watched_groups
from infra.settings import Settings
from producers.replay import ReplaySummary, discover, replay, upload_id_for
from scripts.make_sample_dataset import SampleDataset
from sinks.blob_keys import blob_key
from sinks.object_store import ObjectStore
from sinks.report import build_report, wait_drained
from stream_processors.engine.decision import KEEP_OWN_BYTES_SHARE
from tests.e2e.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _snapshot(settings: Settings) -> dict[str, object]:
    with psycopg.connect(settings.pg_dsn) as conn:
        tables = {
            name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for name in ("posts", "images", "clusters", "cluster_members", "matches", "alerts")
        }
        tables["ref_total"] = conn.execute("SELECT sum(ref_count) FROM images").fetchone()[0]  # type: ignore[index]
    tables["objects"] = sorted(ObjectStore(settings).list_keys())
    return tables


def _decisions_end(settings: Settings) -> int:
    from aiokafka import TopicPartition

    from infra.kafka_clients import manual_consumer

    async def end_offset() -> int:
        consumer = manual_consumer(settings, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(settings.topic_decisions, 0)
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    return asyncio.run(end_offset())


def _wait_sink_reaches(settings: Settings, target: int, timeout: float = 120.0) -> None:
    """Wait until the decisions log holds ``target`` records and the Postgres sink wrote them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end = _decisions_end(settings)
        with psycopg.connect(settings.pg_dsn) as conn:
            row = conn.execute(
                "SELECT next_offset FROM sink_offsets WHERE topic = %s", (settings.topic_decisions,)
            ).fetchone()
        if end >= target and row and row[0] == end:
            return
        time.sleep(1.0)
    raise AssertionError(f"{settings.topic_decisions}: sink did not reach offset {target}")


@pytest.fixture(scope="module")
def replayed(pipeline: Settings, sample_dataset: SampleDataset) -> ReplaySummary:
    """The sample replayed once into the session's fresh namespace, drained."""
    items = discover(sample_dataset.root)
    assert len(items) >= 30
    summary = asyncio.run(replay(pipeline, items, progress=None))
    assert summary.published == len(items)
    assert wait_drained(pipeline, summary.upload_ids, idle_timeout=120) == 0
    return summary


def test_replay_stores_each_image_once_and_references_duplicates(
    pipeline: Settings, sample_dataset: SampleDataset, replayed: ReplaySummary
) -> None:
    settings = pipeline
    summary = replayed
    items = discover(sample_dataset.root)

    group_of = {}
    with sample_dataset.manifest.open() as fh:
        for row in csv.DictReader(fh):
            data = (sample_dataset.root / row["path"]).read_bytes()
            group_of[upload_id_for(row["path"], data)] = row["group_id"]

    with psycopg.connect(settings.pg_dsn) as conn:
        posts = conn.execute("SELECT post_id, image_id, decision FROM posts").fetchall()
        images = conn.execute("SELECT image_id, sha256, ref_count FROM images").fetchall()
        alerts = conn.execute("SELECT post_id, author, original_author FROM alerts").fetchall()
        kept = {r[0] for r in conn.execute(
            "SELECT own_blob_key FROM matches WHERE own_blob_key IS NOT NULL")}

    # one post row per upload
    assert sorted(p[0] for p in posts) == sorted(summary.upload_ids)
    # one MinIO object per stored image, content-addressed, and one per copy that keeps its own
    # bytes (it added content of its own)
    keys = set(ObjectStore(settings).list_keys())
    assert keys == {blob_key(sha) for _, sha, _ in images} | kept
    assert len(keys) == len(images) + len(kept)
    # every duplicate post references an image of its own group
    duplicates = [p for p in posts if p[2] == "duplicate-reference"]
    assert duplicates, "the sample has exact copies: at least those must be references"
    for post_id, image_id, _ in duplicates:
        assert group_of[post_id] == group_of[image_id], f"{post_id} references a foreign image"
    # reference counts add up to the posts
    assert sum(r for _, _, r in images) == len(posts)
    # copies by someone else raise alerts naming both authors
    assert all(author != original for _, author, original in alerts)

    report = build_report(settings)
    assert report.posts == len(items)
    assert report.images == len(images) < len(items)
    assert report.bytes_in_object_store < report.bytes_uploaded
    assert report.saving_percent > 0


def test_replaying_the_same_events_changes_nothing(
    pipeline: Settings, sample_dataset: SampleDataset, replayed: ReplaySummary
) -> None:
    settings = pipeline
    items = discover(sample_dataset.root)
    # the namespace is fresh: the first replay made exactly one decision per upload
    _wait_sink_reaches(settings, len(items))
    before = _snapshot(settings)

    asyncio.run(replay(settings, items, progress=None))
    # decide re-emits its stored decision for every re-delivered upload; the sinks ignore them
    _wait_sink_reaches(settings, 2 * len(items))
    assert _snapshot(settings) == before


DASHBOARD = Path(__file__).resolve().parents[2] / "infra/grafana/picnix-dashboard.json"


def _prometheus_query(settings: Settings, expr: str) -> dict[str, Any]:
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        answer: dict[str, Any] = json.load(resp)
    return answer


def test_every_dashboard_panel_query_answers_from_the_real_prometheus(
    pipeline: Settings, replayed: ReplaySummary
) -> None:
    """Grafana is not installable here: each panel's query runs against the Prometheus that
    scraped this replay instead, and must be valid and return series."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert any("picnix_upload_to_decision_seconds" in e for e in exprs)
    for expr in exprs:

        def series(expr: str = expr) -> dict[str, Any] | None:
            answer = _prometheus_query(pipeline, expr)
            assert answer["status"] == "success", (expr, answer)
            return answer if answer["data"]["result"] else None

        wait_for(f"series for the panel query {expr}", series, timeout=60)


def test_consumer_lag_of_every_group_and_topic_reaches_the_real_prometheus(
    pipeline: Settings, replayed: ReplaySummary
) -> None:
    """``picnix serve`` reads each Kafka consumer group's lag from the broker; Prometheus holds
    one series per watched group and topic, and once the replay is consumed each reads 0."""
    wanted = {(g.group, topic) for g in watched_groups(pipeline) for topic in g.topics}

    def lags() -> dict[tuple[str, str], float] | None:
        answer = _prometheus_query(pipeline, "picnix_consumer_lag_records")
        found = {
            (s["metric"]["group"], s["metric"]["topic"]): float(s["value"][1])
            for s in answer["data"]["result"]
            if (s["metric"]["group"], s["metric"]["topic"]) in wanted
        }
        return found if set(found) == wanted and not any(found.values()) else None

    wait_for(f"zero consumer lag in Prometheus for {sorted(wanted)}", lags, timeout=60)


def test_alerts_counted_by_the_postgres_sink_match_the_alerts_table(
    pipeline: Settings, replayed: ReplaySummary
) -> None:
    """The sample's copies by another author raise alerts; the sink's counter, as Prometheus
    scraped it, says as many as the table holds (the second replay raised none)."""
    with psycopg.connect(pipeline.pg_dsn) as conn:
        (alerts,) = conn.execute("SELECT count(*) FROM alerts").fetchone()  # type: ignore[misc]
    assert alerts > 0, "the sample has exact copies by another author"

    def counted() -> float | None:
        result = _prometheus_query(
            pipeline, 'sum(picnix_alerts_total{job="picnix-pg-sink"})'
        )["data"]["result"]
        value = float(result[0]["value"][1]) if result else None
        return value if value == alerts else None

    wait_for(f"picnix_alerts_total = {alerts} in Prometheus", counted, timeout=60)


def _captioned_uploads(root: Path) -> dict[str, Path]:
    """A photo by alice, and two copies by bob: a JPEG re-encode and the same picture with a
    caption box pasted on (as in tests/unit/test_unexplained.py). The photo is scikit-image's
    stereo motorcycle, which the sample replayed before (scripts.make_sample_dataset) does not
    hold: its astronaut would make alice's upload a copy itself."""
    img = np.ascontiguousarray(cv2.cvtColor(data.stereo_motorcycle()[0], cv2.COLOR_RGB2BGR))
    captioned = img.copy()
    cv2.rectangle(captioned, (102, 25), (408, 76), (255, 255, 255), -1)
    cv2.putText(captioned, "SO MUCH WOW", (132, 63), cv2.FONT_HERSHEY_DUPLEX, 1.25, (0, 0, 0), 3,
                cv2.LINE_AA)
    paths = {
        "original": root / "original" / "alice" / "motorcycle.png",
        "reencode": root / "copies" / "bob" / "motorcycle-q40.jpg",
        "captioned": root / "copies" / "bob" / "motorcycle-caption.png",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(paths["original"]), img)
    cv2.imwrite(str(paths["reencode"]), img, [cv2.IMWRITE_JPEG_QUALITY, 40])
    cv2.imwrite(str(paths["captioned"]), captioned)
    return paths


def test_a_caption_copy_keeps_its_own_bytes_and_a_reencode_does_not(
    pipeline: Settings, replayed: ReplaySummary, tmp_path: Path
) -> None:
    """Both copies reference alice's original (a duplicate-reference, an IP-theft alert for
    bob); the captioned one also keeps its own bytes, under its own key, and saves nothing."""
    settings = pipeline
    paths = _captioned_uploads(tmp_path)
    # the original first and drained: the copies must find it stored
    for folder in ("original", "copies"):
        items = discover(tmp_path / folder)
        summary = asyncio.run(replay(settings, items, progress=None))
        assert wait_drained(settings, summary.upload_ids, idle_timeout=120) == 0
    ids = {
        name: upload_id_for(str(path.relative_to(tmp_path / path.parts[-3])), path.read_bytes())
        for name, path in paths.items()
    }
    sha = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}
    with psycopg.connect(settings.pg_dsn) as conn:
        rows = {
            r[0]: r[1:] for r in conn.execute(
                "SELECT p.post_id, p.decision, p.image_id, m.unexplained_share, m.own_blob_key"
                " FROM posts p LEFT JOIN matches m USING (post_id) WHERE p.post_id = ANY(%s)",
                (list(ids.values()),),
            )
        }
        alerted = {r[0] for r in conn.execute(
            "SELECT post_id FROM alerts WHERE post_id = ANY(%s)", (list(ids.values()),))}
        stored = conn.execute(
            "SELECT (SELECT sum(byte_size) FROM images) + (SELECT coalesce(sum(p.byte_size), 0)"
            " FROM matches m JOIN posts p USING (post_id) WHERE m.own_blob_key IS NOT NULL)"
        ).fetchone()
    original = ids["original"]
    assert rows[original][:2] == ("new-cluster", original)
    for name in ("reencode", "captioned"):
        decision, image_id, _, _ = rows[ids[name]]
        assert (decision, image_id) == ("duplicate-reference", original)
        assert ids[name] in alerted
    _, _, plain_share, plain_key = rows[ids["reencode"]]
    assert plain_share is not None and plain_share < KEEP_OWN_BYTES_SHARE and plain_key is None
    _, _, share, own_key = rows[ids["captioned"]]
    assert share >= KEEP_OWN_BYTES_SHARE and own_key == blob_key(sha["captioned"])
    keys = set(ObjectStore(settings).list_keys())
    assert {blob_key(sha["original"]), blob_key(sha["captioned"])} <= keys
    assert blob_key(sha["reencode"]) not in keys
    # the report counts the kept bytes as stored: they saved nothing
    assert stored is not None and build_report(settings).bytes_stored_db == stored[0]
