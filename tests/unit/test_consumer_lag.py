"""Consumer lag from committed offsets and log bounds (``infra.consumer_lag``), and the gauges
``picnix serve`` publishes it on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from infra.consumer_lag import (
    TopicLag,
    lag_by_topic,
    partition_lag,
    poll_consumer_lag,
    watched_groups,
)
from infra.settings import Settings
from web.metrics import record_consumer_lag


def test_partition_lag_counts_from_the_committed_offset_to_the_log_end() -> None:
    assert partition_lag(committed=7, log_start=0, log_end=10) == 3
    assert partition_lag(committed=10, log_start=0, log_end=10) == 0


def test_a_partition_never_committed_counts_from_its_log_start() -> None:
    assert partition_lag(committed=None, log_start=0, log_end=10) == 10
    assert partition_lag(committed=None, log_start=4, log_end=10) == 6
    assert partition_lag(committed=None, log_start=0, log_end=0) == 0


def test_records_deleted_before_they_were_read_are_not_lag() -> None:
    # retention moved the log start past the group's position: only 20..30 can still be read
    assert partition_lag(committed=5, log_start=20, log_end=30) == 10


def test_lag_is_never_negative() -> None:
    # a commit read just after a log end that was read earlier (two requests, not one snapshot)
    assert partition_lag(committed=12, log_start=0, log_end=10) == 0


def test_lag_by_topic_sums_partitions_and_treats_minus_one_as_no_commit() -> None:
    up0, up1, feat0 = (
        TopicPartition("u", 0), TopicPartition("u", 1), TopicPartition("f", 0),
    )
    committed = {up0: 5, up1: -1}  # f/0 not committed at all: missing, like the broker says
    log_start = {up0: 0, up1: 2, feat0: 0}
    log_end = {up0: 9, up1: 6, feat0: 3}
    assert lag_by_topic(committed, log_start, log_end) == {"u": 4 + 4, "f": 3}


def test_lag_by_topic_reports_a_caught_up_topic_as_zero() -> None:
    tp = TopicPartition("d", 0)
    assert lag_by_topic({tp: 42}, {tp: 0}, {tp: 42}) == {"d": 0}


def test_watched_groups_are_the_workers_and_the_blob_sinks_of_the_namespace() -> None:
    settings = dataclasses.replace(
        Settings(), faust_app_id="ns", topic_uploads="ns.u", topic_features="ns.f",
        topic_decisions="ns.d",
    )
    watched = {g.group: g.topics for g in watched_groups(settings)}
    # the Postgres sink keeps its position in Postgres: no group of its own here
    assert watched == {"ns": ("ns.u", "ns.f"), "ns-blob-sink": ("ns.d",)}


def test_record_consumer_lag_sets_one_gauge_per_group_and_topic() -> None:
    record_consumer_lag(
        [TopicLag("g-unit", "t1", 3), TopicLag("g-unit", "t2", 0)], collected_at=1234.5
    )

    def value(name: str, labels: dict[str, str]) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert value("picnix_consumer_lag_records", {"group": "g-unit", "topic": "t1"}) == 3
    assert value("picnix_consumer_lag_records", {"group": "g-unit", "topic": "t2"}) == 0
    assert value("picnix_consumer_lag_collected_timestamp_seconds", {"group": "g-unit"}) == 1234.5


def test_the_poller_outlives_an_unreachable_kafka_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = dataclasses.replace(Settings(), kafka_bootstrap=f"127.0.0.1:{port}")
    readings: list[list[TopicLag]] = []

    async def run_a_while() -> bool:
        task = asyncio.create_task(
            poll_consumer_lag(settings, lambda lags, _at: readings.append(lags), interval=0.05)
        )
        await asyncio.sleep(0.6)
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return alive

    with caplog.at_level(logging.WARNING, logger="infra.consumer_lag"):
        assert asyncio.run(run_a_while()), "the poller must not die with Kafka away"
    assert readings == []
    warnings = [r for r in caplog.records if r.name == "infra.consumer_lag"]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0].getMessage()
