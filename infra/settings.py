"""One typed settings object for every PicNix component.

Every endpoint and credential comes from a ``PICNIX_*`` environment variable; the defaults run the
local stack started by ``picnix stack up``, so the same code points at a real cluster by
environment alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

_ENV_PREFIX = "PICNIX_"
RECORD_HEADROOM_BYTES = 1024 * 1024
# Worker N's metrics and Faust web ports are worker 0's plus N times this stride: far enough
# apart that the sinks' and replay's neighbouring ports (19102..19104) never collide with them.
WORKER_PORT_STRIDE = 100


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "picnix"


@dataclass(frozen=True)
class Settings:
    """Endpoints, credentials, limits and local-stack locations."""

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    topic_uploads: str = "picnix.uploads"
    topic_uploads_dlq: str = "picnix.uploads.dlq"
    topic_features: str = "picnix.features"
    # match results, in the one order the commit decides in
    topic_matches: str = "picnix.matches"
    topic_decisions: str = "picnix.decisions"
    # every change to the index, for the workers' replicas (compacted: the live entries)
    topic_index: str = "picnix.index"
    # possible-IP-theft alerts as CloudEvents, for a platform's own consumer (schemas/cloudevents)
    topic_alerts: str = "picnix.alerts"
    uploads_partitions: int = 4
    # replicas of every PicNix and Faust topic: 1 on the local one-broker stack, 3 on a cluster
    topic_replication: int = 1
    # match runs on as many workers as picnix.features has partitions (machines x cores)
    features_partitions: int = 4
    max_image_bytes: int = 10 * 1024 * 1024
    # PostgreSQL
    pg_host: str = "127.0.0.1"
    pg_port: int = 15432
    pg_user: str = "picnix"
    pg_password: str = "picnix"
    pg_database: str = "picnix"
    # MinIO / S3
    s3_endpoint: str = "127.0.0.1:19000"
    s3_console_port: int = 19001
    s3_access_key: str = "picnix"
    s3_secret_key: str = "picnix-secret"
    s3_bucket: str = "picnix-images"
    s3_secure: bool = False
    # Prometheus and component metrics ports
    prometheus_port: int = 19090
    prometheus_host: str = "127.0.0.1"
    # where every component's metrics endpoint listens: 0.0.0.0 for a Prometheus on another host
    metrics_host: str = "127.0.0.1"
    metrics_port_worker: int = 19101
    metrics_port_pg_sink: int = 19102
    metrics_port_blob_sink: int = 19103
    metrics_port_replay: int = 19104
    # HTTP API (`picnix serve`): where it listens, and each key's token bucket (requests a
    # minute refilled, burst the most taken at once) so one platform cannot starve the others.
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_rate_per_minute: int = 600
    api_rate_burst: int = 60
    api_page_limit: int = 100
    # Faust
    faust_app_id: str = "picnix"
    # Each worker's web server (searches are forwarded between workers through it): the host
    # others reach it at, and worker 0's port (worker N adds N strides).
    faust_web_host: str = "127.0.0.1"
    faust_web_port: int = 16066
    # Where `picnix serve` sends a search (comma-separated worker web URLs, any worker will do:
    # it forwards to the one holding the engine); empty means this machine's workers.
    search_worker_urls: str = ""
    # RocksDB keeps decide's tables on local disk: a restarted worker reads only the changelog
    # tail, and state need not fit in memory (signatures of millions of images).
    faust_store: str = "rocksdb://"
    # Which of `picnix pipeline up --workers W` this process is (0..W-1): it selects the worker's
    # own Faust datadir and ports, since the workers of one machine share the consumer group.
    worker_index: int = 0
    # Workers `pipeline up` starts when no --workers is given; 0 means one per core.
    pipeline_workers: int = 0
    engine_method: str = "default"
    extract_threads: int = 2
    # Local stack: caches survive a fresh clone, data lives beside them
    home: Path = field(default_factory=_default_home)

    @property
    def max_record_bytes(self) -> int:
        """The largest Kafka record: an image at the cap plus its event header and framing."""
        return self.max_image_bytes + RECORD_HEADROOM_BYTES

    @property
    def worker_metrics_port(self) -> int:
        """This worker's Prometheus endpoint (worker 0 keeps ``metrics_port_worker``)."""
        return self.metrics_port_worker + WORKER_PORT_STRIDE * self.worker_index

    @property
    def worker_web_port(self) -> int:
        return self.faust_web_port + WORKER_PORT_STRIDE * self.worker_index

    @property
    def worker_group_id(self) -> str:
        """The Kafka consumer group of every Faust worker of this app (Faust uses the app id)."""
        return self.faust_app_id

    @property
    def blob_sink_group(self) -> str:
        """The blob sink's consumer group, of this app's namespace (``picnix-blob-sink``)."""
        return f"{self.faust_app_id}-blob-sink"

    @property
    def faust_root(self) -> Path:
        """Every Faust worker's local table state; derived, so ``stack reset`` wipes it."""
        return self.data_dir / "faust"

    @property
    def faust_datadir(self) -> Path:
        """This worker's own Faust datadir: RocksDB allows one process per database."""
        return self.faust_root / self.faust_app_id / f"worker-{self.worker_index}"

    @property
    def default_workers(self) -> int:
        return self.pipeline_workers or os.cpu_count() or 1

    @property
    def pg_dsn(self) -> str:
        return (
            f"postgresql://{self.pg_user}:{self.pg_password}@{self.pg_host}:{self.pg_port}/"
            f"{self.pg_database}"
        )

    @property
    def http_url(self) -> str:
        """The address people and platforms open; a wildcard bind is reached on loopback."""
        host = "127.0.0.1" if self.http_host in {"0.0.0.0", ""} else self.http_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    @property
    def search_urls(self) -> list[str]:
        """The worker web servers a search may be sent to, tried in order."""
        if self.search_worker_urls.strip():
            return [u.strip().rstrip("/") for u in self.search_worker_urls.split(",") if u.strip()]
        return [
            f"http://{self.faust_web_host}:{self.faust_web_port + WORKER_PORT_STRIDE * i}"
            for i in range(self.default_workers)
        ]

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus_host}:{self.prometheus_port}"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def to_env(self) -> dict[str, str]:
        """The ``PICNIX_*`` variables that reproduce these settings in a child process."""
        return {_ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read ``PICNIX_<FIELD>`` for every field, converting to the field's type."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(_ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, str(f.type), raw)
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, type_name: str, raw: str) -> object:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "bool":
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if type_name == "Path":
            return Path(raw).expanduser()
        return raw
    except ValueError as exc:
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc


def get_settings() -> Settings:
    return Settings.from_env()
