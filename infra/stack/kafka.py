"""Apache Kafka in KRaft mode, single node, from Maven Central jars (no tarball download here).

Pinned release: 4.1.2, the newest patch of the 4.1 line. faust-streaming 0.15.3 with aiokafka
0.14 was verified against it (a faust app created its topics and a changelog-backed table, and
consumed); 4.x releases dropped the pre-2.1 protocol versions (KIP-896), which aiokafka 0.14
negotiates around. Change ``KAFKA_VERSION`` only after re-running that check.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import string
import uuid
from pathlib import Path

from infra.settings import Settings
from infra.stack.base import Service
from infra.stack.process import (
    StackError,
    error_with_log,
    run_async,
    run_logged,
    running_pid,
    split_hostport,
    start_detached,
    stop_service,
    tcp_open,
    wait_until,
)

KAFKA_VERSION = "4.1.2"
# Kafka 4.1 resolves slf4j-api 1.7.36 and log4j 2.25.x: the binding for slf4j 1.x is
# log4j-slf4j-impl (log4j-slf4j2-impl would bind nothing and the broker would log nothing).
LOG4J_VERSION = "2.25.3"
SLF4J_BINDING = "log4j-slf4j-impl"
# Broker-level record cap: an upload (10 MiB image + envelope) must fit with room to spare.
BROKER_MESSAGE_MAX_BYTES = 16 * 1024 * 1024
HEAP = ["-Xms256m", "-Xmx512m"]

TEMPLATES = Path(__file__).resolve().parent.parent / "kafka"


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def _render(template: Path, values: dict[str, str]) -> str:
    return string.Template(template.read_text()).substitute(values)


def _random_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class Kafka(Service):
    """Single-node KRaft broker+controller on ``settings.kafka_bootstrap``."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.host, self.port = split_hostport(settings.kafka_bootstrap)
        self.home = kafka_home(settings)
        self.lib = self.home / "lib"
        self.conf_dir = settings.run_dir / "kafka"
        self.config = self.conf_dir / "server.properties"
        self.data = settings.data_dir / "kafka"

    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def apt_packages(self) -> dict[str, str]:
        wanted: dict[str, str] = {}
        if shutil.which("java") is None:
            wanted["/usr/bin/java"] = "openjdk-17-jre-headless"
        if shutil.which("mvn") is None and not (self.home / ".complete").exists():
            wanted["/usr/bin/mvn"] = "maven"
        return wanted

    # -- install ---------------------------------------------------------------------------

    def install(self) -> None:
        """Resolve the broker and its runtime jars with Maven into the cache (once)."""
        marker = self.home / ".complete"
        if marker.exists() and any(self.lib.glob("kafka_2.13-*.jar")):
            return
        self.home.mkdir(parents=True, exist_ok=True)
        pom = self.home / "pom.xml"
        pom.write_text(
            _render(
                TEMPLATES / "fetch-pom.xml",
                {
                    "kafka_version": KAFKA_VERSION,
                    "log4j_version": LOG4J_VERSION,
                    "slf4j_binding": SLF4J_BINDING,
                },
            )
        )
        staging = self.home / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run_logged(
            [
                "mvn",
                "-q",
                "-B",
                f"-Dmaven.repo.local={self.settings.cache_dir / 'm2'}",
                "-f",
                str(pom),
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            log=self.log,
            what=f"resolving org.apache.kafka:kafka_2.13:{KAFKA_VERSION} with Maven",
            timeout=1800,
        )
        if not list(staging.glob("kafka_2.13-*.jar")):
            raise error_with_log(f"Maven resolved no kafka_2.13 jar into {staging}", self.log)
        shutil.rmtree(self.lib, ignore_errors=True)
        staging.rename(self.lib)
        marker.write_text(KAFKA_VERSION + "\n")

    # -- run -------------------------------------------------------------------------------

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise StackError("kafka: no `java` on PATH (Java 17+ is needed for the broker)")
        return java

    def _write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            _render(
                TEMPLATES / "server.properties",
                {
                    "host": self.host,
                    "broker_port": str(self.port),
                    "controller_port": str(self.settings.kafka_controller_port),
                    "log_dirs": str(self.data),
                    "message_max_bytes": str(BROKER_MESSAGE_MAX_BYTES),
                },
            )
        )

    def _classpath(self) -> str:
        return f"{self.lib}/*"

    def _format_storage(self) -> None:
        """Format the KRaft log dir once; a formatted dir keeps its cluster id across restarts."""
        if (self.data / "meta.properties").exists():
            return
        run_logged(
            [
                self._java(),
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={TEMPLATES / 'log4j2.xml'}",
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _random_cluster_id(),
                "-c",
                str(self.config),
                "--ignore-formatted",
            ],
            log=self.log,
            what="formatting KRaft storage",
            timeout=120,
        )

    def _pid(self) -> int | None:
        return running_pid(self.settings, self.name, "kafka.Kafka")

    def is_running(self) -> bool:
        return self._pid() is not None

    def start(self) -> None:
        if self.is_running():
            return
        for port, variable in (
            (self.port, "PICNIX_KAFKA_BOOTSTRAP"),
            (self.settings.kafka_controller_port, "PICNIX_KAFKA_CONTROLLER_PORT"),
        ):
            if tcp_open(self.host, port):
                raise StackError(
                    f"kafka: port {self.host}:{port} is taken by a process that is not ours; "
                    f"stop it or set {variable} to a free port"
                )
        self._write_config()
        self._format_storage()
        start_detached(
            self.settings,
            self.name,
            [
                self._java(),
                *HEAP,
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={TEMPLATES / 'log4j2.xml'}",
                f"-Dkafka.logs.dir={self.settings.run_dir / 'logs'}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(self.config),
            ],
            cwd=self.conf_dir,
            env={"KAFKA_HEAP_OPTS": " ".join(HEAP)},
        )

    def health(self) -> tuple[bool, str]:
        if not tcp_open(self.host, self.port):
            return False, f"nothing listens on {self.endpoint()}"
        try:
            topics = run_async(lambda: _list_topics(self.settings.kafka_bootstrap, 5.0))
        except Exception as exc:  # OSError, TimeoutError or any of aiokafka's KafkaError family
            return False, f"metadata request failed: {exc!r}"
        ours = sorted(t for t in topics if t.startswith("picnix."))
        return True, f"Kafka {KAFKA_VERSION} KRaft, {len(topics)} topics ({len(ours)} picnix.*)"

    def wait_healthy(self, timeout: float) -> None:
        wait_until(self.name, self.health, timeout=timeout, log=self.log, alive=self.is_running)

    def provision(self) -> str:
        from infra.stack.topics import ensure_topics

        created = ensure_topics(self.settings)
        return f"created topics {created}" if created else "topics present"

    def stop(self) -> bool:
        # A controlled shutdown of a single node takes a few seconds; allow it before SIGKILL.
        return stop_service(self.settings, self.name, "kafka.Kafka", timeout=45.0)

    def data_paths(self) -> list[Path]:
        return [self.data]


async def _list_topics(bootstrap: str, timeout: float) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return set(await asyncio.wait_for(admin.list_topics(), timeout))
    finally:
        await admin.close()
