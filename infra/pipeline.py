"""Starts and stops PicNix's own processes (Faust worker, Postgres sink, blob sink) detached.

They run as ``picnix worker`` / ``picnix sink …`` in their own sessions with pid files and logs in
``settings.run_dir``, like the stack services, so `make demo` leaves a running pipeline that
`picnix pipeline down` (or `picnix stack down`) stops.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from infra.settings import Settings
from infra.stack.process import running_pid, start_detached, stop_service


@dataclass(frozen=True)
class Component:
    name: str
    args: tuple[str, ...]

    @property
    def marker(self) -> str:
        return " ".join(self.args)


COMPONENTS = (
    Component("picnix-worker", ("worker",)),
    Component("picnix-pg-sink", ("sink", "postgres")),
    Component("picnix-blob-sink", ("sink", "blob")),
)


def pipeline_up(settings: Settings) -> list[str]:
    """Start every component that is not running; returns the names started now."""
    started = []
    for component in COMPONENTS:
        if running_pid(settings, component.name, component.marker):
            continue
        argv = [sys.executable, "-m", "infra.cli", *component.args]
        start_detached(settings, component.name, argv, env=settings.to_env())
        started.append(component.name)
    return started


def pipeline_down(settings: Settings) -> list[str]:
    stopped = []
    for component in reversed(COMPONENTS):
        if stop_service(settings, component.name, component.marker):
            stopped.append(component.name)
    return stopped


def pipeline_status(settings: Settings) -> dict[str, int | None]:
    return {c.name: running_pid(settings, c.name, c.marker) for c in COMPONENTS}
