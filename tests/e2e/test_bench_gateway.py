"""`scripts/bench_gateway.py` keeps working: a tiny run against the real stack.

Figures of a few dozen uploads mean nothing as a benchmark; this checks that the script starts
its own ``picnix serve`` with a fresh key on a namespace of its own and the hello-world beside
it, that every upload is accepted, that the JSON has every key with sane values, and that the
namespace is gone after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_gateway.py"
RUN_TIMEOUT_SECONDS = 300
COUNT = 40
KEYS = ("uploads_per_s", "p50_ms", "p99_ms", "accepted", "requests", "errors",
        "server_cpu_ms_per_upload", "client_cpu_ms_per_request")


def _bench_databases(settings: Settings) -> set[str]:
    with psycopg.connect(settings.pg_dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'picnix_bench_gw_%'"
        ).fetchall()
    return {name for (name,) in rows}


def test_bench_gateway_tiny_run(stack_settings: Settings) -> None:
    before = _bench_databases(stack_settings)
    result = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--count", str(COUNT), "--warmup", "4",
         "--concurrency", "4"],
        env={**os.environ, **stack_settings.to_env()}, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_SECONDS, check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stderr[-4000:]}"
    assert "uploads/s" in result.stderr  # the human-readable summary
    out: dict[str, Any] = json.loads(result.stdout)

    for figures in (out, out["baseline"]):
        assert set(KEYS) <= set(figures)
        assert figures["accepted"] == figures["requests"] == COUNT, figures["errors"]
        assert figures["errors"] == {}
        assert figures["uploads_per_s"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["server_cpu_ms_per_upload"] >= 0
    assert set(out["stack_cpu_ms_per_upload"]) == {"kafka", "postgres"}
    assert all(ms >= 0 for ms in out["stack_cpu_ms_per_upload"].values())
    assert 40_000 < out["image_bytes_mean"] < 60_000  # "50 KB images"
    # the namespace it made (database, topics) is dropped again
    assert _bench_databases(stack_settings) == before
