"""``POST /search`` on a worker's Faust web server: "is this picture already stored?".

The engine's state lives only in the worker that owns the decide partition, so a search must be
answered there. Any worker accepts the request and forwards it to that owner, found from the
partition assignment; Faust's own ``table_route`` cannot do this, as it forwards no request
body. The body is the raw image; the answer is JSON (:func:`result_json`) or an error with a
``reason`` and a ``detail``. The picture is decoded and evaluated like an upload, and nothing
is stored: no table, no topic, no cluster changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import faust
from faust.tables.manager import TableManager
from faust.web import Request, Response, View
from yarl import URL

from stream_processors.decider import SearchResult

log = logging.getLogger(__name__)

SEARCH_PATH = "/search"
# Set on a forwarded request: the owner it reaches must answer, never forward again.
FORWARDED_HEADER = "X-PicNix-Forwarded"
FORWARD_TIMEOUT_SECONDS = 30.0
# Every key of the one-partition tables lives on the same worker; any key names it.
ROUTE_KEY = "search"

REASON_NOT_READY = "engine-not-ready"
REASON_NO_OWNER = "no-decide-owner"
REASON_OWNER_UNREACHABLE = "owner-unreachable"


@dataclass(frozen=True)
class SearchRefused:
    """A search this worker cannot answer, with the HTTP status it travels as."""

    status: int
    reason: str
    detail: str


Searcher = Callable[[bytes], Awaitable[SearchResult | SearchRefused]]


def result_json(result: SearchResult, worker: str) -> dict[str, Any]:
    """The worker's answer; the API adds the posts that show a matched image."""
    match = None
    if result.match is not None:
        m = result.match
        match = {"image_id": m.image_id, "sha256": m.sha256, "method": m.method,
                 "distance": m.distance,
                 "region": None if m.region is None else dataclasses.asdict(m.region),
                 "reason": m.reason}
    return {
        "match": match, "cluster_id": result.cluster_id,
        "cluster_distance": result.cluster_distance, "stored_images": result.stored_images,
        "worker": worker,
    }


def install_search_view(
    app: faust.App, table: Any, decide_topic: str, search: Searcher
) -> None:
    """Add ``POST /search`` to the app's web server. ``table`` is one of decide's tables (its
    partition's owner is the decide owner); ``decide_topic`` is the topic decide consumes, whose
    partition this worker must hold, recovered, before it answers."""

    def _ident(url: URL) -> tuple[str, int]:
        return (url.host or "", int(url.port or 80))

    def _ready() -> bool:
        recovered = cast(TableManager, app.tables).recovery.completed.is_set()
        if app.rebalancing or app.in_recovery or not recovered:
            return False
        return any(tp.topic == decide_topic for tp in app.assignor.assigned_actives())

    @app.page(SEARCH_PATH)
    class SearchView(View):
        async def post(self, request: Request, **kwargs: Any) -> Response:
            image = await self.read_request_content(request)
            here = URL(str(app.conf.canonical_url))
            try:
                owner = app.router.key_store(table.name, ROUTE_KEY)
            except KeyError:
                return self._refused(SearchRefused(
                    503, REASON_NO_OWNER,
                    "no worker holds the decide partition yet (the group is rebalancing)",
                ))
            if _ident(owner) != _ident(here):
                if request.headers.get(FORWARDED_HEADER):
                    return self._refused(SearchRefused(
                        503, REASON_NO_OWNER,
                        f"forwarded to {here} but the decide partition is at {owner}: "
                        "ownership is moving, retry",
                    ))
                return await self._forward(owner, image)
            if not _ready():
                return self._refused(SearchRefused(
                    503, REASON_NOT_READY,
                    f"worker {here} owns the decide partition but is still recovering its state",
                ))
            answer = await search(image)
            if isinstance(answer, SearchRefused):
                return self._refused(answer)
            return self.json(result_json(answer, str(here)))

        async def _forward(self, owner: URL, image: bytes) -> Response:
            target = owner.with_path(SEARCH_PATH)
            timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS)
            try:
                async with app.http_client.post(
                    target, data=image, timeout=timeout,
                    headers={FORWARDED_HEADER: "1", "Content-Type": "application/octet-stream"},
                ) as resp:
                    body = await resp.read()
                    return self.bytes(body, content_type=resp.content_type, status=resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("search: forwarding to %s failed: %r", target, exc)
                return self._refused(SearchRefused(
                    503, REASON_OWNER_UNREACHABLE,
                    f"the decide owner {owner} did not answer: {type(exc).__name__}: {exc}",
                ))

        def _refused(self, refused: SearchRefused) -> Response:
            return self.json(
                {"reason": refused.reason, "detail": refused.detail}, status=refused.status
            )
