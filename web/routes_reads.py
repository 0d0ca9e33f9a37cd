"""Alerts and the dedup figures: the same tables and the same counting as ``picnix report``."""

from __future__ import annotations

from fastapi import APIRouter, Query

from sinks.report import COUNTS_SQL, DedupCounts
from web import queries
from web.auth import Caller
from web.cursor import BadCursor, Position, decode_cursor, encode_cursor
from web.models import AlertPage, Stats
from web.problems import Problem
from web.services import Svc

router = APIRouter(tags=["reads"])
LISTING = "alerts"


@router.get("/v1/alerts", response_model=AlertPage)
async def list_alerts(
    key: Caller, svc: Svc,
    cursor: str | None = Query(None), limit: int | None = Query(None, ge=1, le=1000),
) -> AlertPage:
    """Possible IP theft, newest first: for a platform, the alerts on its posts either way."""
    try:
        after = decode_cursor(cursor, LISTING) if cursor else None
    except BadCursor as exc:
        raise Problem(400, "bad-cursor", str(exc)) from exc
    size = min(limit or svc.settings.api_page_limit, svc.settings.api_page_limit)
    async with svc.connection() as conn:
        rows = await queries.list_alerts(conn, key.platform, after, size)
    page = rows[:size]
    next_cursor = None
    if len(rows) > size:
        seq, last = page[-1]
        next_cursor = encode_cursor(Position(seq, last.post_id), LISTING)
    return AlertPage(items=[alert for _, alert in page], next_cursor=next_cursor)


@router.get("/v1/stats", response_model=Stats)
async def stats(key: Caller, svc: Svc) -> Stats:
    """The whole deployment's figures (aggregates, the same for every key)."""
    async with svc.connection() as conn:
        cur = await conn.execute(COUNTS_SQL)
        counts = DedupCounts.from_row(await cur.fetchone())
    return Stats(
        uploads=counts.posts, images=counts.images, bytes_saved=counts.bytes_saved,
        dedup_rate=counts.dedup_rate, clusters=counts.clusters, alerts=counts.alerts,
        dlq=await svc.dead_letters(),
    )
