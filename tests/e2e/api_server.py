"""``picnix serve`` as a real process for a test: started on the settings' port, waited for on
/healthz, terminated after."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from infra.settings import Settings
from tests.e2e.waiting import wait_for

START_TIMEOUT_SECONDS = 60.0


@contextmanager
def running_server(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "--loglevel", "warning"],
        env={**settings.to_env(), "PATH": "/usr/bin:/bin"},
    )
    try:
        def answers() -> bool:
            assert proc.poll() is None, f"picnix serve exited with {proc.returncode}"
            try:
                return httpx.get(f"{settings.http_url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("picnix serve answering", answers, timeout=START_TIMEOUT_SECONDS)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
