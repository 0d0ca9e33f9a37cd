"""Ordered SQL migrations, applied once each, recorded in ``schema_migrations``."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5049434E  # "PICN": one migrator at a time


def migration_names() -> list[str]:
    folder = resources.files("sinks") / "migrations"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations in name order; returns the ones applied now."""
    applied_now: list[str] = []
    folder = resources.files("sinks") / "migrations"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name in migration_names():
                if name in done:
                    continue
                sql = (folder / name).read_text()
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                log.info("applied migration %s", name)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
