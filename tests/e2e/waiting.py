"""Polling helpers: the pipeline is asynchronous, so tests wait for a state with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from infra.settings import Settings

T = TypeVar("T")
POLL_SECONDS = 0.5


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


Row = tuple[Any, ...]


def query(settings: Settings, sql: str, params: tuple[object, ...] = ()) -> list[Row]:
    with psycopg.connect(settings.pg_dsn) as conn:
        return conn.execute(sql.encode(), params).fetchall()
