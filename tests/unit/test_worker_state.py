"""Local table state against its log, per-worker settings, and what `stack reset` wipes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aiokafka import TopicPartition
from faust.stores.rocksdb import Store
from rocksdict import Options, Rdict

from infra.pipeline import COMPONENTS, components
from infra.settings import Settings
from infra.stack.manager import stack_reset
from infra.worker_state import LocalPartition, local_partitions, stale_reason

CLUSTER = "QSwsZfBTRz-0qgB1RsQLNw"


def _faust_table(settings: Settings, table: str, partition: int, offset: int | None) -> Path:
    """A table partition written the way faust's rocksdb store writes it."""
    path = settings.faust_datadir / "v1" / "tables" / f"{table}-{partition}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Rdict(str(path), options=Options(raw_mode=True))
    db.put(b"some-key", b"some-value")
    if offset is not None:
        db.put(Store.offset_key, str(offset).encode())
    db.close()
    return path


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, faust_app_id="app")


def test_local_partitions_read_faust_offsets_and_name_the_changelogs(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _faust_table(settings, "stored-images", 0, 55)
    _faust_table(settings, "posts", 0, None)
    found = {p.changelog: p.persisted_offset for p in local_partitions(settings)}
    assert found == {
        TopicPartition("app-stored-images-changelog", 0): 55,
        TopicPartition("app-posts-changelog", 0): None,
    }


def test_state_ahead_of_its_changelog_or_from_another_cluster_is_stale(tmp_path: Path) -> None:
    tp = TopicPartition("app-posts-changelog", 0)
    local = [LocalPartition(tp, tmp_path / "posts-0.db", 55)]
    # Faust's persisted offset is the last applied one: end offset 56 means it is up to date
    assert stale_reason(local, {tp: 56}, CLUSTER, CLUSTER) is None
    assert stale_reason(local, {tp: 80}, CLUSTER, None) is None
    behind = stale_reason(local, {tp: 55}, CLUSTER, CLUSTER)
    assert behind is not None and "past the changelog's end (55)" in behind
    missing = stale_reason(local, {tp: None}, CLUSTER, CLUSTER)
    assert missing is not None and "missing" in missing
    other = stale_reason(local, {tp: 80}, CLUSTER, "another-cluster")
    assert other is not None and "another-cluster" in other
    # a table that never applied a changelog record has nothing to be ahead with
    assert stale_reason([LocalPartition(tp, tmp_path, None)], {tp: None}, CLUSTER, None) is None


def test_each_worker_has_its_own_datadir_and_ports(tmp_path: Path) -> None:
    base = _settings(tmp_path)
    workers = [dataclasses.replace(base, worker_index=i) for i in range(8)]
    assert len({w.faust_datadir for w in workers}) == 8
    assert workers[0].worker_metrics_port == base.metrics_port_worker
    others = {base.metrics_port_pg_sink, base.metrics_port_blob_sink, base.metrics_port_replay}
    ports = [w.worker_metrics_port for w in workers] + [w.worker_web_port for w in workers]
    assert len(set(ports)) == len(ports) and not others & set(ports)
    assert {w.worker_group_id for w in workers} == {"app"}


def test_pipeline_components_for_w_workers() -> None:
    names = [c.name for c in components(3)]
    assert names == [
        "picnix-worker", "picnix-worker-1", "picnix-worker-2", "picnix-pg-sink",
        "picnix-blob-sink",
    ]
    assert [c.name for c in COMPONENTS] == ["picnix-worker", "picnix-pg-sink", "picnix-blob-sink"]


def test_stack_reset_wipes_the_workers_table_state(tmp_path: Path) -> None:
    """No service runs under this home, so reset only wipes its (temporary) data."""
    settings = _settings(tmp_path)
    table = _faust_table(settings, "posts", 0, 55)
    stack_reset(settings)
    assert not table.exists() and not settings.faust_root.exists()
