"""Schemathesis against the API's OpenAPI schema: no request the schema allows (and the
fuzzed ones it derives) gets a 5xx from a running server. The server runs beside the module's
pipeline (its workers answer /v1/search) on a namespace of its own that holds no decisions:
the API must answer well whatever the pipeline has decided."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from infra.settings import Settings
from tests.conftest import free_port
from tests.e2e.api_server import running_server
from web.app import create_app
from web.keys import Role, create_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclasses.dataclass(frozen=True)
class Target:
    settings: Settings
    key: str


@pytest.fixture(scope="module")
def fuzz_target(pipeline: Settings) -> Iterator[Target]:
    # a server of its own with a rate limit far above what the fuzzer sends: 429s would hide
    # the routes behind them
    served = dataclasses.replace(
        pipeline, http_port=free_port(), api_rate_per_minute=10**7, api_rate_burst=10**6
    )
    key = create_key(served.pg_dsn, "fuzzer", Role.OPERATOR).plaintext
    with running_server(served):
        yield Target(served, key)


# The schema the server serves at /openapi.json, built by the same factory without starting it
# (schemathesis' lazy fixture loader reads a node attribute pytest 9 no longer has).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, fuzz_target: Target) -> None:
    response = case.call(
        base_url=fuzz_target.settings.http_url,
        headers={"Authorization": f"Bearer {fuzz_target.key}"},
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:800]}"
    )
