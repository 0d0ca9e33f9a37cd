"""The bench's workload and its /proc accounting, without any service."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from infra.settings import Settings
from producers.replay import discover
from scripts import bench_stats
from scripts.bench_workload import build_synthetic
from stream_processors.engine.decode import decode_image


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_synthetic_workload_is_split_seeded_and_reused(tmp_path: Path) -> None:
    first = build_synthetic(tmp_path, seed=3, count=40, phase2_count=8)
    assert not first.reused
    assert (first.phase1_count, first.phase2_count) == (32, 8)
    assert sum(first.kinds.values()) == 40
    assert {"crawl", "reupload", "copy", "large"} <= set(first.kinds)
    phase1, phase2 = _rows(first.phase1), _rows(first.phase2)
    assert not {r["path"] for r in phase1} & {r["path"] for r in phase2}
    # replay takes both manifests: every path resolves
    assert all(item.path.is_file() for item in discover(first.phase1) + discover(first.phase2))
    large = [r for r in phase1 + phase2 if r["kind"] == "large"]
    for row in large:  # >= 8 MP, so decoding takes its reduced-size path
        image = decode_image((first.root / row["path"]).read_bytes())
        assert image.width * image.height >= 8_000_000
        assert image.pixels.shape[0] * image.pixels.shape[1] < image.width * image.height

    again = build_synthetic(tmp_path, seed=3, count=40, phase2_count=8)
    assert again.reused and _rows(again.phase1) == phase1
    (first.root / ".complete.json").unlink()  # a half-built workload is built again, the same
    rebuilt = build_synthetic(tmp_path, seed=3, count=40, phase2_count=8)
    assert not rebuilt.reused and _rows(rebuilt.phase1) == phase1


def test_group_cpu_counts_the_tree_and_reaped_children(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path)
    settings.run_dir.mkdir(parents=True)
    (settings.run_dir / "picnix-worker.pid").write_text(f"{os.getpid()}\n")
    before = bench_stats.sample_groups(settings)["worker"]
    subprocess.run(  # a child that burns CPU and exits: it counts once reaped
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True
    )
    after = bench_stats.sample_groups(settings)["worker"]
    assert after.processes >= 1 and after.rss_bytes > 0
    assert after.cpu_seconds - before.cpu_seconds > 0.05
    assert bench_stats.sample_groups(settings)["kafka"].processes == 0  # no pid file
