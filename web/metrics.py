"""The server's Prometheus metrics: request counts and latency by method, route and status, and
the consumer groups' lag it reads from Kafka (``record_consumer_lag``).

The route label is the matched route's template (``/v1/posts/{post_id}``), never the raw path,
so ids in URLs cannot grow the number of series; a path no route matches counts as
``unmatched``. Buckets span a cached 304 (well under a millisecond) to a 10 MiB upload waiting
for acks=all on a busy broker (seconds).
"""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.consumer_lag import TopicLag

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
REQUESTS = Counter(
    "picnix_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "picnix_http_request_seconds", "Time from request to the end of the response",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS,
)
UNMATCHED = "unmatched"
# Read by `picnix serve` from the broker (infra.consumer_lag) for every group that commits to
# Kafka; the Postgres sink's own position is picnix_sink_lag_records{sink="postgres"}.
CONSUMER_LAG = Gauge(
    "picnix_consumer_lag_records",
    "Records of a topic its consumer group has not committed, summed over partitions",
    ["group", "topic"],
)
CONSUMER_LAG_COLLECTED = Gauge(
    "picnix_consumer_lag_collected_timestamp_seconds",
    "Unix time of the last successful reading of the group's lag",
    ["group"],
)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class MetricsMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so a streamed image is timed to its last byte and
    is not buffered by the middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before it answers

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope["method"], route_label(scope), str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - started)


def record_consumer_lag(lags: list[TopicLag], collected_at: float) -> None:
    """Publish one reading; a group or topic absent from it keeps its last value, and its
    collection timestamp then tells how old that value is."""
    for lag in lags:
        CONSUMER_LAG.labels(group=lag.group, topic=lag.topic).set(lag.records)
    for group in {lag.group for lag in lags}:
        CONSUMER_LAG_COLLECTED.labels(group=group).set(collected_at)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
