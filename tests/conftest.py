"""Session fixtures: the real local stack, with a namespace of its own per test session.

Each session gets its own topics, Faust app id, database and bucket, so tests never see the
demo's data nor a previous session's; the services themselves are started once by
``stack_up`` (idempotent) and shared.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from infra.namespaces import drop_namespace, free_port, namespaced
from infra.settings import Settings


def _namespaced(base: Settings, tag: str) -> Settings:
    prefix = f"picnix-test-{tag}"
    return namespaced(
        base,
        prefix,
        http_port=free_port(),  # the API server `pipeline up` starts must not need :8080
        pg_database=f"picnix_test_{tag}",
        s3_bucket=prefix,
    )


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """The local stack, started once per session (idempotent when it already runs)."""
    from infra.pipeline import pipeline_down
    from infra.stack.manager import stack_up

    base = Settings.from_env()
    # The pipeline components bind fixed metrics ports that Prometheus scrapes: stop any
    # pipeline (e.g. the demo's) so the tests' components can take them.
    pipeline_down(base)
    statuses = stack_up(base)
    unhealthy = [s for s in statuses if not s.healthy]
    assert not unhealthy, f"stack not healthy: {unhealthy}"
    return base


@contextmanager
def fresh_namespace(base: Settings) -> Iterator[Settings]:
    """Topics, database and bucket of their own, provisioned on the running stack, then dropped."""
    from infra.stack.manager import stack_up
    from sinks.migrate import migrate

    settings = _namespaced(base, uuid.uuid4().hex[:8])
    stack_up(settings)  # provisions the namespace's topics, database and bucket
    migrate(settings.pg_dsn)
    try:
        yield settings
    finally:
        drop_namespace(settings)  # a test run must not grow the stack forever
