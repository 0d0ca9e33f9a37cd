"""Prometheus from Debian's package, run as our own process on ``settings.prometheus_port``.

Debian's package changes the defaults (and may start a system instance on :9090, which we
neither stop nor rely on), so every path and the listen address are passed explicitly.
"""

from __future__ import annotations

import json
import os
import signal
import string
from dataclasses import replace
from pathlib import Path

from infra.settings import Settings
from infra.stack.base import Service
from infra.stack.process import (
    StackError,
    http_get,
    running_pid,
    split_hostport,
    start_detached,
    stop_service,
    tcp_open,
    wait_until,
)

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
TEMPLATE = Path(__file__).resolve().parent.parent / "prometheus" / "prometheus.yml.tmpl"
WORKER_TARGETS_GLOB = "prometheus-workers-*.json"


def worker_targets_path(settings: Settings) -> Path:
    """One file per pipeline (named by its worker 0 port): pipelines on other ports beside the
    default one (benchmarks, tools) add their workers instead of replacing its targets."""
    return settings.run_dir / WORKER_TARGETS_GLOB.replace("*", str(settings.metrics_port_worker))


def write_worker_targets(settings: Settings, workers: int) -> None:
    """The workers' scrape targets (file_sd), one group per worker labelled with its index."""
    groups = [
        {
            "targets": [f"127.0.0.1:{replace(settings, worker_index=i).worker_metrics_port}"],
            "labels": {"worker": str(i)},
        }
        for i in range(workers)
    ]
    path = worker_targets_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: Prometheus must never read a half-written file
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1) + "\n")
    tmp.replace(path)


def render_config(settings: Settings) -> str:
    """The scrape config: every PicNix component, MinIO's cluster metrics, Prometheus itself."""
    host, port = split_hostport(settings.s3_endpoint)
    return string.Template(TEMPLATE.read_text()).substitute(
        prometheus_port=settings.prometheus_port,
        worker_targets_files=str(settings.run_dir / WORKER_TARGETS_GLOB),
        metrics_port_pg_sink=settings.metrics_port_pg_sink,
        metrics_port_blob_sink=settings.metrics_port_blob_sink,
        metrics_port_replay=settings.metrics_port_replay,
        api_target=settings.http_url.removeprefix("http://"),
        minio_scheme="https" if settings.s3_secure else "http",
        minio_target=f"{host}:{port}",
    )


class Prometheus(Service):
    """Prometheus scraping the PicNix components every 2 s."""

    name = "prometheus"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.config = settings.run_dir / "prometheus.yml"
        self.data = settings.data_dir / "prometheus"

    def endpoint(self) -> str:
        return self.settings.prometheus_url

    def apt_packages(self) -> dict[str, str]:
        return {str(PROMETHEUS_BIN): "prometheus"}

    def install(self) -> None:
        if not PROMETHEUS_BIN.exists():
            raise StackError(f"prometheus: {PROMETHEUS_BIN} missing after installing the package")

    def _write_config(self) -> bool:
        """Write the rendered config (and default worker targets); True if the config changed."""
        if not worker_targets_path(self.settings).exists():
            write_worker_targets(self.settings, self.settings.default_workers)
        text = render_config(self.settings)
        self.config.parent.mkdir(parents=True, exist_ok=True)
        if self.config.exists() and self.config.read_text() == text:
            return False
        self.config.write_text(text)
        return True

    def _marker(self) -> str:
        return f"--config.file={self.config}"

    def _pid(self) -> int | None:
        return running_pid(self.settings, self.name, self._marker())

    def is_running(self) -> bool:
        return self._pid() is not None

    def start(self) -> None:
        changed = self._write_config()
        pid = self._pid()
        if pid is not None:
            if changed:
                # Settings changed under a running server: SIGHUP reloads the scrape config.
                os.kill(pid, signal.SIGHUP)
            return
        if tcp_open("127.0.0.1", self.settings.prometheus_port):
            raise StackError(
                f"prometheus: port {self.settings.prometheus_port} is taken by a process that "
                "is not ours"
            )
        self.data.mkdir(parents=True, exist_ok=True)
        start_detached(
            self.settings,
            self.name,
            [
                str(PROMETHEUS_BIN),
                self._marker(),
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            cwd=self.data,
        )

    def provision(self) -> str:
        """Apply a changed scrape config to a server that was already running (SIGHUP)."""
        pid = self._pid()
        if pid is not None and self._write_config():
            os.kill(pid, signal.SIGHUP)
            return "scrape config reloaded"
        return ""

    def health(self) -> tuple[bool, str]:
        status, body = http_get(f"{self.endpoint()}/-/ready")
        if status != 200:
            return False, f"GET /-/ready -> {status or body.decode(errors='replace')}"
        return True, "ready, scraping every 2s"

    def wait_healthy(self, timeout: float) -> None:
        wait_until(self.name, self.health, timeout=timeout, log=self.log, alive=self.is_running)

    def stop(self) -> bool:
        return stop_service(self.settings, self.name, self._marker(), timeout=30.0)

    def data_paths(self) -> list[Path]:
        return [self.data]
