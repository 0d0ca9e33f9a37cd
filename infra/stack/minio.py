"""MinIO built from source with ``go install`` (community MinIO ships source only).

Pinned module version: ``MINIO_MODULE_VERSION``. The brief asked for the tag
``RELEASE.2025-10-15T17-29-55Z``, but the Go module proxy refuses that tag ("403: This module
version is not available": it is not a semantic version, so the proxy will not resolve it), and
the only version it serves is the pseudo-version of the final commit on master
(2026-02-12, after that release, when the repository stopped being maintained). That builds
with Go >= 1.24, has no ``replace`` directives, and is what we pin.

The binary and the Go module/build caches live under ``settings.cache_dir``, so a second
``stack up`` (or a fresh clone on the same machine) never rebuilds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.settings import Settings
from infra.stack.base import Service
from infra.stack.process import (
    StackError,
    http_get,
    run_logged,
    running_pid,
    split_hostport,
    start_detached,
    stop_service,
    tcp_open,
    wait_until,
)

MINIO_MODULE = "github.com/minio/minio"
MINIO_MODULE_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
BUILD_TIMEOUT_S = 3600.0


def minio_bin_dir(settings: Settings) -> Path:
    return settings.cache_dir / "minio-bin"


def go_env(settings: Settings) -> dict[str, str]:
    """Go caches under cache_dir: downloads and compiled packages survive a fresh clone."""
    go = settings.cache_dir / "go"
    return {
        "CGO_ENABLED": "0",
        "GOBIN": str(minio_bin_dir(settings)),
        "GOMODCACHE": str(go / "mod"),
        "GOCACHE": str(go / "build-cache"),
        # -modcacherw: a read-only module cache could not be deleted by a plain `rm -rf`.
        "GOFLAGS": "-buildvcs=false -modcacherw",
        # The local Go (1.26 here) satisfies minio's `go 1.24`; never fetch another toolchain.
        "GOTOOLCHAIN": "local",
    }


class MinIO(Service):
    """Single-drive MinIO server on ``settings.s3_endpoint``."""

    name = "minio"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.host, self.port = split_hostport(settings.s3_endpoint)
        self.binary = minio_bin_dir(settings) / "minio"
        self.stamp = minio_bin_dir(settings) / ".version"
        self.data = settings.data_dir / "minio"

    def endpoint(self) -> str:
        scheme = "https" if self.settings.s3_secure else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _built(self) -> bool:
        try:
            return self.binary.exists() and self.stamp.read_text().strip() == MINIO_MODULE_VERSION
        except FileNotFoundError:
            return False

    def install(self) -> None:
        if self._built():
            return
        go = shutil.which("go")
        if go is None:
            raise StackError(
                "minio: the server is built from source and needs Go >= 1.24 on PATH "
                "(Debian's golang package is too old; this machine kind ships Go)"
            )
        minio_bin_dir(self.settings).mkdir(parents=True, exist_ok=True)
        self.stamp.unlink(missing_ok=True)
        run_logged(
            [go, "install", f"{MINIO_MODULE}@{MINIO_MODULE_VERSION}"],
            log=self.settings.run_dir / "logs" / "minio-build.log",
            what=f"building {MINIO_MODULE}@{MINIO_MODULE_VERSION} (takes minutes on 2 cores)",
            env=go_env(self.settings),
            cwd=self.settings.cache_dir,
            timeout=BUILD_TIMEOUT_S,
        )
        if not self.binary.exists():
            raise StackError(f"minio: go install succeeded but {self.binary} is missing")
        self.stamp.write_text(MINIO_MODULE_VERSION + "\n")

    def _pid(self) -> int | None:
        return running_pid(self.settings, self.name, str(self.binary))

    def is_running(self) -> bool:
        return self._pid() is not None

    def start(self) -> None:
        if self.is_running():
            return
        if tcp_open(self.host, self.port):
            raise StackError(
                f"minio: port {self.host}:{self.port} is taken by a process that is not ours"
            )
        if len(self.settings.s3_secret_key) < 8:
            raise StackError("minio: PICNIX_S3_SECRET_KEY must have at least 8 characters")
        self.data.mkdir(parents=True, exist_ok=True)
        start_detached(
            self.settings,
            self.name,
            [
                str(self.binary),
                "server",
                str(self.data),
                "--address",
                f"{self.host}:{self.port}",
                "--console-address",
                f"{self.host}:{self.settings.s3_console_port}",
                "--quiet",
            ],
            env={
                "MINIO_ROOT_USER": self.settings.s3_access_key,
                "MINIO_ROOT_PASSWORD": self.settings.s3_secret_key,
                "MINIO_PROMETHEUS_AUTH_TYPE": "public",
                "MINIO_UPDATE": "off",
                "MINIO_CALLHOME_ENABLE": "off",
            },
        )

    def health(self) -> tuple[bool, str]:
        status, body = http_get(f"{self.endpoint()}/minio/health/live")
        if status != 200:
            return False, f"GET /minio/health/live -> {status or body.decode(errors='replace')}"
        return (
            True,
            f"live, bucket {self.settings.s3_bucket}, console :{self.settings.s3_console_port}",
        )

    def wait_healthy(self, timeout: float) -> None:
        wait_until(self.name, self.health, timeout=timeout, log=self.log, alive=self.is_running)

    def provision(self) -> str:
        """Create the image bucket (idempotent)."""
        from minio import Minio
        from minio.error import S3Error

        client = Minio(
            f"{self.host}:{self.port}",
            access_key=self.settings.s3_access_key,
            secret_key=self.settings.s3_secret_key,
            secure=self.settings.s3_secure,
        )
        bucket = self.settings.s3_bucket
        try:
            if client.bucket_exists(bucket):
                return f"bucket {bucket} present"
            client.make_bucket(bucket)
        except S3Error as exc:
            if exc.code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return f"bucket {bucket} present"
            raise StackError(f"minio: creating bucket {bucket} failed: {exc}") from exc
        return f"created bucket {bucket}"

    def stop(self) -> bool:
        return stop_service(self.settings, self.name, str(self.binary), timeout=20.0)

    def data_paths(self) -> list[Path]:
        return [self.data]
