"""Benchmark: how long a decide worker with N stored images takes to decide again after a start.

Run ``python scripts/bench_restart.py --json --stored 100000`` with the stack up. It works on a
namespace of its own (topics, Faust app id, worker datadir and ports; deleted after), so the
demo's data is untouched, and runs the real worker, ``python -m infra.cli worker``:

1. Bootstrap: a worker with an empty datadir decides one dev upload; Faust creates its changelog
   topics doing so. It is stopped (SIGTERM) and its changelogs read back: every record must be
   what ``scripts.restart_fill`` would write for the same entry, so the fill speaks the worker's
   format.
2. Fill: the dev set's uploads decided in this process by the worker's own Decider, then
   synthetic images up to N stored (``restart_fill``), written to the four changelogs and, each
   entry, to the index log the replicas are built from; one empty record per filled upload on
   the matches topic (the commit's input) and the workers' group committed past them, as after
   a worker decided them.
3. ``rebuild_s``: the datadir removed, a worker started; a fresh upload is published right after
   the start; the time from the process start to that upload's decision (its Kafka timestamp).
   The worker rebuilds every table from the changelogs, then (on its first event) re-applies
   every stored record to its engine (``Decider.restore``).
4. ``restart_s``: that worker SIGKILLed once it has decided, started again on the same datadir
   (RocksDB kept), another fresh upload: start to decision again.

Where the time goes, per phase: ``ready_s`` is start to the worker's ``picnix_component_ready``
(process start, the datadir check against Kafka, group join, changelog recovery);
``changelog_read_s`` Faust's own "Restoring state" to "Done reading" log lines;
``first_decide_s`` the worker's ``picnix_decide_seconds_sum`` after its first decision: the
decide stage of that one upload, which includes ``Decider.restore`` (one evaluation costs
milliseconds, bench_decide); ``first_extract_s`` the upload's extraction. ``peak_rss_bytes``
(VmHWM) and ``cpu_s`` (utime+stime) are the worker process's, read from /proc at its decision.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from infra.namespaces import free_port, namespaced
from infra.settings import Settings, get_settings
from infra.stack.manager import stack_status
from infra.stack.process import http_get, log_tail
from infra.stack.topics import ensure_topics
from producers.publisher import UploadPublisher, build_upload
from schemas.events import FEATURE_TOPIC_EVENTS, FeatureEvent, UploadRef, parse_event
from scripts import bench_stats, restart_fill, restart_kafka
from scripts.bench_decide import DEFAULT_MANIFEST, Row, read_manifest
from scripts.bench_pipeline import code_version

DEFAULT_STORED = 100_000
DEFAULT_SEED = 0
SYNTHETIC_BATCH = 2000  # synthetic images generated and sent at a time (~50 MB of records)
DECISION_TIMEOUT_SECONDS = 1800.0
STOP_TIMEOUT_SECONDS = 60.0
PROGRESS_SECONDS = 15.0
LOG_TAIL_LINES = 40
FRESH_UPLOADS = 3  # bootstrap, rebuild, restart: one dev distractor each, never in the fill
HTTP_OK = 200
KIB = 1024
_FAUST_STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[\w+\] "
# Faust's own milestones of a start, in its log (faust/tables/recovery.py): the app starts its
# services, gets its partitions (the highwater table follows the assignment), reads the
# changelogs when there is anything to read, and is ready to consume.
MILESTONES = {
    "app_starting": r"\[\^-App\]: Starting",
    "assigned": r"\[\^---Recovery\]: Highwater for active changelog partitions",
    "changelog_read_start": r"\[\^---Recovery\]: Restoring state from changelog topics",
    "changelog_read_done": r"\[\^---Recovery\]: Done reading from changelog topics",
    "worker_ready": r"\[\^---Recovery\]: Worker ready",
}
_MILESTONE_RES = {k: re.compile(_FAUST_STAMP + v, re.MULTILINE) for k, v in MILESTONES.items()}
VM_HWM = re.compile(r"^VmHWM:\s+(\d+) kB$", re.MULTILINE)


class BenchError(RuntimeError):
    """The benchmark could not run: a step failed, and the message says which and why."""


def log(message: str) -> None:
    print(f"[bench_restart {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_settings(base: Settings) -> Settings:
    """Topics, app id (so group, changelogs and datadir) and worker ports of this run's own."""
    prefix = f"picnix-bench-restart-{uuid.uuid4().hex[:8]}"
    return namespaced(
        base, prefix, metrics_port_worker=free_port(), faust_web_port=free_port(), worker_index=0
    )


def drop_namespace(settings: Settings) -> None:
    """Its topics (ours and Faust's, all named after the app id) and its worker state."""
    dropped = restart_kafka.delete_prefixed_topics(settings, settings.faust_app_id)
    shutil.rmtree(settings.faust_root / settings.faust_app_id, ignore_errors=True)
    log(f"namespace {settings.faust_app_id} dropped ({len(dropped)} topics)")


# --------------------------------------------------------------------------------------------
# The dev uploads: features extracted with the engine, as the extract agent would


@cache
def _method() -> Any:
    from stream_processors.engine.method import build_method

    return build_method(restart_fill.FILL_METHOD)


def _feature_record(path: str, upload_id: str, ref: UploadRef, max_bytes: int) -> bytes | None:
    """One dev image's feature event, as the extract agent makes it (pool worker)."""
    from stream_processors.engine.decode import DecodeLimits
    from stream_processors.extraction import Rejection, extract_features

    upload = build_upload(upload_id, "bench-restart", Path(path).name, Path(path).read_bytes(),
                          max_bytes, filename=Path(path).name)
    result = extract_features(upload, ref, _method(), DecodeLimits(max_bytes=max_bytes))
    return None if isinstance(result, Rejection) else result.to_record()


def dev_features(settings: Settings, rows: list[Row], processes: int) -> list[FeatureEvent]:
    """Feature events of the rows (dev uploads decode rejects are left out)."""
    ids = [f"dev-{i:05d}-{r.path.stem}" for i, r in enumerate(rows)]
    refs = [UploadRef(settings.topic_uploads, 0, i) for i in range(len(rows))]
    with ProcessPoolExecutor(processes) as pool:
        records = list(pool.map(_feature_record, [str(r.path) for r in rows], ids, refs,
                                [settings.max_image_bytes] * len(rows), chunksize=8))
    out = []
    for raw in records:
        if raw is not None:
            event = parse_event(raw, FEATURE_TOPIC_EVENTS)
            assert isinstance(event, FeatureEvent)
            out.append(event)
    return out


# --------------------------------------------------------------------------------------------
# The worker process


@dataclass
class Phase:
    """What one worker start measured."""

    seconds: float  # process start to the fresh upload's decision
    ready_s: float | None  # process start to Faust's "Worker ready"
    changelog_read_s: float | None
    log_s: dict[str, float]  # each of Faust's MILESTONES seen, seconds after the start
    first_decide_s: float | None
    first_extract_s: float | None
    peak_rss_bytes: int
    cpu_s: float
    datadir_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v
                for k, v in dataclasses.asdict(self).items()}


class Worker:
    """``python -m infra.cli worker`` on the namespace, its log in a file of its own."""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        with log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "worker"], stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, **settings.to_env()},
                cwd=Path(__file__).resolve().parents[1],
            )

    def tick(self) -> None:
        """Between polls: fail when the worker died."""
        if self.proc.poll() is not None:
            raise BenchError(f"the worker exited with {self.proc.returncode}; last lines of "
                             f"{self.log_file}:\n{log_tail(self.log_file, LOG_TAIL_LINES)}")

    def stop(self, how: signal.Signals) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(how)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"the worker did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of "
                             f"{how.name}") from exc

    def metric(self, name: str) -> float | None:
        status, body = http_get(f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics",
                                timeout=5.0)
        found = re.search(rf"^{name} (\S+)$", body.decode(errors="replace"), re.MULTILINE)
        return float(found.group(1)) if status == HTTP_OK and found else None

    def proc_stats(self) -> tuple[int, float]:
        """(peak RSS bytes, CPU seconds) of the worker process so far."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        peak = VM_HWM.search(status)
        info = bench_stats.read_proc(self.proc.pid)
        if peak is None or info is None:
            raise BenchError(f"no /proc figures for the worker (pid {self.proc.pid})")
        return int(peak.group(1)) * KIB, info.cpu_seconds

    def milestones(self) -> dict[str, float]:
        """Seconds from the process start to each of Faust's MILESTONES in the log (the
        first of each; Faust stamps local time, as ``time.time`` is read here)."""
        text = self.log_file.read_text(errors="replace")
        out = {}
        for name, pattern in _MILESTONE_RES.items():
            found = pattern.search(text)
            if found is not None:
                stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
                out[name] = round(stamp.timestamp() - self.started, 3)
        return out


async def _publish(settings: Settings, upload_id: str, image: Path) -> None:
    upload = build_upload(upload_id, "bench-restart", image.name, image.read_bytes(),
                          settings.max_image_bytes, filename=image.name)
    async with UploadPublisher(settings) as publisher:
        await publisher.publish(upload)


def decide_one(settings: Settings, worker: Worker, image: Path, timeout: float) -> float:
    """Publish a fresh upload and wait for its decision; returns the decision's timestamp."""
    upload_id = f"fresh-{uuid.uuid4().hex[:12]}"
    start = restart_kafka.end_offset(settings, settings.topic_decisions)
    asyncio.run(_publish(settings, upload_id, image))
    return restart_kafka.wait_for_key(settings, settings.topic_decisions, start,
                                      upload_id.encode(), timeout, worker.tick)


def timed_start(settings: Settings, name: str, image: Path, timeout: float) -> tuple[Worker, Phase]:
    """Start a worker, decide one fresh upload, measure; the worker is left running."""
    worker = Worker(settings, settings.run_dir / "logs" / f"bench-restart-{name}.log")
    try:
        decided_at = decide_one(settings, worker, image, timeout)
        peak, cpu = worker.proc_stats()
    except BaseException:
        worker.stop(signal.SIGKILL)
        raise
    marks = worker.milestones()
    read = ("changelog_read_start", "changelog_read_done")
    phase = Phase(
        seconds=decided_at - worker.started,
        ready_s=marks.get("worker_ready"),
        changelog_read_s=(marks[read[1]] - marks[read[0]]) if all(k in marks for k in read)
        else None,
        log_s=marks,
        first_decide_s=worker.metric("picnix_decide_seconds_sum"),
        first_extract_s=worker.metric("picnix_extract_seconds_sum"),
        peak_rss_bytes=peak, cpu_s=cpu,
        datadir_bytes=bench_stats.disk_bytes(settings.faust_datadir),
    )
    log(f"{name}: decided {phase.seconds:.1f} s after the start (ready at {phase.ready_s}, "
        f"first decide stage {phase.first_decide_s} s)")
    return worker, phase


# --------------------------------------------------------------------------------------------
# The run


def fill(
    settings: Settings, real: list[FeatureEvent], stored: int, seed: int
) -> dict[str, Any]:
    """Write the state of ``stored`` images into the worker's changelogs (module docstring)."""
    started = time.monotonic()
    app = settings.faust_app_id
    written = {t: restart_kafka.read_topic(settings, restart_fill.changelog_topic(app, t))
               for t in restart_fill.TABLES}
    before = restart_fill.state_from_changelogs(written)
    first_seq = restart_kafka.end_offset(settings, settings.topic_matches)
    after = restart_fill.decide_real(before, real, first_seq)
    real_stored = len(after.stored)
    if real_stored > stored:
        raise BenchError(f"--stored {stored} is below the {real_stored} images and aliases the "
                         "dev uploads store: lower --real-uploads")
    synthetic = stored - real_stored
    topics = {t: restart_fill.changelog_topic(app, t) for t in restart_fill.TABLES}
    sizes = {"bytes": 0}
    rng = np.random.default_rng(seed)

    def batches() -> Iterator[list[tuple[str, bytes, bytes | None]]]:
        records = restart_fill.changed_records(before, after)
        yield _with_placeholders(settings, topics, [f.upload_id for f in real], records, sizes)
        for ids, batch in restart_fill.synthetic_batches(
            after, synthetic, first_seq + len(real), SYNTHETIC_BATCH, rng
        ):
            yield _with_placeholders(settings, topics, ids, batch, sizes)
        if synthetic:
            last = restart_fill.position_record(first_seq + len(real) + synthetic - 1)
            yield _with_placeholders(settings, topics, [], [last], sizes)

    last = [time.monotonic()]

    def progress(sent: int) -> None:
        if time.monotonic() - last[0] > PROGRESS_SECONDS:
            last[0] = time.monotonic()
            log(f"fill: {sent} records sent ({sizes['bytes'] / 2**20:.0f} MiB)")

    restart_kafka.produce(settings, batches(), progress)
    expected = first_seq + len(real) + synthetic
    committed = restart_kafka.commit_end(settings, settings.worker_group_id,
                                         settings.topic_matches)
    if committed != expected:
        raise BenchError(f"the matches topic ends at {committed} after the fill, not at "
                         f"{expected}: another producer wrote to it")
    records = sum(restart_kafka.end_offset(settings, t) for t in topics.values())
    return {"real_uploads": len(real), "real_stored": real_stored, "synthetic": synthetic,
            "changelog_records": records, "changelog_bytes_written": sizes["bytes"],
            "fill_s": round(time.monotonic() - started, 1)}


def _with_placeholders(
    settings: Settings, topics: dict[str, str], upload_ids: list[str],
    records: list[restart_fill.ChangelogRecord], sizes: dict[str, int],
) -> list[tuple[str, bytes, bytes | None]]:
    """The batch's changelog records on their topics, their entries on the index log (what the
    replicas are built from), and an empty matches record per upload (where its match would be,
    so the seqs are the offsets they claim)."""
    out: list[tuple[str, bytes, bytes | None]] = [(topics[t], k, v) for t, k, v in records]
    sizes["bytes"] += sum(len(k) + len(v) for _t, k, v in records)
    out.extend((settings.topic_index, k, v) for k, v in restart_fill.index_records(records))
    out.extend((settings.topic_matches, u.encode(), None) for u in upload_ids)
    return out


def run(args: argparse.Namespace, base: Settings) -> dict[str, Any]:
    if base.engine_method != restart_fill.FILL_METHOD:
        raise BenchError(f"the fill writes the {restart_fill.FILL_METHOD!r} method's state, "
                         f"the worker runs {base.engine_method!r}")
    down = [s.name for s in stack_status(base) if not s.healthy]
    if down:
        raise BenchError(f"stack services not healthy: {down}; run `picnix stack up`")
    rows = read_manifest(args.manifest)
    fresh = [r.path for r in rows if r.kind == "distractor"][:FRESH_UPLOADS]
    if len(fresh) < FRESH_UPLOADS:
        raise BenchError(f"{args.manifest} has fewer than {FRESH_UPLOADS} distractors")
    dev = [r for r in rows if r.kind == "original"] + [r for r in rows if r.kind == "variant"]
    dev = dev[: args.real_uploads] if args.real_uploads is not None else dev
    code = code_version()
    settings = bench_settings(base)
    log(f"namespace {settings.faust_app_id}; extracting {len(dev)} dev uploads")
    started = time.monotonic()
    real = dev_features(settings, dev, args.processes)
    extract_s = time.monotonic() - started
    ensure_topics(settings)
    try:
        boot, _ = timed_start(settings, "bootstrap", fresh[0], args.timeout)
        boot.stop(signal.SIGTERM)  # a clean leave: the group is empty for the commit
        log("bootstrap worker decided and stopped; filling the changelogs")
        filled = fill(settings, real, args.stored, args.seed)
        log(f"filled: {filled}")
        shutil.rmtree(settings.faust_datadir)
        rebuilt, rebuild = timed_start(settings, "rebuild", fresh[1], args.timeout)
        rebuilt.stop(signal.SIGKILL)
        restarted, restart = timed_start(settings, "restart", fresh[2], args.timeout)
        restarted.stop(signal.SIGKILL)
    finally:
        if not args.keep:
            drop_namespace(settings)
    read_s = rebuild.changelog_read_s
    return {
        "stored": args.stored,
        "restart_s": round(restart.seconds, 2),
        "rebuild_s": round(rebuild.seconds, 2),
        "rebuild_records_per_s": (round(filled["changelog_records"] / read_s)
                                  if read_s else None),
        "rebuild": rebuild.as_json(),
        "restart": restart.as_json(),
        "fill": {**filled, "dev_extract_s": round(extract_s, 1)},
        "code": code,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/bench_restart.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--stored", type=int, default=DEFAULT_STORED,
                   help="stored images and aliases the worker holds")
    p.add_argument("--real-uploads", type=int,
                   help="dev uploads decided for the real part (default: every original and "
                        "variant)")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="processes extracting the dev uploads")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--timeout", type=float, default=DECISION_TIMEOUT_SECONDS,
                   help="seconds a start may take to decide its fresh upload")
    p.add_argument("--keep", action="store_true",
                   help="leave the namespace (topics, worker state) for inspection")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args, get_settings())
    except (BenchError, restart_fill.FillError, restart_kafka.KafkaStepError) as exc:
        print(f"bench_restart: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
