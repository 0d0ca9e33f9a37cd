"""For the people who run it: /healthz (is Postgres reachable from here) and /metrics.

Neither needs a key: a load balancer and Prometheus call them, and they say nothing about posts.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from web.metrics import metrics_response
from web.models import Health
from web.services import Svc

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz(svc: Svc) -> Health:
    async with svc.connection() as conn:
        cur = await conn.execute("SELECT version()")
        row = await cur.fetchone()
    version = str(row[0]).split(" on ")[0] if row else "unknown"
    return Health(status="ok", postgres=version)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return metrics_response()
