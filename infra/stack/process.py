"""Process helpers shared by the local-stack services.

The machine has no container engine, so each service is a plain detached process whose pid and
log live in ``settings.run_dir``. These helpers start, find, stop and wait for such processes, and
turn every failure into a :class:`StackError` that carries the tail of the service's log, because
"timed out" alone never tells anyone why a broker did not come up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from infra.settings import Settings

T = TypeVar("T")


class StackError(RuntimeError):
    """A local-stack service could not be installed, started, provisioned or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    """Health of one service as reported by ``picnix stack up|status``."""

    name: str
    healthy: bool
    endpoint: str
    detail: str


# ---------------------------------------------------------------------------------------------
# Locations


def logs_dir(settings: Settings) -> Path:
    path = settings.run_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(settings: Settings, name: str) -> Path:
    return logs_dir(settings) / f"{name}.log"


def pid_path(settings: Settings, name: str) -> Path:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    return settings.run_dir / f"{name}.pid"


def log_tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a log, for error messages (empty marker when there is none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def error_with_log(message: str, path: Path, lines: int = 40) -> StackError:
    return StackError(f"{message}\n--- last lines of {path} ---\n{log_tail(path, lines)}")


# ---------------------------------------------------------------------------------------------
# Process lifecycle


def _proc_state(pid: int) -> str | None:
    """State letter from /proc (None if the pid does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces: state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a zombie still answers ``kill(pid, 0)``)."""
    state = _proc_state(pid)
    return state is not None and state not in {"Z", "X"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def running_pid(settings: Settings, name: str, marker: str) -> int | None:
    """Pid of the service if its pid file names a live process whose command line has ``marker``.

    The marker guards against a stale pid file whose pid was reused by an unrelated process, which
    we must neither report healthy nor signal. An empty command line is not a mismatch: while
    ``execve`` loads a large binary (MinIO's is ~100 MB), ``/proc/PID/cmdline`` reads empty for a
    moment after ``Popen`` has returned, and that pid is the one we just started.
    """
    path = pid_path(settings, name)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid_alive(pid):
        cmdline = _cmdline(pid)
        if not cmdline or marker in cmdline:
            return pid
    path.unlink(missing_ok=True)
    return None


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def _log_header(out: BinaryIO, what: str, argv: Sequence[str]) -> None:
    """A dated line before each run, so one log file tells its runs apart."""
    out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {what}: {' '.join(argv)}\n".encode())
    out.flush()


def start_detached(
    settings: Settings,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in its own session, output appended to the service log; write the pid file.

    A new session detaches the service from the caller's terminal and lets :func:`stop_pid`
    signal the service's whole process group without touching anything else.
    """
    log = log_path(settings, name)
    with log.open("ab") as out:
        _log_header(out, "starting", argv)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(env),
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"{name}: cannot execute {argv[0]}: {exc}") from exc
    pid_path(settings, name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop_pid(pid: int, name: str, timeout: float = 30.0) -> None:
    """SIGTERM the service's process group, wait up to ``timeout`` s, then SIGKILL it."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    # Only signal the group if the service leads it (we started it with a new session).
    send: Callable[[int], None] = (
        (lambda sig: os.killpg(pgid, sig)) if pgid == pid else (lambda sig: os.kill(pid, sig))
    )
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    try:
        send(signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    raise StackError(f"{name}: pid {pid} survived SIGTERM and SIGKILL")


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_service(settings: Settings, name: str, marker: str, timeout: float = 30.0) -> bool:
    """Stop the service recorded in its pid file; True if something was running."""
    pid = running_pid(settings, name, marker)
    if pid is None:
        return False
    stop_pid(pid, name, timeout)
    pid_path(settings, name).unlink(missing_ok=True)
    return True


def wait_until(
    name: str,
    check: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    log: Path,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.5,
) -> str:
    """Poll ``check`` until it reports healthy; fail early if the process died.

    Returns the last detail string. On timeout or death raises :class:`StackError` with the log
    tail, which is where the real reason (port in use, bad config, out of memory) is written.
    """
    deadline = time.monotonic() + timeout
    detail = "not checked"
    while True:
        ok, detail = check()
        if ok:
            return detail
        if alive is not None and not alive():
            raise error_with_log(f"{name} exited before becoming healthy ({detail})", log)
        if time.monotonic() >= deadline:
            raise error_with_log(
                f"{name} not healthy after {timeout:.0f}s (last check: {detail})", log
            )
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Probes


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; status 0 when nothing answered (the error text as body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read() if exc.fp else b""
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc).encode()


def split_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port`` (first entry of a comma list) to a tuple."""
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not port.isdigit():
        raise StackError(f"expected host:port, got {value!r}")
    return host or default_host, int(port)


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even when the caller already runs an event loop.

    ``stack_up`` is called from plain scripts and from async test fixtures alike; ``asyncio.run``
    refuses to nest, so inside a running loop the coroutine runs on a helper thread.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


# ---------------------------------------------------------------------------------------------
# Installing


def run_logged(
    argv: Sequence[str],
    *,
    log: Path,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> None:
    """Run a setup command to completion, output appended to ``log``; raise with its tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        _log_header(out, what, argv)
        try:
            result = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(env),
                cwd=str(cwd) if cwd else None,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{what}: {argv[0]} is not installed ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise error_with_log(f"{what}: timed out after {timeout}s", log) from exc
    if result.returncode != 0:
        raise error_with_log(f"{what}: exit code {result.returncode}", log)


def ensure_apt_packages(settings: Settings, wanted: Mapping[str, str]) -> None:
    """Install Debian packages whose probe file is missing (``{probe_path: package}``).

    A fresh CI machine may lack PostgreSQL and lacks Prometheus; installing only what is missing
    keeps a warm ``stack up`` free of apt.
    """
    missing = sorted({pkg for probe, pkg in wanted.items() if not Path(probe).exists()})
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(f"packages {missing} are missing and installing them needs root")
    if shutil.which("apt-get") is None:
        raise StackError(f"packages {missing} are missing and there is no apt-get to install them")
    log = log_path(settings, "apt")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update"], log=log, what="apt-get update", env=env, timeout=900)
    run_logged(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        log=log,
        what=f"apt-get install {' '.join(missing)}",
        env=env,
        timeout=1800,
    )
    still = sorted({pkg for probe, pkg in wanted.items() if not Path(probe).exists()})
    if still:
        raise error_with_log(f"apt-get installed {missing} but {still} still lack their files", log)
