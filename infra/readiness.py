"""Readiness of PicNix's own processes, published on each one's metrics endpoint.

A process that runs is not yet a process that consumes: a Faust worker first joins its group
and recovers its tables, a sink first joins or positions its consumer. Each sets the gauge below
once it consumes (and clears it while a rebalance takes its partitions away), so
``picnix pipeline up`` waits for exactly that, over the same endpoint Prometheus scrapes.
"""

from __future__ import annotations

import re

from prometheus_client import Gauge

from infra.stack.process import http_get

READY = Gauge("picnix_component_ready", "1 once this process consumes its input, else 0")
_READY_LINE = re.compile(rb"^picnix_component_ready (\S+)$", re.MULTILINE)


def set_ready(ready: bool) -> None:
    READY.set(1 if ready else 0)


def probe(port: int) -> tuple[bool, str]:
    """(ready, detail) from a process's metrics endpoint on loopback."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
    if status != 200:
        return False, f"metrics :{port} not answering ({status or body.decode(errors='replace')})"
    found = _READY_LINE.search(body)
    if found is None:
        return False, f"metrics :{port} answer without picnix_component_ready"
    if float(found.group(1)) != 1.0:
        return False, f"metrics :{port} answer, not consuming yet"
    return True, f"ready, metrics :{port}"
