"""Starts and stops PicNix's own processes (Faust workers, Postgres sink, blob sink, and the HTTP
API server) detached.

They run as ``picnix worker --index N`` / ``picnix sink …`` in their own sessions with pid files
and logs in ``settings.run_dir``, like the stack services, so `make demo` leaves a running
pipeline that `picnix pipeline down` (or `picnix stack down`) stops.

``pipeline up`` starts W workers (one per core by default: extract is CPU-bound and scales with
processes, not threads). They share one consumer group; each has its own Faust datadir and
ports (``Settings.worker_index``). It returns only once every process consumes, as its
``picnix_component_ready`` gauge says, and raises with the log tail of a process that died.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra.readiness import probe
from infra.settings import Settings
from infra.stack.process import (
    StackError,
    log_path,
    log_tail,
    running_pid,
    start_detached,
    stop_service,
)
from infra.stack.prometheus import write_worker_targets

READY_TIMEOUT_SECONDS = 180.0
READY_POLL_SECONDS = 0.5
LOG_TAIL_LINES = 30
WORKERS_FILE = "pipeline-workers"
WORKER = "picnix-worker"

# For the sinks: glibc grows its mmap threshold after the first large free, after which every
# ~MiB buffer (an upload record, an image) is carved from the heap and fragments it, and RSS
# climbs with every image handled. A fixed threshold returns such buffers to the kernel when
# freed, and two arenas stop each executor thread from keeping a heap of its own. (Not for the
# workers: decoding allocates large arrays per image, and faulting them in anew costs CPU.)
SINK_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "MALLOC_ARENA_MAX": "2"}


class PipelineError(RuntimeError):
    """A pipeline process died or did not become ready; the message carries its log tail."""


@dataclass(frozen=True)
class Component:
    name: str
    args: tuple[str, ...]
    metrics_port: Callable[[Settings], int]
    worker_index: int | None = None

    @property
    def marker(self) -> str:
        return " ".join(self.args)

    def settings_for(self, settings: Settings) -> Settings:
        """The settings this process runs with (a worker's index selects its ports)."""
        if self.worker_index is None:
            return settings
        return dataclasses.replace(settings, worker_index=self.worker_index)


def worker_component(index: int) -> Component:
    """Worker 0 keeps the historical name, so its pid file and log stay where they were."""
    name = WORKER if index == 0 else f"{WORKER}-{index}"
    return Component(
        name, ("worker", "--index", str(index)), lambda s: s.worker_metrics_port, index
    )


SINKS = (
    Component("picnix-pg-sink", ("sink", "postgres"), lambda s: s.metrics_port_pg_sink),
    Component("picnix-blob-sink", ("sink", "blob"), lambda s: s.metrics_port_blob_sink),
)
# The default single-worker set, by name, for callers that address one process (tests, tools).
COMPONENTS = (worker_component(0), *SINKS)
# `picnix serve`, the HTTP API: it consumes nothing, so it is ready once it has connected to
# Postgres, Kafka and the object store and answers on its port (its /metrics carries the gauge).
SERVER = Component("picnix-api", ("serve",), lambda s: s.http_port)


def components(workers: int) -> tuple[Component, ...]:
    return (*(worker_component(i) for i in range(workers)), *SINKS)


def managed(workers: int) -> tuple[Component, ...]:
    """Every process ``pipeline up`` runs: the pipeline's and the API server."""
    return (*components(workers), SERVER)


def _recorded_workers(settings: Settings) -> int:
    """How many workers the last ``pipeline up`` asked for (the default before any)."""
    try:
        return int((settings.run_dir / WORKERS_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return settings.default_workers


def _started_workers(settings: Settings) -> list[Component]:
    """Every worker with a pid file, whatever W it was started with."""
    indexes = {0}
    for path in settings.run_dir.glob(f"{WORKER}-*.pid"):
        suffix = path.stem.removeprefix(f"{WORKER}-")
        if suffix.isdigit():
            indexes.add(int(suffix))
    return [worker_component(i) for i in sorted(indexes)]


def pipeline_up(
    settings: Settings, workers: int | None = None, timeout: float = READY_TIMEOUT_SECONDS
) -> list[str]:
    """Start W workers, both sinks and the API server where not running, wait until all are
    ready (the pipeline's processes consume, the server answers).

    Workers beyond W from an earlier ``up`` are stopped. Returns the names started now; raises
    :class:`PipelineError` with the log tail of a process that exited or never became ready.
    """
    count = workers or settings.default_workers
    if count < 1:
        raise ValueError(f"a pipeline needs at least one worker, not {count}")
    for extra in _started_workers(settings):
        if extra.worker_index is not None and extra.worker_index >= count:
            stop_service(settings, extra.name, extra.marker)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / WORKERS_FILE).write_text(f"{count}\n")
    write_worker_targets(settings, count)
    wanted = managed(count)
    started = []
    for component in wanted:
        if running_pid(settings, component.name, component.marker):
            continue
        argv = [sys.executable, "-m", "infra.cli", *component.args]
        env = settings.to_env()
        if component.worker_index is None:
            env.update(SINK_MALLOC_ENV)
        start_detached(settings, component.name, argv, env=env)
        started.append(component.name)
    _wait_ready(settings, wanted, timeout)
    return started


def _wait_ready(settings: Settings, wanted: tuple[Component, ...], timeout: float) -> None:
    """Until every component is ready in one pass: a worker that was ready stops consuming
    while its group rebalances for the next worker that joins, so a component seen ready once
    may not be ready when the last one is."""
    deadline = time.monotonic() + timeout
    while True:
        pending: list[tuple[Component, str]] = []
        for component in wanted:
            if running_pid(settings, component.name, component.marker) is None:
                raise _died(settings, component, "exited before it was ready")
            ready, detail = probe(component.metrics_port(component.settings_for(settings)))
            if not ready:
                pending.append((component, detail))
        if not pending:
            return
        if time.monotonic() >= deadline:
            component, detail = pending[0]
            raise _died(settings, component, f"not ready after {timeout:.0f} s ({detail})")
        time.sleep(READY_POLL_SECONDS)


def _died(settings: Settings, component: Component, what: str) -> PipelineError:
    path = log_path(settings, component.name)
    return PipelineError(
        f"{component.name} {what}\n--- last lines of {path} ---\n"
        f"{log_tail(path, LOG_TAIL_LINES)}"
    )


def pipeline_down(settings: Settings) -> list[str]:
    stopped = []
    for component in (SERVER, *reversed(SINKS), *reversed(_started_workers(settings))):
        try:
            if stop_service(settings, component.name, component.marker):
                stopped.append(component.name)
        except StackError as exc:
            raise PipelineError(f"stopping {component.name} failed: {exc}") from exc
    return stopped


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    ready: bool
    detail: str

    @property
    def up(self) -> bool:
        return self.pid is not None and self.ready


def pipeline_status(settings: Settings) -> list[ComponentStatus]:
    """Each process the last ``up`` started: running and consuming, or why it is down."""
    statuses = []
    for component in managed(_recorded_workers(settings)):
        pid = running_pid(settings, component.name, component.marker)
        if pid is None:
            last = log_tail(log_path(settings, component.name), 1)
            statuses.append(ComponentStatus(component.name, None, False, f"DOWN; last log: {last}"))
            continue
        ready, detail = probe(component.metrics_port(component.settings_for(settings)))
        statuses.append(ComponentStatus(component.name, pid, ready, detail))
    return statuses
