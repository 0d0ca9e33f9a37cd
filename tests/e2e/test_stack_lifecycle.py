"""The pipeline's own lifecycle on the real stack, tried as a new user would.

`pipeline up` starts W workers and returns once all consume, or fails with the log of the one
that died; `pipeline status` says which are down; a replay into a pipeline with no consumer is
refused; a worker whose table state is ahead of its log rebuilds it; waiting for the drain
says which stage stopped.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.pipeline import COMPONENTS, PipelineError, pipeline_down, pipeline_status, pipeline_up
from infra.settings import Settings
from infra.stack.process import log_path, stop_service
from producers.publisher import UploadPublisher, build_upload
from sinks.report import nothing_consumes, wait_drained
from tests.conftest import fresh_namespace
from tests.e2e.waiting import query, wait_for
from tests.imagegen import distinct_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BLOB_SINK = next(c for c in COMPONENTS if c.name == "picnix-blob-sink")
PROMETHEUS_TARGETS_TIMEOUT = 30.0


@pytest.fixture
def namespace(stack_settings: Settings) -> Iterator[Settings]:
    with fresh_namespace(stack_settings) as settings:
        try:
            yield settings
        finally:
            pipeline_down(settings)


def _publish(settings: Settings, post_id: str, seed: int) -> None:
    async def send() -> None:
        async with UploadPublisher(settings) as publisher:
            await publisher.publish(
                build_upload(post_id, "dana", post_id, distinct_png(seed), settings.max_image_bytes)
            )

    asyncio.run(send())


def _post(settings: Settings, post_id: str) -> bool:
    return bool(query(settings, "SELECT 1 FROM posts WHERE post_id = %s", (post_id,)))


def _worker_targets_up(settings: Settings) -> set[str]:
    with urllib.request.urlopen(f"{settings.prometheus_url}/api/v1/targets", timeout=5) as resp:
        targets = json.load(resp)["data"]["activeTargets"]
    return {
        t["labels"]["instance"] for t in targets
        if t["labels"].get("job") == "picnix-worker" and t["health"] == "up"
    }


def test_up_starts_w_workers_in_one_group_all_scraped(namespace: Settings) -> None:
    settings = namespace
    started = pipeline_up(settings, workers=2)
    assert started == [
        "picnix-worker", "picnix-worker-1", "picnix-pg-sink", "picnix-blob-sink", "picnix-api",
    ]
    statuses = pipeline_status(settings)
    assert [s.name for s in statuses] == started
    assert all(s.up for s in statuses), statuses

    async def members() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([settings.worker_group_id])
            return len(response.to_object()["groups"][0]["members"])
        finally:
            await admin.close()

    assert asyncio.run(members()) == 2
    ports = {f"127.0.0.1:{p}" for p in (settings.worker_metrics_port,
                                         settings.worker_metrics_port + 100)}
    wait_for("Prometheus scraping both workers", lambda: ports <= _worker_targets_up(settings),
             timeout=PROMETHEUS_TARGETS_TIMEOUT)

    # one sink down: status names it and fails
    stop_service(settings, BLOB_SINK.name, BLOB_SINK.marker)
    down = [s for s in pipeline_status(settings) if not s.up]
    assert [s.name for s in down] == ["picnix-blob-sink"]
    assert down[0].detail.startswith("DOWN")


def test_replay_is_refused_at_once_when_nothing_consumes(namespace: Settings) -> None:
    reason = nothing_consumes(namespace, drain=True)
    assert reason is not None and "no pipeline worker consumes" in reason
    assert namespace.worker_group_id in reason and "picnix pipeline up" in reason
    pipeline_up(namespace, workers=1)
    assert nothing_consumes(namespace, drain=True) is None


def test_up_fails_with_the_log_tail_of_a_process_that_died(namespace: Settings) -> None:
    with socket.socket() as squatter:  # the worker's metrics port is taken: it cannot start
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", namespace.worker_metrics_port))
        squatter.listen()
        with pytest.raises(PipelineError) as failed:
            pipeline_up(namespace, workers=1)
    message = str(failed.value)
    assert message.startswith("picnix-worker exited before it was ready")
    assert "Address already in use" in message
    assert str(log_path(namespace, "picnix-worker")) in message


def test_a_worker_whose_state_is_ahead_of_its_log_rebuilds_it(namespace: Settings) -> None:
    settings = namespace
    pipeline_up(settings, workers=1)
    _publish(settings, "ahead-1", 101)
    wait_for("the first post", lambda: _post(settings, "ahead-1"))
    pipeline_down(settings)

    async def delete_changelogs() -> list[str]:  # what a reset of Kafka alone leaves behind
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics()
                     if t.startswith(f"{settings.faust_app_id}-") and t.endswith("-changelog")]
            await admin.delete_topics(names)
            return names
        finally:
            await admin.close()

    assert asyncio.run(delete_changelogs())
    pipeline_up(settings, workers=1)  # Faust would stop here with a ConsistencyError
    assert "dropped, rebuilt from the changelog" in log_path(settings, "picnix-worker").read_text()
    _publish(settings, "ahead-2", 102)
    wait_for("a post after the rebuild", lambda: _post(settings, "ahead-2"))


def test_the_drain_wait_names_the_stage_that_stopped(
    namespace: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = namespace
    pipeline_up(settings, workers=1)
    stop_service(settings, BLOB_SINK.name, BLOB_SINK.marker)
    _publish(settings, "drain-1", 201)
    behind = wait_drained(settings, ["drain-1"], idle_timeout=5)
    assert behind == 1
    message = capsys.readouterr().err
    assert "pipeline did not drain after a replay of 1 uploads" in message
    assert f"blob sink at 0/1 of {settings.topic_decisions}" in message
    pipeline_up(settings, workers=1)
    assert wait_drained(settings, ["drain-1"], idle_timeout=30) == 0
    assert _post(settings, "drain-1")
