"""What `scripts/bench_pipeline.py` measures outside Kafka and Postgres: CPU time and RSS of each
process group from ``/proc``, disk usage of the data dirs, and the in-process extract floor.

CPU is utime+stime of every process in a group's tree plus what its processes collected from
children that already exited (cutime+cstime), so PostgreSQL's short-lived backends count with
their postmaster and a group's total only ever grows. Roots come from the pid files the stack and
the pipeline write in ``settings.run_dir`` (PostgreSQL: its own ``postmaster.pid``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.pipeline import COMPONENTS
from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import UploadEvent, UploadRef
from stream_processors.engine.decode import DecodeLimits
from stream_processors.engine.method import DedupMethod, build_method
from stream_processors.extraction import Rejection, extract_features

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
DISK_BLOCK_BYTES = 512  # st_blocks unit
# /proc/<pid>/stat fields after the ")" that ends the command name (0-based): state is 0
_PPID, _UTIME, _STIME, _CUTIME, _CSTIME, _RSS = 1, 11, 12, 13, 14, 21

WORKER_GROUP = "worker"
SINK_GROUP = "sinks"
SERVICE_GROUPS = ("kafka", "minio", "prometheus")  # pid file name = group name
POSTGRES_GROUP = "postgres"


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    cpu_seconds: float  # own utime+stime
    reaped_cpu_seconds: float  # cutime+cstime: children that exited and were waited for
    rss_bytes: int


@dataclass(frozen=True)
class GroupSample:
    cpu_seconds: float
    rss_bytes: int
    processes: int


def read_proc(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return ProcInfo(
        ppid=int(fields[_PPID]),
        cpu_seconds=(int(fields[_UTIME]) + int(fields[_STIME])) / CLOCK_TICKS,
        reaped_cpu_seconds=(int(fields[_CUTIME]) + int(fields[_CSTIME])) / CLOCK_TICKS,
        rss_bytes=int(fields[_RSS]) * PAGE_BYTES,
    )


def process_table() -> dict[int, ProcInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None:
                table[int(entry)] = info
    return table


def _tree(roots: Iterable[int], table: dict[int, ProcInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    out: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid not in out:
            out.add(pid)
            stack.extend(children.get(pid, []))
    return out


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def group_roots(settings: Settings) -> dict[str, list[int]]:
    """Root pids of each group, from the pid files (workers: every ``picnix-worker*.pid``)."""
    worker_name = COMPONENTS[0].name
    sink_names = [c.name for c in COMPONENTS[1:]]
    run = settings.run_dir
    roots: dict[str, list[int]] = {
        WORKER_GROUP: [p for f in sorted(run.glob(f"{worker_name}*.pid")) if (p := _pid_from(f))],
        SINK_GROUP: [p for n in sink_names if (p := _pid_from(run / f"{n}.pid"))],
        POSTGRES_GROUP: [
            p for p in [_pid_from(settings.data_dir / "postgres" / "postmaster.pid")] if p
        ],
    }
    for name in SERVICE_GROUPS:
        roots[name] = [p for p in [_pid_from(run / f"{name}.pid")] if p]
    return roots


def sample_groups(settings: Settings) -> dict[str, GroupSample]:
    """CPU seconds so far, RSS now and process count of every group."""
    table = process_table()
    out = {}
    for group, roots in group_roots(settings).items():
        pids = _tree(roots, table)
        out[group] = GroupSample(
            cpu_seconds=sum(table[p].cpu_seconds + table[p].reaped_cpu_seconds for p in pids),
            rss_bytes=sum(table[p].rss_bytes for p in pids),
            processes=len(pids),
        )
    return out


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (sparse preallocated index files count as used)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * DISK_BLOCK_BYTES
            except FileNotFoundError:
                continue  # a segment or SST file replaced while we walked
    return total


def data_dirs(settings: Settings) -> dict[str, Path]:
    """The data dirs whose growth the bench reports (``features``: the workers' Faust state;
    ``minio``: the bucket's own folder, since MinIO purges the objects of an emptied bucket from
    its trash in ``.minio.sys`` later, while the next run is measured)."""
    return {
        "features": settings.data_dir / "faust" / settings.faust_app_id,
        "kafka": settings.data_dir / "kafka",
        "postgres": settings.data_dir / "postgres",
        "minio": settings.data_dir / "minio" / settings.s3_bucket,
    }


def kafka_topic_bytes(settings: Settings, topics: Iterable[str]) -> int:
    """Bytes of these topics' partition dirs (``<topic>-<n>``) only: other namespaces' topics,
    and deleted ones the broker removes later, must not move the figure."""
    root = data_dirs(settings)["kafka"]
    wanted = set(topics)
    total = 0
    for entry in root.iterdir() if root.is_dir() else []:
        topic, _, partition = entry.name.rpartition("-")
        if entry.is_dir() and partition.isdigit() and topic in wanted:
            total += disk_bytes(entry)
    return total


def disk_usage(settings: Settings, kafka_topics: Iterable[str]) -> dict[str, int]:
    out = {name: disk_bytes(path) for name, path in data_dirs(settings).items()}
    out["kafka"] = kafka_topic_bytes(settings, kafka_topics)
    return out


# --------------------------------------------------------------------------------------------
# The extract floor: decode + extract in-process, on every core, nothing else in the way

_floor_method: DedupMethod | None = None
_floor_limits = DecodeLimits()
FLOOR_CHUNK = 4


def _floor_init(method: str, max_bytes: int) -> None:
    global _floor_method, _floor_limits
    _floor_method = build_method(method)
    _floor_limits = DecodeLimits(max_bytes=max_bytes)


def _floor_extract(path: str) -> bool:
    """Extract one file as the worker's extract stage does; True when it yields features."""
    assert _floor_method is not None, "pool process not initialised"
    data = Path(path).read_bytes()
    try:
        upload = UploadEvent(
            upload_id=path, author="bench", title="floor",
            uploaded_at=datetime.now(UTC).isoformat(), image=data,
        )
    except SchemaError:
        return False
    result = extract_features(upload, UploadRef("floor", 0, 0), _floor_method, _floor_limits)
    return not isinstance(result, Rejection)


@dataclass(frozen=True)
class FloorResult:
    images: int
    extracted: int
    seconds: float
    processes: int

    @property
    def per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def extract_floor(settings: Settings, paths: list[Path], processes: int) -> FloorResult:
    """Images per second a pool of ``processes`` extracts, timed after every process is warm.

    Spawned, not forked: the caller holds Kafka and Postgres connections a fork would share."""
    with ProcessPoolExecutor(
        max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
        initializer=_floor_init,
        initargs=(settings.engine_method, settings.max_image_bytes),
    ) as pool:
        list(pool.map(_floor_extract, [str(p) for p in paths[:processes]]))  # warm-up
        started = time.perf_counter()
        ok = sum(pool.map(_floor_extract, [str(p) for p in paths], chunksize=FLOOR_CHUNK))
        seconds = time.perf_counter() - started
    return FloorResult(len(paths), ok, seconds, processes)
