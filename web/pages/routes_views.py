"""The page's read views (grid, post, alerts, dashboard) and what their images and scripts
fetch. Each view calls the API's own route functions and queries with the session's operator
key, so the page lists, scopes and pages exactly as ``/v1`` does.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request, Response

from web import queries, routes_posts, routes_reads
from web.keys import ApiKey
from web.models import Post
from web.pages.auth import SignedIn, SignedInFetch
from web.pages.render import PageRoute, page
from web.pages.upload_copy import media_type, read_uploaded
from web.problems import Problem
from web.routes_images import image_response
from web.services import Services, Svc

router = APIRouter(route_class=PageRoute, include_in_schema=False)
fetch_router = APIRouter(include_in_schema=False)

GRID_PAGE_SIZE = 60
SIDE_PAGE_SIZE = 50



def _copies(post: Post, duplicates: list[Post]) -> list[Post]:
    """The posts of this post's stored image that are copies, i.e. not the image's first post."""
    if post.decision is None:
        return []
    first = post.decision.image.first_post_id
    every = sorted(
        [post, *duplicates],
        key=lambda p: (p.decision.decided_seq if p.decision else 0, p.post_id),
    )
    return [p for p in every if p.post_id != first]


@router.get("/")
async def grid(
    request: Request, session: SignedIn, svc: Svc,
    show: str = Query("all", pattern="^(all|duplicates|alerts)$"),
    cursor: str | None = Query(None),
) -> Response:
    listing = await routes_posts.list_posts(
        session.key, svc, duplicates=True if show == "duplicates" else None,
        alerts=True if show == "alerts" else None, author=None, cursor=cursor,
        limit=GRID_PAGE_SIZE,
    )
    async with svc.connection() as conn:
        counts = await queries.badge_counts(
            conn, [p.post_id for p in listing.items], session.key.platform
        )
    return page(request, "grid.html", {
        "posts": listing.items, "next_cursor": listing.next_cursor, "counts": counts,
        "show": show, "deleted": request.query_params.get("deleted"),
    })


@router.get("/posts/{post_id}")
async def post_page(request: Request, post_id: str, session: SignedIn, svc: Svc) -> Response:
    key = session.key
    post = await routes_posts.find_post(svc, post_id, key)
    duplicates: list[Post] = []
    similar: list[Post] = []
    if post.decision is not None:
        duplicates = await routes_posts.post_duplicates(key, svc, post_id, SIDE_PAGE_SIZE)
        similar = await routes_posts.post_similar(key, svc, post_id, SIDE_PAGE_SIZE)
    copies = _copies(post, duplicates)
    async with svc.connection() as conn:
        as_uploaded = await queries.upload_positions(
            conn, [p.post_id for p in copies], key.platform
        )
        counts = await queries.badge_counts(conn, [p.post_id for p in similar], key.platform)
    return page(request, "post.html", {
        "post": post, "duplicates": duplicates, "similar": similar, "copies": copies,
        "as_uploaded": as_uploaded, "counts": counts,
        "notice": request.query_params.get("notice"),
    })


@router.get("/alerts")
async def alerts_page(
    request: Request, session: SignedIn, svc: Svc, cursor: str | None = Query(None)
) -> Response:
    listing = await routes_reads.list_alerts(session.key, svc, cursor=cursor, limit=None)
    async with svc.connection() as conn:
        as_uploaded = await queries.upload_positions(
            conn, [a.post_id for a in listing.items], session.key.platform
        )
    return page(request, "alerts.html", {
        "alerts": listing.items, "next_cursor": listing.next_cursor, "as_uploaded": as_uploaded,
    })


@router.get("/dashboard")
async def dashboard_page(request: Request, session: SignedIn, svc: Svc) -> Response:
    stats = await routes_reads.stats(session.key, svc)
    return page(request, "dashboard.html", {"stats": stats})


@fetch_router.get("/web/images/{sha256}")
async def page_image(
    request: Request, session: SignedInFetch, svc: Svc,
    sha256: str = Path(pattern="^[0-9a-f]{64}$"),
) -> Response:
    """A stored image for the page's <img> tags, through the API's own image answer."""
    return await image_response(svc, session.key, sha256, request.headers.get("if-none-match"))


@fetch_router.get("/web/posts/{post_id}", response_model=Post)
async def page_post_status(post_id: str, session: SignedInFetch, svc: Svc) -> Post:
    """The post as /v1/posts/{id} answers it: what the upload page polls until it is decided."""
    return await routes_posts.find_post(svc, post_id, session.key)


async def _uploaded(svc: Services, key: ApiKey, post_id: str) -> bytes:
    """A post's own bytes as uploaded, read back from the upload log."""
    async with svc.connection() as conn:
        positions = await queries.upload_positions(conn, [post_id], key.platform)
    if post_id not in positions:
        raise Problem(
            404, "upload-bytes-not-kept",
            f"post {post_id!r} was not published through this server, so where its upload "
            "record lies is not known; only the stored image it shows is kept",
        )
    return (await read_uploaded(svc.settings, post_id, positions[post_id])).image


@fetch_router.get("/web/posts/{post_id}/upload")
async def page_uploaded_bytes(post_id: str, session: SignedInFetch, svc: Svc) -> Response:
    """The post's own bytes as uploaded (for a copy: not what PicNix stored)."""
    image = await _uploaded(svc, session.key, post_id)
    return Response(
        image, media_type=media_type(image),
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )
