"""``GET /v1/images/{sha256}``: a stored image's bytes, streamed from the object store.

The URL names the content, so the bytes behind it never change: the ETag is the hash, the
response may be cached for a year (privately: it needs a key), and a client that has it gets a
304 without the object store being asked.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from sinks.blob_keys import blob_key
from web import queries
from web.auth import Caller
from web.keys import ApiKey
from web.problems import Problem
from web.services import Services, Svc

router = APIRouter(tags=["images"])
CACHE_CONTROL = "private, max-age=31536000, immutable"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or a list of tags, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


@router.get(
    "/v1/images/{sha256}",
    responses={200: {"content": {"image/*": {}}}, 304: {"description": "not modified"}},
)
async def get_image(
    key: Caller, svc: Svc,
    request: Request,
    sha256: str = Path(pattern="^[0-9a-f]{64}$", description="lowercase hex SHA-256"),
) -> Response:
    return await image_response(svc, key, sha256, request.headers.get("if-none-match"))


async def image_response(
    svc: Services, key: ApiKey, sha256: str, if_none_match: str | None
) -> Response:
    """A stored image's bytes as the key may see them, or a 304 / a 404 saying why not; the
    API's route and the web page's cookie-authenticated route both answer through here."""
    async with svc.connection() as conn:
        visible = await queries.image_visible(conn, sha256, key.platform)
    if not visible:
        raise Problem(404, "image-not-found", f"no stored image {sha256} visible to this key")
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    stored = await run_in_threadpool(svc.store.open, blob_key(sha256))
    if stored is None:
        raise Problem(
            404, "image-not-stored-yet",
            f"image {sha256} is decided but its object {blob_key(sha256)} is not in bucket "
            f"{svc.settings.s3_bucket} yet: the blob sink writes it shortly after the decision",
            headers={"Retry-After": "1"},
        )
    headers["Content-Length"] = str(stored.size)
    return StreamingResponse(
        iterate_in_threadpool(stored.chunks()), media_type=stored.content_type,
        headers=headers, background=BackgroundTask(stored.close),
    )
