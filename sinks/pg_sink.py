"""The Postgres sink: decisions → posts, images, clusters, matches, alerts.

Its Kafka position is stored in ``sink_offsets`` in the same transaction as the rows of a batch,
so a crash at any point either keeps the whole batch and its offset or neither: at-least-once
delivery becomes an exactly-once effect without relying on Kafka commits. The batch's new
alerts go out on the alerts topic before that transaction commits (see ``alert_producer``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from infra.kafka_clients import manual_consumer, reliable_producer, topic_partitions
from infra.readiness import set_ready
from infra.settings import Settings
from schemas.cloudevents import IpTheftAlert
from schemas.envelope import SchemaError
from schemas.events import DECISION_TOPIC_EVENTS, Event, UploadRef, parse_event
from sinks import metrics
from sinks.alert_producer import publish_alerts
from sinks.dead_letter_producer import send_dead_letter
from sinks.pg_writer import write_event

log = logging.getLogger(__name__)

SINK = "postgres"
CONSUMER_NAME = "picnix-pg-sink"
BATCH_MAX_RECORDS = 500
RETRY_SECONDS = 1.0


class PostgresSink:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._settings.pg_dsn, connect_timeout=5)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def stored_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        rows = self._connection().execute(
            "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s",
            (CONSUMER_NAME,),
        ).fetchall()
        self._connection().commit()
        known = {TopicPartition(t, p): o for t, p, o in rows}
        return {tp: known[tp] for tp in partitions if tp in known}

    async def write_batch(
        self, tp: TopicPartition, events: list[Event], next_offset: int,
        producer: AIOKafkaProducer,
    ) -> int:
        """Write the events and the new position atomically; returns how many changed rows.

        The batch's new alerts are published inside the transaction, before its commit: a send
        that fails raises and rolls the batch back, to be written (and sent) again.
        """
        conn = self._connection()
        written = 0
        alerts: list[IpTheftAlert] = []
        with conn.transaction():
            for event in events:
                result = write_event(conn, event)
                written += result.changed
                if result.alert is not None:
                    alerts.append(result.alert)
            conn.execute(
                "INSERT INTO sink_offsets (consumer, topic, partition, next_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset",
                (CONSUMER_NAME, tp.topic, tp.partition, next_offset),
            )
            await publish_alerts(producer, self._settings, alerts)
        metrics.ALERTS.inc(len(alerts))  # committed now: a batch rolled back counted nothing
        return written

    async def run(self, stop: asyncio.Event) -> None:
        consumer = manual_consumer(self._settings, group_id=None)
        producer = reliable_producer(self._settings)
        await consumer.start()
        await producer.start()
        try:
            partitions = await topic_partitions(self._settings, self._settings.topic_decisions)
            consumer.assign(partitions)
            await self._seek_to_stored(consumer, partitions)
            set_ready(True)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_MAX_RECORDS)
                for tp, records in batches.items():
                    events: list[Event] = []
                    for record in records:
                        try:
                            events.append(parse_event(record.value, DECISION_TOPIC_EVENTS))
                        except SchemaError as exc:
                            ref = UploadRef(tp.topic, tp.partition, record.offset)
                            await send_dead_letter(
                                producer, self._settings, SINK, exc.code, exc.detail, ref,
                                record.value,
                            )
                    metrics.RECORDS.labels(sink=SINK).inc(len(records))
                    started = time.perf_counter()
                    try:
                        written = await self.write_batch(
                            tp, events, records[-1].offset + 1, producer
                        )
                    except (psycopg.OperationalError, KafkaError) as exc:
                        # KafkaError: an alert was not acknowledged, so the batch rolled back
                        metrics.FAILURES.labels(sink=SINK).inc()
                        log.warning(
                            "postgres or the alerts topic unavailable (%s); retrying from the"
                            " stored offset", exc,
                        )
                        self._drop_connection()
                        await asyncio.sleep(RETRY_SECONDS)
                        await self._seek_to_stored(consumer, partitions)
                        break
                    metrics.BATCH_SECONDS.labels(sink=SINK).observe(time.perf_counter() - started)
                    metrics.WRITES.labels(sink=SINK).inc(written)
                    metrics.set_lag(SINK, consumer.highwater(tp), records[-1].offset + 1)
        finally:
            await consumer.stop()
            await producer.stop()
            self._drop_connection()

    async def _seek_to_stored(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> None:
        while True:
            try:
                stored = self.stored_offsets(partitions)
                break
            except psycopg.OperationalError as exc:
                log.warning("postgres unavailable (%s); waiting", exc)
                self._drop_connection()
                await asyncio.sleep(RETRY_SECONDS)
        for tp in partitions:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)
