"""A worker's local table state, checked against its log before the Faust app starts.

Faust keeps each table partition in a RocksDB database under the worker's datadir and records
there the last changelog offset it applied (``faust.stores.rocksdb.Store.offset_key``). When the
log behind that state is gone (``picnix stack reset`` wiped Kafka, a changelog topic was deleted,
the broker is another cluster) the state is ahead of its log, and Faust's recovery stops the
worker with ``ConsistencyError: persisted offset > highwater``. Everything in that state is
derived from the changelog, so the right answer is to drop it and let Faust rebuild it from the
changelog that exists; this module does that before the app is created.

Two signs of a state that does not belong to the log: a persisted offset at or past the
changelog partition's end (or no such topic or partition), and a Kafka cluster id other than the
one recorded when the state was written (a reset broker whose changelog has grown again).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.stores.rocksdb import Store
from rocksdict import AccessType, Options, Rdict

from infra.settings import Settings

log = logging.getLogger(__name__)

CLUSTER_MARKER = "kafka-cluster-id"
KAFKA_TIMEOUT_SECONDS = 15.0
# `<datadir>/v<version>/tables/<table>-<partition>.db`, Faust's layout for `rocksdb://` tables
_VERSION_DIR = re.compile(r"^v(\d+)$")
_TABLE_DB = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


class WorkerStateError(RuntimeError):
    """The local state could not be checked against Kafka (broker unreachable, unreadable db)."""


@dataclass(frozen=True)
class LocalPartition:
    """One table partition on disk and the last changelog offset it applied."""

    changelog: TopicPartition
    path: Path
    persisted_offset: int | None


def _app_id(app_name: str, version: int) -> str:
    """Faust's app id for a version (its default ``id_format`` is ``{id}-v{version}``)."""
    return app_name if version <= 1 else f"{app_name}-v{version}"


def persisted_offset(db_path: Path) -> int | None:
    """The changelog offset Faust last applied to this database, read without modifying it."""
    try:
        db = Rdict(str(db_path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    except Exception as exc:  # rocksdict raises plain Exception for every RocksDB error
        raise WorkerStateError(f"cannot open table state {db_path}: {exc}") from exc
    try:
        raw = db.get(Store.offset_key)
    finally:
        db.close()
    return None if raw is None else int(raw)


def local_partitions(settings: Settings) -> list[LocalPartition]:
    """Every table partition in this worker's datadir, with its changelog partition."""
    found: list[LocalPartition] = []
    datadir = settings.faust_datadir
    if not datadir.is_dir():
        return found
    for version_dir in sorted(datadir.iterdir()):
        version = _VERSION_DIR.match(version_dir.name)
        tables = version_dir / "tables"
        if version is None or not tables.is_dir():
            continue
        app_id = _app_id(settings.faust_app_id, int(version.group(1)))
        for db_path in sorted(tables.iterdir()):
            name = _TABLE_DB.match(db_path.name)
            if name is None or not db_path.is_dir():
                continue
            topic = f"{app_id}-{name.group('table')}-changelog"
            found.append(
                LocalPartition(
                    TopicPartition(topic, int(name.group("partition"))),
                    db_path,
                    persisted_offset(db_path),
                )
            )
    return found


async def _log_facts(
    settings: Settings, partitions: list[TopicPartition]
) -> tuple[str, dict[TopicPartition, int | None]]:
    """The cluster id and each changelog partition's end offset (None: no such partition)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(KAFKA_TIMEOUT_SECONDS * 1000),
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=int(KAFKA_TIMEOUT_SECONDS * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), KAFKA_TIMEOUT_SECONDS)
        await asyncio.wait_for(consumer.start(), KAFKA_TIMEOUT_SECONDS)
        cluster_id = str((await admin.describe_cluster()).get("cluster_id"))
        described = await admin.describe_topics(sorted({tp.topic for tp in partitions}))
        present = {
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d["error_code"] == 0
            for p in d["partitions"]
        }
        existing = [tp for tp in partitions if tp in present]
        ends = await consumer.end_offsets(existing) if existing else {}
        return cluster_id, {tp: ends.get(tp) for tp in partitions}
    except (TimeoutError, KafkaError, OSError) as exc:
        raise WorkerStateError(
            f"cannot compare the local table state with Kafka at {settings.kafka_bootstrap}: "
            f"{exc!r}"
        ) from exc
    finally:
        await consumer.stop()
        await admin.close()


def stale_reason(
    local: list[LocalPartition],
    ends: dict[TopicPartition, int | None],
    cluster_id: str,
    recorded_cluster_id: str | None,
) -> str | None:
    """Why the local state cannot continue from this log, or None when it can."""
    if recorded_cluster_id is not None and recorded_cluster_id != cluster_id:
        return (
            f"the state was written against Kafka cluster {recorded_cluster_id}, "
            f"the broker is cluster {cluster_id}"
        )
    for part in local:
        if part.persisted_offset is None:
            continue
        end = ends.get(part.changelog)
        if end is None:
            return (
                f"{part.path.name} applied {part.changelog.topic}[{part.changelog.partition}] "
                f"up to offset {part.persisted_offset}, and that changelog partition is missing"
            )
        if part.persisted_offset >= end:
            return (
                f"{part.path.name} applied {part.changelog.topic}[{part.changelog.partition}] "
                f"up to offset {part.persisted_offset}, past the changelog's end ({end})"
            )
    return None


def ensure_worker_state(settings: Settings) -> str | None:
    """Drop this worker's local table state if it is ahead of its log; returns why, if it did.

    Faust then restores every assigned table partition from its changelog, as on a new machine.
    The Kafka cluster id is recorded beside the state for the next start's check.
    """
    datadir = settings.faust_datadir
    local = local_partitions(settings)
    cluster_id, ends = asyncio.run(_log_facts(settings, [p.changelog for p in local]))
    marker = datadir / CLUSTER_MARKER
    recorded = marker.read_text().strip() if marker.is_file() else None
    reason = stale_reason(local, ends, cluster_id, recorded)
    if reason is not None:
        log.warning("local table state in %s dropped, rebuilt from the changelog: %s",
                    datadir, reason)
        shutil.rmtree(datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    marker.write_text(cluster_id + "\n")
    return reason
