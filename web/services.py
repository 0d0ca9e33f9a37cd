"""What the server holds while it runs: a Postgres pool, the Kafka publisher, the object store,
the rate limiter, a consumer that reads the dead-letter topic's offsets, the HTTP session that
asks the workers' engine for searches, and the task that records the pipeline's rejections of
uploads (``web.rejections``).

Opened once at start (so the first request pays no connection set-up) and closed at shutdown.
None of them decides anything: reads go to what the sinks wrote, writes go to Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from infra.consumer_lag import poll_consumer_lag
from infra.kafka_clients import topic_partitions
from infra.settings import Settings
from producers.publisher import UploadPublisher
from sinks.dead_letters_view import count_dead_letters
from sinks.migrate import migration_names
from sinks.object_store import ObjectStore
from web.metrics import record_consumer_lag
from web.problems import Problem
from web.ratelimit import RateLimiter
from web.rejections import follow_rejections
from web.search_client import WorkerSearch

log = logging.getLogger(__name__)

POOL_MAX = 8
POOL_WAIT_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    publisher: UploadPublisher
    store: ObjectStore
    limiter: RateLimiter
    offsets: AIOKafkaConsumer
    search: WorkerSearch
    dlq_partitions: list[TopicPartition] = field(default_factory=list)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection; an unreachable Postgres is a 503 saying so, not a stack trace."""
        try:
            async with self.pool.connection(timeout=POOL_WAIT_SECONDS) as conn:
                yield conn
        except PoolTimeout as exc:
            raise Problem(
                503, "postgres-unavailable",
                f"no Postgres connection within {POOL_WAIT_SECONDS:.0f} s "
                f"({self.settings.pg_host}:{self.settings.pg_port}): {exc}",
                headers={"Retry-After": "5"},
            ) from exc
        except psycopg.OperationalError as exc:
            raise Problem(
                503, "postgres-unavailable",
                f"Postgres at {self.settings.pg_host}:{self.settings.pg_port} failed: {exc}",
                headers={"Retry-After": "5"},
            ) from exc

    async def dead_letters(self) -> int:
        return await count_dead_letters(self.offsets, self.dlq_partitions)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Everything connected, or an exception naming what could not be reached."""
    async with AsyncExitStack() as stack:
        pool = AsyncConnectionPool(
            settings.pg_dsn, min_size=1, max_size=POOL_MAX, open=False,
            kwargs={"autocommit": True, "connect_timeout": 5},
        )
        await pool.open(wait=True, timeout=30)
        stack.push_async_callback(pool.close)
        await _require_migrations(pool, settings)
        publisher = await stack.enter_async_context(UploadPublisher(settings))
        offsets = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )
        await offsets.start()
        stack.push_async_callback(offsets.stop)
        search = await stack.enter_async_context(WorkerSearch(settings.search_urls))
        follower = asyncio.create_task(follow_rejections(settings), name="follow-rejections")
        stack.push_async_callback(_cancel, follower)
        # the consumer groups' lag for /metrics: read here because Prometheus scrapes this
        # process, and a stuck consumer cannot report its own lag
        lag = asyncio.create_task(
            poll_consumer_lag(settings, record_consumer_lag), name="consumer-lag"
        )
        stack.push_async_callback(_cancel, lag)
        yield Services(
            settings=settings, pool=pool, publisher=publisher, store=ObjectStore(settings),
            limiter=RateLimiter(settings.api_rate_per_minute, settings.api_rate_burst),
            offsets=offsets, search=search,
            dlq_partitions=await topic_partitions(settings, settings.topic_uploads_dlq),
        )


async def _require_migrations(pool: AsyncConnectionPool, settings: Settings) -> None:
    """Refuse to start on a schema without the API's tables, naming the fix, rather than
    answering every request with a 500."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        done: set[str] = set()
        if row and row[0]:
            cur = await conn.execute("SELECT name FROM schema_migrations")
            done = {name for (name,) in await cur.fetchall()}
    missing = [name for name in migration_names() if name not in done]
    if missing:
        raise RuntimeError(
            f"database {settings.pg_database} at {settings.pg_host}:{settings.pg_port} lacks "
            f"migrations {', '.join(missing)}: run `picnix db migrate`"
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def services(request: Request) -> Services:
    """FastAPI dependency: the running server's services."""
    found: Services = request.app.state.services
    return found


Svc = Annotated[Services, Depends(services)]
