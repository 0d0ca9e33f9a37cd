"""`scripts/bench_restart.py` keeps working: a small run against the real stack and worker.

A few hundred stored images say nothing about restart cost (the 100k run is the benchmark, never
a timed test); this checks that the fill passes the check against a real worker's changelog,
that both starts decide their fresh upload, that the JSON has every key with sane values, and
that the run's namespace is gone after.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import Settings
from scripts.make_sample_dataset import SampleDataset
from tests.imagegen import distinct_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_restart.py"
RUN_TIMEOUT_SECONDS = 600
STORED = 400
REAL_UPLOADS = 40
PHASE_KEYS = {"seconds", "ready_s", "changelog_read_s", "log_s", "first_decide_s",
              "first_extract_s", "peak_rss_bytes", "cpu_s", "datadir_bytes"}
NAMESPACE_PREFIX = "picnix-bench-restart-"
FRESH_DISTRACTORS = 3  # bootstrap, rebuild, restart: one fresh upload each


async def _bench_topics(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(NAMESPACE_PREFIX)}
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def stack_settings() -> Settings:
    """The stack, started if it is not (idempotent). Unlike the session fixture, this leaves a
    running pipeline alone: the benchmark's worker takes free ports of its own."""
    from infra.stack.manager import stack_up

    base = Settings.from_env()
    unhealthy = [s for s in stack_up(base) if not s.healthy]
    assert not unhealthy, f"stack not healthy: {unhealthy}"
    return base


def _manifest(sample: SampleDataset, root: Path) -> Path:
    """The sample dataset's originals and variants for the fill, plus generated distractors for
    the fresh uploads each start decides: the test needs no dataset outside the repository."""
    with sample.manifest.open(newline="") as f:
        rows = [
            {"path": str(sample.root / r["path"]), "group_id": r["group_id"], "kind": r["kind"]}
            for r in csv.DictReader(f)
        ]
    for i in range(FRESH_DISTRACTORS):
        path = root / f"fresh-{i}.png"
        path.write_bytes(distinct_png(9000 + i))
        rows.append({"path": str(path), "group_id": f"fresh-{i}", "kind": "distractor"})
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "group_id", "kind"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_bench_restart_small_run(
    stack_settings: Settings, sample_dataset: SampleDataset, tmp_path: Path
) -> None:
    before = asyncio.run(_bench_topics(stack_settings))
    manifest = _manifest(sample_dataset, tmp_path)
    result = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--stored", str(STORED),
         "--real-uploads", str(REAL_UPLOADS), "--manifest", str(manifest)],
        env={**os.environ, **stack_settings.to_env()}, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_SECONDS, check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(result.stdout)

    for key in ("stored", "restart_s", "rebuild_s", "rebuild_records_per_s", "rebuild",
                "restart", "fill", "code"):
        assert key in out, key
    assert out["stored"] == STORED
    assert out["restart_s"] > 0 and out["rebuild_s"] > 0
    assert out["rebuild_records_per_s"] > 0
    fill = out["fill"]
    assert fill["real_stored"] + fill["synthetic"] == STORED
    # every stored image or alias has a post, a stored-image and a local-features record (an
    # image also its reference count; the sample set's copies are mostly aliases)
    assert fill["changelog_records"] >= 3 * STORED
    for phase in (out["rebuild"], out["restart"]):
        assert set(phase) == PHASE_KEYS
        assert 0 < phase["ready_s"] < phase["seconds"]
        assert phase["first_decide_s"] > 0 and phase["peak_rss_bytes"] > 0
        assert phase["cpu_s"] > 0 and phase["datadir_bytes"] > 0
    # an empty datadir reads every changelog record; the kept one has nothing to read
    assert out["rebuild"]["changelog_read_s"] is not None
    assert asyncio.run(_bench_topics(stack_settings)) <= before  # the namespace is dropped
