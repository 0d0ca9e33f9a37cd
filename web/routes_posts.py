"""Posts: read one (pending or decided), list them, change or delete them, and their
duplicates and similar posts.

Changes are not applied here: they are published as the lifecycle events ``picnix post
update|delete`` publishes, keyed by the post id, so they follow the upload through the pipeline
in order and the sinks apply them. The answer is 202.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from producers.publisher import UploadRefused
from web import queries
from web.auth import Caller
from web.cursor import BadCursor, Position, decode_cursor, encode_cursor
from web.keys import ApiKey
from web.models import LifecycleAccepted, Post, PostPage, PostPatch
from web.problems import Problem
from web.services import Services, Svc

router = APIRouter(tags=["posts"])
LISTING = "posts"


def _not_found(post_id: str) -> Problem:
    return Problem(404, "post-not-found", f"no post {post_id!r} visible to this key")


async def find_post(svc: Services, post_id: str, key: ApiKey) -> Post:
    """The post as the caller may see it: decided; or, when the API published it and no decision
    is in Postgres, pending or rejected (dead-lettered); a deletion already asked makes it gone."""
    async with svc.connection() as conn:
        post = await queries.decided_post(conn, post_id, key.platform)
        if post is not None:
            return post
        upload = await queries.api_upload(conn, post_id, key.platform)
    if upload is None:
        raise _not_found(post_id)
    if upload.deleted:
        raise Problem(404, "post-deleted", f"post {post_id!r} was deleted")
    return upload.undecided_post()


async def publish_update(
    svc: Services, key: ApiKey, post_id: str, *, title: str | None, description: str | None
) -> None:
    """Publish a post's new title and/or description as the lifecycle update event; a field
    given as None keeps its current value. PATCH and the web page's edit form both come here,
    so an edit from either travels behind the upload the same way."""
    post = await find_post(svc, post_id, key)
    if post.status in ("deleting", "rejected"):
        raise Problem(
            409, f"post-{post.status}", f"post {post_id!r} is {post.status}: nothing to edit"
        )
    new_title = post.title if title is None else title
    new_description = post.description if description is None else description
    try:
        await svc.publisher.update_post(post_id, new_title, new_description)
    except UploadRefused as exc:
        raise Problem(422, exc.reason, exc.detail) from exc


async def publish_deletion(svc: Services, key: ApiKey, post_id: str) -> None:
    """Publish a post's deletion once: asking again while it travels publishes nothing more.
    DELETE and the web page's delete form both come here."""
    await find_post(svc, post_id, key)
    async with svc.connection() as conn, conn.transaction():
        if await queries.record_deletion(conn, post_id, key.key_id):
            await svc.publisher.delete_post(post_id)


def _page_limit(svc: Services, limit: int | None) -> int:
    return min(limit or svc.settings.api_page_limit, svc.settings.api_page_limit)


@router.get("/v1/posts/{post_id}", response_model=Post)
async def get_post(
    post_id: str, key: Caller, svc: Svc
) -> Post:
    return await find_post(svc, post_id, key)


@router.get("/v1/posts", response_model=PostPage)
async def list_posts(
    key: Caller, svc: Svc,
    duplicates: bool | None = Query(None, description="only duplicates (true) or only not"),
    alerts: bool | None = Query(None, description="only posts with an IP-theft alert, or without"),
    author: str | None = Query(None, min_length=1),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int | None = Query(None, ge=1, le=1000),
) -> PostPage:
    """Decided posts, the newest decision first (pending ones are read one by one)."""
    try:
        after = decode_cursor(cursor, LISTING) if cursor else None
    except BadCursor as exc:
        raise Problem(400, "bad-cursor", str(exc)) from exc
    size = _page_limit(svc, limit)
    filters = queries.PostFilters(duplicates=duplicates, alerts=alerts, author=author)
    async with svc.connection() as conn:
        rows = await queries.list_posts(conn, key.platform, filters, after, size)
    items, more = rows[:size], len(rows) > size
    next_cursor = None
    if more and items and items[-1].decision is not None:
        last = items[-1]
        assert last.decision is not None
        next_cursor = encode_cursor(Position(last.decision.decided_seq, last.post_id), LISTING)
    return PostPage(items=items, next_cursor=next_cursor)


@router.patch("/v1/posts/{post_id}", status_code=202, response_model=LifecycleAccepted)
async def update_post(post_id: str, patch: PostPatch, key: Caller, svc: Svc) -> LifecycleAccepted:
    """Change the title and/or description; a field left out keeps its current value."""
    if patch.title is None and patch.description is None:
        raise Problem(422, "empty-patch", "send at least one of title, description")
    await publish_update(svc, key, post_id, title=patch.title, description=patch.description)
    return LifecycleAccepted(post_id=post_id, action="update", status_url=f"/v1/posts/{post_id}")


@router.delete("/v1/posts/{post_id}", status_code=202, response_model=LifecycleAccepted)
async def delete_post(
    post_id: str, key: Caller, svc: Svc
) -> LifecycleAccepted:
    """Delete a post; asking again while the deletion travels publishes nothing more."""
    await publish_deletion(svc, key, post_id)
    return LifecycleAccepted(post_id=post_id, action="delete", status_url=f"/v1/posts/{post_id}")


@router.get("/v1/posts/{post_id}/duplicates", response_model=list[Post])
async def post_duplicates(
    key: Caller, svc: Svc,
    post_id: str, limit: int | None = Query(None, ge=1, le=1000),
) -> list[Post]:
    """Other posts that reference the same stored image, the original's first."""
    await find_post(svc, post_id, key)
    async with svc.connection() as conn:
        return await queries.duplicates_of(conn, post_id, key.platform, _page_limit(svc, limit))


@router.get("/v1/posts/{post_id}/similar", response_model=list[Post])
async def post_similar(
    key: Caller, svc: Svc,
    post_id: str, limit: int | None = Query(None, ge=1, le=1000),
) -> list[Post]:
    """Posts of the other images in this post's cluster, in the order they joined it."""
    await find_post(svc, post_id, key)
    async with svc.connection() as conn:
        return await queries.similar_to(conn, post_id, key.platform, _page_limit(svc, limit))
