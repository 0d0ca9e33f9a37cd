"""The dedup report: what the pipeline stored, what it referenced, and what that saved."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from infra.settings import Settings
from sinks.dead_letters_view import dead_lettered_upload_ids
from sinks.object_store import ObjectStore

DRAIN_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class DedupReport:
    posts: int
    images: int
    duplicate_references: int
    clusters: int
    alerts: int
    bytes_uploaded: int
    bytes_stored_db: int
    objects: int
    bytes_in_object_store: int

    @property
    def saving_percent(self) -> float:
        if not self.bytes_uploaded:
            return 0.0
        return 100.0 * (1 - self.bytes_stored_db / self.bytes_uploaded)

    def render(self, settings: Settings, uploads: int | None = None) -> str:
        rows = [
            ("uploads replayed", str(uploads) if uploads is not None else "-"),
            ("posts", str(self.posts)),
            ("distinct images stored", str(self.images)),
            ("duplicate references", str(self.duplicate_references)),
            ("clusters", str(self.clusters)),
            ("IP-theft alerts", str(self.alerts)),
            ("objects in bucket", str(self.objects)),
            ("bytes uploaded", f"{self.bytes_uploaded:,}"),
            ("bytes stored", f"{self.bytes_in_object_store:,}"),
            ("saving", f"{self.saving_percent:.1f} %"),
            ("Postgres", settings.pg_dsn),
            ("MinIO bucket", f"http://{settings.s3_endpoint}/{settings.s3_bucket}"),
            ("Prometheus", settings.prometheus_url),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def build_report(settings: Settings) -> DedupReport:
    with psycopg.connect(settings.pg_dsn) as conn:
        row = conn.execute(
            "SELECT"
            " (SELECT count(*) FROM posts),"
            " (SELECT count(*) FROM images),"
            " (SELECT count(*) FROM posts WHERE decision = 'duplicate-reference'),"
            " (SELECT count(*) FROM clusters WHERE member_count > 0),"
            " (SELECT count(*) FROM alerts),"
            " (SELECT coalesce(sum(byte_size), 0) FROM posts),"
            " (SELECT coalesce(sum(byte_size), 0) FROM images)"
        ).fetchone()
    assert row is not None
    store = ObjectStore(settings)
    keys = store.list_keys()
    return DedupReport(
        posts=row[0], images=row[1], duplicate_references=row[2], clusters=row[3],
        alerts=row[4], bytes_uploaded=int(row[5]), bytes_stored_db=int(row[6]),
        objects=len(keys), bytes_in_object_store=store.total_bytes(),
    )


def wait_drained(settings: Settings, upload_ids: list[str], idle_timeout: float = 90.0) -> int:
    """Wait until every upload has a post (or was dead-lettered) and every image its object.

    Returns the number of uploads still missing; gives up when nothing moved for
    ``idle_timeout`` seconds, so a stuck pipeline fails loudly instead of hanging.
    """
    wanted = set(upload_ids)
    last_progress = time.monotonic()
    last_state: tuple[int, int, int] | None = None
    store = ObjectStore(settings)
    while True:
        with psycopg.connect(settings.pg_dsn) as conn:
            posted = {
                r[0]
                for r in conn.execute(
                    "SELECT post_id FROM posts WHERE post_id = ANY(%s)", (list(wanted),)
                )
            }
            images = conn.execute("SELECT count(*) FROM images").fetchone()
        dead = dead_lettered_upload_ids(settings) & wanted
        missing = len(wanted - posted - dead)
        objects = len(store.list_keys())
        image_count = images[0] if images else 0
        if missing == 0 and objects >= image_count:
            return 0
        state = (missing, objects, image_count)
        if state != last_state:
            last_state = state
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > idle_timeout:
            return missing
        time.sleep(DRAIN_POLL_SECONDS)
