"""The local stack against the real services: healthy, provisioned, idempotent, observable."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from infra.settings import Settings
from infra.stack.kafka import Kafka
from infra.stack.manager import ServiceStatus, stack_status, stack_up
from infra.stack.minio import MinIO
from infra.stack.postgres import Postgres
from infra.stack.prometheus import Prometheus
from infra.stack.topics import describe_topic_configs, topic_specs

pytestmark = pytest.mark.integration

SERVICES = {"kafka", "minio", "postgres", "prometheus"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="module")
def statuses(settings: Settings) -> list[ServiceStatus]:
    return stack_up(settings)


def _pids(settings: Settings) -> dict[str, int | None]:
    return {
        "kafka": Kafka(settings)._pid(),
        "minio": MinIO(settings)._pid(),
        "postgres": Postgres(settings)._pid(),
        "prometheus": Prometheus(settings)._pid(),
    }


def test_every_service_healthy(statuses: list[ServiceStatus]) -> None:
    assert {s.name for s in statuses} == SERVICES
    unhealthy = [s for s in statuses if not s.healthy]
    assert not unhealthy, unhealthy
    assert all(s.endpoint for s in statuses)


def test_topics_exist_with_their_configs(settings: Settings, statuses: list[ServiceStatus]) -> None:
    specs = {s.name: s for s in topic_specs(settings)}
    configs = describe_topic_configs(settings, list(specs))
    uploads = configs[settings.topic_uploads]
    assert int(uploads["max.message.bytes"]) == settings.max_image_bytes + 1024 * 1024
    assert int(uploads["max.message.bytes"]) > settings.max_image_bytes
    assert uploads["retention.ms"] == "-1"
    assert int(configs[settings.topic_uploads_dlq]["max.message.bytes"]) > settings.max_image_bytes
    assert configs[settings.topic_features]["max.message.bytes"] == str(2 * 1024 * 1024)
    for name, spec in specs.items():
        for key, value in spec.configs.items():
            assert configs[name][key] == value, (name, key)


def test_postgres_role_and_database(settings: Settings, statuses: list[ServiceStatus]) -> None:
    import psycopg

    with psycopg.connect(settings.pg_dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (settings.pg_user, settings.pg_database)


def test_minio_bucket_exists(settings: Settings, statuses: list[ServiceStatus]) -> None:
    from minio import Minio

    client = Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
    )
    assert client.bucket_exists(settings.s3_bucket)


def test_second_stack_up_is_quick_and_changes_nothing(
    settings: Settings, statuses: list[ServiceStatus]
) -> None:
    before = _pids(settings)
    assert all(before.values()), before
    started = time.monotonic()
    again = stack_up(settings)
    elapsed = time.monotonic() - started
    assert _pids(settings) == before
    assert all(s.healthy for s in again), again
    assert elapsed < 15, f"a warm stack_up took {elapsed:.1f}s"
    assert {s.name: s.healthy for s in stack_status(settings)} == dict.fromkeys(SERVICES, True)


def test_prometheus_scrapes_its_targets(settings: Settings, statuses: list[ServiceStatus]) -> None:
    wanted = {
        "prometheus",
        "minio",
        "picnix-worker",
        "picnix-pg-sink",
        "picnix-blob-sink",
        "picnix-replay",
    }
    deadline = time.monotonic() + 30
    while True:
        url = f"{settings.prometheus_url}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success"
        targets = body["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        # The PicNix components may not run now; the services themselves must be scraped.
        if wanted <= set(health) and health["prometheus"] == "up" and health["minio"] == "up":
            return
        assert time.monotonic() < deadline, f"targets after 30s: {health}"
        time.sleep(1)
