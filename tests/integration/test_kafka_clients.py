"""Asking about a topic that does not exist creates nothing: our broker auto-creates topics
(Faust needs it), and a metadata request naming a missing topic would make it, with one
partition, so a refusal would be followed by a wrong topic."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from infra.consumer_lag import WatchedGroup, read_consumer_lag
from infra.kafka_clients import topic_partitions
from infra.settings import Settings

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 1.0  # the broker creates an auto-created topic asynchronously


async def _topic_exists(settings: Settings, name: str) -> bool:
    await asyncio.sleep(SETTLE_SECONDS)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return name in await admin.list_topics()
    finally:
        await admin.close()


def test_topic_partitions_refuses_a_missing_topic_and_creates_none(
    stack_settings: Settings,
) -> None:
    name = f"picnix-test-missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="does not exist"):
        asyncio.run(topic_partitions(stack_settings, name))
    assert not asyncio.run(_topic_exists(stack_settings, name))


def test_reading_the_lag_of_a_group_on_a_missing_topic_creates_none(
    stack_settings: Settings,
) -> None:
    name = f"picnix-test-missing-{uuid.uuid4().hex[:8]}"

    async def read() -> list[object]:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap)
        await admin.start()
        await consumer.start()
        try:
            return list(await read_consumer_lag(admin, consumer, [WatchedGroup("g", (name,))]))
        finally:
            await consumer.stop()
            await admin.close()

    assert asyncio.run(read()) == []
    assert not asyncio.run(_topic_exists(stack_settings, name))
