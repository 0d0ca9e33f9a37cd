"""``POST /v1/search``: "is this image already here?", answered by the engine itself.

The picture is checked as an upload is (size cap, magic bytes), then evaluated by the worker that
holds the engine, with the same code a decision runs and against the state it has now; nothing
is stored, published or changed. The posts that show a matched image come from Postgres, scoped
to the key like every read: a platform sees a match only through its own posts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from producers.publisher import UploadRefused, check_image
from web import queries
from web.auth import Caller
from web.models import Evidence, SearchMatch, SearchResult
from web.problems import Problem
from web.routes_uploads import check_multipart, read_image_part, refusal_problem
from web.search_client import SearchUnavailable
from web.services import Svc

router = APIRouter(tags=["search"])
# The posts listed with a match; the rest are on /v1/posts/{id}/duplicates.
MATCH_POSTS_LIMIT = 50
RETRY_AFTER_SECONDS = "10"

SEARCH_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/v1/search", response_model=SearchResult, openapi_extra=SEARCH_FORM_SCHEMA,
    summary="Find the stored image a picture is a copy of, storing nothing",
)
async def search(request: Request, key: Caller, svc: Svc) -> SearchResult:
    image = await _read_image(request, svc.settings.max_image_bytes)
    try:
        answer = await svc.search.search(image)
    except SearchUnavailable as exc:
        raise Problem(
            503, "search-unavailable", f"{exc}; is the pipeline running?",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from exc
    body = answer.body
    if answer.status == 422:
        raise Problem(
            422, f"image-{body.get('reason', 'rejected')}",
            f"the engine cannot read the picture: {body.get('detail', body)}",
        )
    if answer.status == 503:
        raise Problem(
            503, "search-unavailable", f"the engine is not ready: {body.get('detail', body)}",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    if answer.status != 200:
        raise Problem(502, "search-failed", f"the worker answered {answer.status}: {body}")
    matches: list[SearchMatch] = []
    found = body.get("match")
    if found is not None:
        async with svc.connection() as conn:
            posts = await queries.posts_showing(
                conn, found["image_id"], key.platform, MATCH_POSTS_LIMIT
            )
        if posts and posts[0].decision is not None:
            matches.append(SearchMatch(
                image=posts[0].decision.image,
                evidence=Evidence(
                    method=found["method"], distance=found["distance"], region=found["region"],
                    reason=found["reason"],
                ),
                posts=posts,
            ))
    return SearchResult(matches=matches, searched_images=int(body["stored_images"]))


async def _read_image(request: Request, cap: int) -> bytes:
    check_multipart(request, cap, "a search is multipart/form-data with the field image")
    async with request.form(max_files=1, max_fields=2) as form:
        image, filename = await read_image_part(form, cap)
    try:
        check_image(image, cap, filename or "image")
    except UploadRefused as exc:
        raise refusal_problem(exc) from exc
    return image
