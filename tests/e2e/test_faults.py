"""Faults in the middle of a replay: the final state equals a clean run's, nothing lost or doubled.

Each run gets a namespace of its own whose upload and features topics have one partition, and
the replay sends one upload at a time, so the order in which the commit sees uploads is the file
order in every run, and the clean and faulty final states can be compared row for row (ids,
references, clusters, objects), not only counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from infra.pipeline import COMPONENTS, pipeline_down, pipeline_up
from infra.settings import Settings
from infra.stack.manager import HEALTH_TIMEOUTS, services
from infra.stack.process import running_pid
from producers.replay import ReplaySummary, discover, replay
from scripts.make_sample_dataset import SampleDataset
from sinks.object_store import ObjectStore
from sinks.report import wait_drained
from tests.conftest import fresh_namespace
from tests.e2e.waiting import query, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.slow]

REPLAY_RATE = 10.0  # uploads/s: the sample takes ~6 s, long enough to break something midway
FAULT_AFTER_POSTS = 12
POSTGRES_DOWN_SECONDS = 15.0
# longer than the blob sink's upload-log read timeout (blob_sink.FETCH_TIMEOUT_MS), so a read
# of an upload record fails while the broker is down and the sink must retry it
KAFKA_DOWN_SECONDS = 15.0

Snapshot = dict[str, list[tuple[object, ...]]]


def snapshot(settings: Settings) -> Snapshot:
    """Every derived row and object, without log positions and timestamps."""
    state = {
        "posts": query(settings, "SELECT post_id, author, title, image_id, decision, byte_size"
                                 " FROM posts ORDER BY post_id"),
        "images": query(settings, "SELECT image_id, sha256, blob_key, byte_size, cluster_id,"
                                  " first_post_id, first_author, ref_count FROM images"
                                  " ORDER BY image_id"),
        "clusters": query(settings, "SELECT cluster_id, member_count FROM clusters"
                                    " ORDER BY cluster_id"),
        "cluster_members": query(settings, "SELECT image_id, cluster_id FROM cluster_members"
                                           " ORDER BY image_id"),
        "matches": query(settings, "SELECT post_id, image_id, round(distance::numeric, 6), method"
                                   " FROM matches ORDER BY post_id"),
        "alerts": query(settings, "SELECT post_id, image_id, author, original_author FROM alerts"
                                  " ORDER BY post_id"),
    }
    state["objects"] = [(key,) for key in sorted(ObjectStore(settings).list_keys())]
    return state


@dataclasses.dataclass
class Run:
    settings: Settings
    summary: ReplaySummary
    state: Snapshot
    at_fault: dict[str, int]

    def counts(self) -> dict[str, int]:
        return {table: len(rows) for table, rows in self.state.items()}


def _counts(settings: Settings) -> dict[str, int]:
    tables = ("posts", "images", "clusters", "matches", "alerts")
    counts = {t: int(query(settings, f"SELECT count(*) FROM {t}")[0][0]) for t in tables}
    counts["objects"] = len(ObjectStore(settings).list_keys())
    return counts


def _run(
    base: Settings, dataset: SampleDataset, fault: Callable[[Settings], None] | None
) -> Run:
    """Replay the sample into a fresh namespace, break something midway, drain, snapshot."""
    # one partition for uploads and features: match then sees them, and the commit decides
    # them, in file order even after a fault left a backlog (with several features partitions
    # a backlog is matched in any interleaving, a different but equally exact order)
    one = dataclasses.replace(base, uploads_partitions=1, features_partitions=1)
    with fresh_namespace(one) as settings:
        pipeline_up(settings)
        try:
            items = discover(dataset.root)
            result: list[ReplaySummary] = []
            publisher = threading.Thread(
                target=lambda: result.append(
                    asyncio.run(
                        replay(settings, items, progress=None, rate=REPLAY_RATE, in_flight=1)
                    )
                )
            )
            publisher.start()
            at_fault: dict[str, int] = {}
            if fault is not None:
                wait_for(
                    f"{FAULT_AFTER_POSTS} posts before the fault",
                    lambda: query(settings, "SELECT count(*) FROM posts")[0][0]
                    >= FAULT_AFTER_POSTS,
                )
                at_fault = _counts(settings)
                fault(settings)
            publisher.join(timeout=300)
            assert result, "the replay did not finish"
            summary = result[0]
            assert summary.published == len(items)
            assert wait_drained(settings, summary.upload_ids, idle_timeout=180) == 0
            # the blob sink may still be finishing the last objects of a batch
            wait_for(
                "every stored image's object",
                lambda: len(ObjectStore(settings).list_keys())
                == query(settings, "SELECT count(*) FROM images")[0][0],
            )
            return Run(settings, summary, snapshot(settings), at_fault)
        finally:
            pipeline_down(settings)


def _sigkill(settings: Settings, names: set[str]) -> None:
    for component in COMPONENTS:
        if component.name in names:
            pid = running_pid(settings, component.name, component.marker)
            assert pid, f"{component.name} is not running"
            os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)
    pipeline_up(settings)


def _restart_service(name: str, down_seconds: float = 0.0) -> Callable[[Settings], None]:
    def fault(settings: Settings) -> None:
        (service,) = (s for s in services(settings) if s.name == name)
        assert service.stop(), f"{name} was not running"
        time.sleep(down_seconds)
        service.start()
        service.wait_healthy(HEALTH_TIMEOUTS[name])

    return fault


FAULTS: dict[str, Callable[[Settings], None]] = {
    "sigkill-worker": lambda s: _sigkill(s, {"picnix-worker"}),
    "restart-kafka": _restart_service("kafka"),
    "stop-kafka-15s": _restart_service("kafka", KAFKA_DOWN_SECONDS),
    "stop-postgres-15s": _restart_service("postgres", POSTGRES_DOWN_SECONDS),
    "sigkill-sinks": lambda s: _sigkill(s, {"picnix-pg-sink", "picnix-blob-sink"}),
    "restart-minio": _restart_service("minio"),
}


@pytest.fixture(scope="module")
def clean_run(stack_settings: Settings, sample_dataset: SampleDataset) -> Run:
    return _run(stack_settings, sample_dataset, fault=None)


@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_fault_mid_replay_ends_in_the_clean_state(
    fault_name: str, stack_settings: Settings, sample_dataset: SampleDataset, clean_run: Run
) -> None:
    run = _run(stack_settings, sample_dataset, FAULTS[fault_name])
    # shown with `pytest -rP`: what the fault interrupted and what the run ended with
    print(f"{fault_name}: uploads {len(run.summary.upload_ids)}; at the fault {run.at_fault};"
          f" final {run.counts()}; clean run {clean_run.counts()}")
    posts = {row[0] for row in run.state["posts"]}
    assert posts == set(run.summary.upload_ids), "an upload was lost"
    assert len(run.state["posts"]) == len(run.summary.upload_ids), "a post was doubled"
    assert sum(int(str(r[7])) for r in run.state["images"]) == len(posts)
    for table, rows in clean_run.state.items():
        assert run.state[table] == rows, f"{table} differs from the clean run"
