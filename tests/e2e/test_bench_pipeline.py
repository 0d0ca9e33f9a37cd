"""`scripts/bench_pipeline.py` keeps working: a tiny synthetic run on the real stack.

The figures of ~60 uploads mean nothing as a benchmark (the full run is one, never a timed
test); this checks that every step runs on a namespace of the test's own (no openclipart
download, no ../shared) and that the JSON has every key with consistent, sane values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from tests.conftest import fresh_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_pipeline.py"
RUN_TIMEOUT_SECONDS = 900
CPU_GROUPS = {"worker", "sinks", "producer", "kafka", "postgres", "minio", "prometheus", "total"}
DISK_GROUPS = {"features", "kafka", "postgres", "minio"}
DECISION_KINDS = {"new-cluster", "merge-center", "duplicate-reference"}


def _bench(settings: Settings, cache: Path, *extra: str) -> dict[str, Any]:
    argv = [
        sys.executable, str(BENCH), "--json", "--workload", "synthetic",
        "--synthetic-count", "60", "--rate", "5", "--phase2-seconds", "2", "--rss-after", "10",
        "--floor-sample", "12", "--floor-processes", "1", "--cache-dir", str(cache), *extra,
    ]
    result = subprocess.run(
        argv, env={**os.environ, **settings.to_env()}, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_SECONDS, check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stderr[-4000:]}"
    assert "uploads/s" in result.stderr  # the human-readable summary
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_bench_pipeline_synthetic(stack_settings: Settings, tmp_path: Path) -> None:
    from infra.pipeline import pipeline_down

    with fresh_namespace(stack_settings) as settings:
        try:
            first = _bench(settings, tmp_path, "--workers", "1")
            # back to back: the second run starts from a clean state of its own
            second = _bench(settings, tmp_path, "--workers", "1", "--limit", "30")
        finally:
            pipeline_down(settings)

    for out in (first, second):
        for key in ("uploads", "uploads_per_s", "latency_ms", "cpu_ms_per_upload",
                    "worker_rss_bytes_per_stored", "sink_rss_bytes_per_stored",
                    "disk_bytes_per_stored", "extract_floor_per_s", "decisions",
                    "bytes_saved_ratio", "dlq", "workers"):
            assert key in out, key
        decisions = out["decisions"]
        assert isinstance(decisions, dict) and set(decisions) == DECISION_KINDS
        assert out["uploads"] == sum(decisions.values()) + out["dlq"]
        assert out["undecided"] == 0
        assert decisions["duplicate-reference"] > 0  # the copies and re-uploads
        assert out["workers"] == 1
        assert isinstance(out["uploads_per_s"], float) and out["uploads_per_s"] > 0
        latency = out["latency_ms"]
        assert isinstance(latency, dict)
        assert latency["offered_per_s"] == 5
        assert latency["uploads"] == 10 and latency["censored"] == 0
        assert 0 < latency["p50"] <= latency["p99"]
        cpu = out["cpu_ms_per_upload"]
        assert isinstance(cpu, dict) and set(cpu) == CPU_GROUPS
        assert cpu["worker"] > 0 and cpu["producer"] > 0 and cpu["kafka"] > 0
        assert cpu["total"] >= max(v for k, v in cpu.items() if k != "total")
        disk = out["disk_bytes_per_stored"]
        assert isinstance(disk, dict) and set(disk) == DISK_GROUPS
        assert disk["kafka"] > 0 and disk["minio"] > 0
        assert isinstance(out["extract_floor_per_s"], float) and out["extract_floor_per_s"] > 0
        assert 0 < out["bytes_saved_ratio"] < 1
    assert first["uploads"] == 60
    assert second["uploads"] == 40  # 30 of phase 1, the 10 of phase 2: nothing left over
