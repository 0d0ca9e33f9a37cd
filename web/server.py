"""``picnix serve``: the API on uvicorn, bound where the settings say."""

from __future__ import annotations

import uvicorn

from infra.settings import Settings
from web.app import create_app


def serve(settings: Settings, log_level: str = "info") -> None:
    """Run until SIGTERM/SIGINT; uvicorn finishes the requests in flight, then the services
    close (the producer flushes what it holds)."""
    config = uvicorn.Config(
        create_app(settings), host=settings.http_host, port=settings.http_port,
        log_level=log_level, proxy_headers=False, server_header=False,
    )
    uvicorn.Server(config).run()
