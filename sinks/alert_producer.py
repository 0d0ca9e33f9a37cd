"""Publishes possible-IP-theft alerts on the alerts topic as CloudEvents (binary mode).

The Postgres sink decides which alerts are new (their row was inserted) and calls this before it
commits the batch: a failed send rolls the batch back and it is written again, a crash after the
send and before the commit sends the alert again with the same ``ce_id``. At least once, never
lost, and a consumer that de-duplicates on (``ce_source``, ``ce_id``) sees each alert once.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas.cloudevents import IpTheftAlert, ip_theft_alert

SOURCE_PREFIX = "urn:picnix:"


def alert_source(settings: Settings) -> str:
    """The ``ce_source`` of this PicNix instance's alerts: its app id names the instance."""
    return SOURCE_PREFIX + settings.faust_app_id


async def publish_alerts(
    producer: AIOKafkaProducer, settings: Settings, alerts: list[IpTheftAlert]
) -> None:
    """Send every alert and wait until each is acknowledged (the producer is acks=all)."""
    if not alerts:
        return
    source = alert_source(settings)
    pending = []
    for alert in alerts:
        record = ip_theft_alert(alert, source)
        # send() queues the record and returns its delivery future; queueing all of them first
        # lets one request carry the batch's alerts
        pending.append(
            await producer.send(
                settings.topic_alerts, record.value, key=record.key, headers=record.headers
            )
        )
    await asyncio.gather(*pending)
