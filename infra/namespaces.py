"""Namespaces of their own on the running stack, for test sessions and benchmarks.

A namespace is a settings object whose topics share the Faust app id as prefix and whose
database is its own; provisioning it is the stack's business (``stack_up`` or its parts), and
dropping it here deletes exactly that again, so runs beside the demo never grow the stack or
touch the demo's data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket

import psycopg
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import Settings

DEFAULT_TOPIC_PREFIX = "picnix."


def namespaced(base: Settings, prefix: str, **overrides: object) -> Settings:
    """``base`` with every topic and the Faust app id (so its group, changelogs and datadir)
    named after ``prefix``: picnix.uploads becomes <prefix>.uploads, and so on for each
    ``topic_*`` setting, so a topic added later is namespaced too."""
    topics = {
        f.name: f"{prefix}.{f.default.removeprefix(DEFAULT_TOPIC_PREFIX)}"
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_") and isinstance(f.default, str)
    }
    return dataclasses.replace(base, faust_app_id=prefix, **topics, **overrides)  # type: ignore[arg-type]


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick; racy only against other pickers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drop_namespace(settings: Settings) -> None:
    """Delete the namespace's topics (every one named with its app id, Faust's changelogs
    too), its workers' local table state and its database."""

    async def delete_topics() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(settings.faust_app_id)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    asyncio.run(delete_topics())
    shutil.rmtree(settings.faust_root / settings.faust_app_id, ignore_errors=True)
    admin_db = dataclasses.replace(settings, pg_database="postgres")
    with psycopg.connect(admin_db.pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{settings.pg_database}" WITH (FORCE)')
