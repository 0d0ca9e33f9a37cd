"""Entry points behind ``picnix stack up|down|status|reset``.

Each service runs through install -> start -> wait healthy -> provision on its own thread after
one shared apt step, so a cold start overlaps the MinIO build (minutes) with fetching Kafka and
starting PostgreSQL and Prometheus. Every step is idempotent: a second ``stack_up`` while the
stack runs only probes and returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from infra.settings import Settings
from infra.stack.base import Service
from infra.stack.kafka import Kafka
from infra.stack.minio import MinIO
from infra.stack.postgres import Postgres
from infra.stack.process import ServiceStatus, StackError, ensure_apt_packages
from infra.stack.prometheus import Prometheus

__all__ = ["ServiceStatus", "StackError", "stack_down", "stack_reset", "stack_status", "stack_up"]

log = logging.getLogger("picnix.stack")

# Seconds to wait for each service to answer its health probe after start.
HEALTH_TIMEOUTS = {"postgres": 60.0, "kafka": 120.0, "minio": 90.0, "prometheus": 60.0}


def services(settings: Settings) -> list[Service]:
    """The stack, in start order (stop runs in reverse)."""
    return [Postgres(settings), Kafka(settings), MinIO(settings), Prometheus(settings)]


def _ensure_dirs(settings: Settings) -> None:
    for path in (settings.cache_dir, settings.data_dir, settings.run_dir):
        path.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _stack_lock(settings: Settings) -> Iterator[None]:
    """Serialize up/down/reset across processes (CLI, test sessions, demo on one machine).

    Two concurrent cold ``stack_up`` calls would otherwise run two Maven fetches and two MinIO
    builds into the same cache; with the lock the second waits and then finds everything up.
    """
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with (settings.run_dir / "stack.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _bring_up(service: Service) -> str:
    started = time.monotonic()
    service.install()
    was_running = service.is_running()
    if not was_running:
        log.info("starting %s", service.name)
        service.start()
    service.wait_healthy(HEALTH_TIMEOUTS.get(service.name, 60.0))
    detail = service.provision()
    log.info(
        "%s %s in %.1fs (%s)",
        service.name,
        "was running" if was_running else "started",
        time.monotonic() - started,
        detail,
    )
    return detail


def _run_all(items: list[Service], action: Callable[[Service], object], verb: str) -> None:
    """Run ``action`` on every service concurrently; raise one error naming every failure."""
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = {svc.name: pool.submit(action, svc) for svc in items}
        for name, future in futures.items():
            try:
                future.result()
            except StackError as exc:
                failures.append(f"[{name}] {exc}")
            except Exception as exc:  # any other failure of one service must not hide the rest
                failures.append(f"[{name}] unexpected {type(exc).__name__}: {exc}")
    if failures:
        raise StackError(
            f"stack {verb} failed for {len(failures)} service(s):\n" + "\n\n".join(failures)
        )


def stack_up(settings: Settings) -> list[ServiceStatus]:
    """Install what is missing, start what is not running, wait until healthy, provision.

    Provisioning creates the Kafka topics (with their configs), the Postgres role and database,
    and the MinIO bucket. Idempotent and quick when everything already runs.
    """
    _ensure_dirs(settings)
    with _stack_lock(settings):
        stack = services(settings)
        wanted: dict[str, str] = {}
        for svc in stack:
            wanted.update(svc.apt_packages())
        if wanted:
            ensure_apt_packages(settings, wanted)
        _run_all(stack, _bring_up, "up")
    return stack_status(settings)


def stack_status(settings: Settings) -> list[ServiceStatus]:
    """Health of every service (bounded probes, run concurrently)."""
    stack = services(settings)
    with ThreadPoolExecutor(max_workers=len(stack)) as pool:
        return list(pool.map(lambda svc: svc.status(), stack))


def stack_down(settings: Settings) -> None:
    """Stop every service we started, keeping data (and caches)."""
    failures: list[str] = []
    with _stack_lock(settings):
        for svc in reversed(services(settings)):
            try:
                if svc.stop():
                    log.info("stopped %s", svc.name)
            except StackError as exc:
                failures.append(f"[{svc.name}] {exc}")
    if failures:
        raise StackError("stack down failed:\n" + "\n\n".join(failures))


def stack_reset(settings: Settings) -> None:
    """Stop everything and wipe every derived state; caches (Kafka jars, MinIO) stay.

    Derived state includes the Faust workers' local tables (``settings.faust_root``): kept
    beside a wiped Kafka, they are ahead of their changelogs and would not fit the new log.
    The caller stops the pipeline first.
    """
    stack_down(settings)
    with _stack_lock(settings):
        for svc in services(settings):
            if svc.is_running():
                raise StackError(f"{svc.name} was started again during reset; not wiping its data")
            svc.wipe()
            log.info("wiped data of %s", svc.name)
        shutil.rmtree(settings.faust_root, ignore_errors=True)
        log.info("wiped the workers' table state in %s", settings.faust_root)
