"""The FastAPI application: routers, error shapes, metrics, and the services' lifetime.

``create_app`` takes the settings object rather than reading the environment itself, so a test
or a tool builds a server for any namespace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from infra.readiness import set_ready
from infra.settings import Settings
from web import (
    problems,
    routes_images,
    routes_ops,
    routes_posts,
    routes_reads,
    routes_search,
    routes_uploads,
)
from web.metrics import MetricsMiddleware
from web.pages.mount import install_pages
from web.services import open_services

DESCRIPTION = (
    "PicNix's HTTP API: upload images as posts, read what the pipeline decided (new cluster, "
    "merge into a cluster, duplicate of a stored image), their duplicates, similar posts and "
    "IP-theft alerts, and stream stored images. Every /v1 call needs "
    "`Authorization: Bearer <key>`; errors are RFC 9457 problem details."
)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_ready(False)
        async with open_services(settings) as svc:
            app.state.services = svc
            set_ready(True)  # what `picnix pipeline up` waits for on /metrics
            try:
                yield
            finally:
                set_ready(False)

    # No /docs or /redoc: FastAPI's pages load their JavaScript from a CDN, and nothing this
    # server shows may depend on one; the schema itself is /openapi.json.
    app = FastAPI(
        title="PicNix", version="1", description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,
    )
    problems.install(app)

    @app.exception_handler(KafkaError)
    async def _kafka_down(request: Request, exc: KafkaError) -> JSONResponse:
        # Publishing retries across a broker restart before it gets here (UploadPublisher).
        problem = problems.Problem(
            503, "kafka-unavailable",
            f"{request.method} {request.url.path} needs Kafka at {settings.kafka_bootstrap}, "
            f"which failed: {type(exc).__name__}: {exc}; nothing was published, retry later",
            headers={"Retry-After": "10"},
        )
        return problems.problem_response(problem, request.url.path)

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # a value no Postgres text can hold (a NUL character) in a path or query parameter
        problem = problems.Problem(
            400, "unstorable-value", f"a parameter of the request cannot be looked up: {exc}"
        )
        return problems.problem_response(problem, request.url.path)

    for module in (
        routes_uploads, routes_posts, routes_images, routes_reads, routes_search, routes_ops
    ):
        app.include_router(module.router)
    install_pages(app)  # the web page for moderators, on the same reads and publishing paths
    app.add_middleware(MetricsMiddleware)
    return app
