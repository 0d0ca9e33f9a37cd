"""A real browser for the page tests: Debian's chromium, installed with apt when missing.

Playwright's own browser download needs its CDN, which this machine cannot reach, so the tests
drive the distribution's chromium through ``executable_path``. A bare machine gets it from
``apt-get install -y chromium`` (the tests run as root); an installed one is used as is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_SECONDS = 1200


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and could not be installed; the message says what failed and why."""


def _apt(args: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args], env=env, capture_output=True, text=True,
            timeout=APT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrowserUnavailable(
            f"`apt-get {' '.join(args)}` did not finish within {APT_TIMEOUT_SECONDS} s"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BrowserUnavailable(
            f"`apt-get {' '.join(args)}` exited with {done.returncode}, so the browser tests "
            f"have no chromium at {CHROMIUM}:\n{tail}"
        )


def ensure_chromium() -> Path:
    """The chromium binary, installed first if it is missing (idempotent: a no-op when there)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise BrowserUnavailable(f"no {CHROMIUM} and no apt-get to install Debian's chromium")
    if os.geteuid() != 0:
        raise BrowserUnavailable(
            f"no {CHROMIUM}, and installing it needs root: run `apt-get install -y chromium`"
        )
    try:
        _apt(["install", "-y", "--no-install-recommends", "chromium"])
    except BrowserUnavailable:
        _apt(["update"])  # a stale package list is the usual reason; retry once after it
        _apt(["install", "-y", "--no-install-recommends", "chromium"])
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


if __name__ == "__main__":
    print(ensure_chromium())
