"""The shape every local-stack service shares, so the manager can drive them uniformly."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from infra.settings import Settings
from infra.stack.process import ServiceStatus, log_path


class Service(ABC):
    """One service of the local stack: install, start, check, provision, stop, wipe."""

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def log(self) -> Path:
        return log_path(self.settings, self.name)

    @abstractmethod
    def endpoint(self) -> str:
        """Where clients reach the service (shown by ``stack status``)."""

    def apt_packages(self) -> dict[str, str]:
        """Debian packages this service needs, as ``{probe_file: package}``."""
        return {}

    @abstractmethod
    def install(self) -> None:
        """Fetch or build what is missing; cached under ``settings.cache_dir``; idempotent."""

    @abstractmethod
    def is_running(self) -> bool:
        """True if our process for this service runs (healthy or not)."""

    @abstractmethod
    def start(self) -> None:
        """Start the process if it does not run; returns without waiting for health."""

    @abstractmethod
    def health(self) -> tuple[bool, str]:
        """A quick, bounded health probe: (healthy, detail)."""

    @abstractmethod
    def wait_healthy(self, timeout: float) -> None:
        """Block until healthy; raise StackError with the log tail otherwise."""

    def provision(self) -> str:
        """Create what clients expect once the service is healthy (topics, bucket, role)."""
        return ""

    @abstractmethod
    def stop(self) -> bool:
        """Stop the process, keeping its data; True if it was running."""

    @abstractmethod
    def data_paths(self) -> list[Path]:
        """Directories that ``stack reset`` wipes (never caches)."""

    def wipe(self) -> None:
        for path in self.data_paths():
            shutil.rmtree(path, ignore_errors=True)

    def status(self) -> ServiceStatus:
        healthy, detail = self.health()
        return ServiceStatus(self.name, healthy, self.endpoint(), detail)
