"""Every read the API makes of the tables the Postgres sink writes, and the API's own rows.

Scoping lives here, in SQL: ``platform`` None is an operator (everything); a name limits a read
to the posts that platform published through the API (``api_uploads``). A post outside a
caller's scope is indistinguishable from one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sinks.blob_keys import blob_key, sha256_of_key
from web.cursor import Position
from web.models import (
    AlertInfo,
    Decision,
    Evidence,
    ImageRef,
    Post,
    Region,
    Rejection,
)

Row = dict[str, Any]

_POST_COLUMNS = sql.SQL(
    "p.post_id, p.author, p.title, p.description, p.uploaded_at, p.decision, p.decided_seq,"
    " p.byte_size, p.image_id, i.sha256, i.byte_size AS image_bytes, i.width, i.height,"
    " i.image_format, i.cluster_id, i.first_post_id, i.first_author, m.distance, m.method,"
    " m.region_x0, m.region_y0, m.region_x1, m.region_y1, m.reason, m.reason_refusals,"
    " m.unexplained_share, m.own_blob_key, p.refused,"
    " a.author AS alert_author, a.original_author, a.created_at AS alert_at,"
    " u.platform, d.requested_at AS delete_requested_at"
)
_POST_FROM = sql.SQL(
    " FROM posts p JOIN images i ON i.image_id = p.image_id"
    " LEFT JOIN matches m ON m.post_id = p.post_id"
    " LEFT JOIN alerts a ON a.post_id = p.post_id"
    " LEFT JOIN api_uploads u ON u.post_id = p.post_id"
    " LEFT JOIN api_deletions d ON d.post_id = p.post_id"
)


def _scope(platform: str | None, column: str = "u.platform") -> tuple[sql.Composable, list[Any]]:
    if platform is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{} = %s").format(sql.SQL(column)), [platform]


def post_links(post_id: str) -> dict[str, str]:
    base = f"/v1/posts/{post_id}"
    return {"self": base, "duplicates": f"{base}/duplicates", "similar": f"{base}/similar"}


def image_url(sha256: str) -> str:
    return f"/v1/images/{sha256}"


def post_from_row(r: Row) -> Post:
    evidence = None
    if r["method"]:
        region = None
        if r["region_x0"] is not None:
            region = Region(
                x0=r["region_x0"], y0=r["region_y0"], x1=r["region_x1"], y1=r["region_y1"]
            )
        own = r["own_blob_key"]
        evidence = Evidence(
            method=r["method"], distance=r["distance"], region=region, reason=r["reason"],
            reason_refusals=r["reason_refusals"], unexplained_share=r["unexplained_share"],
            own_image=None if own is None else image_url(sha256_of_key(own)),
        )
    alert = None
    if r["alert_author"] is not None:
        alert = AlertInfo(
            post_id=r["post_id"], author=r["alert_author"], original_author=r["original_author"],
            original_post_id=r["first_post_id"], image_sha256=r["sha256"],
            created_at=r["alert_at"],
        )
    return Post(
        post_id=r["post_id"],
        status="deleting" if r["delete_requested_at"] is not None else "decided",
        author=r["author"], title=r["title"], description=r["description"],
        uploaded_at=r["uploaded_at"], byte_size=r["byte_size"], platform=r["platform"],
        decision=Decision(
            kind=r["decision"],
            image=ImageRef(
                image_id=r["image_id"], sha256=r["sha256"], url=image_url(r["sha256"]),
                byte_size=r["image_bytes"], width=r["width"], height=r["height"],
                format=r["image_format"], first_post_id=r["first_post_id"],
                first_author=r["first_author"],
            ),
            cluster_id=r["cluster_id"], evidence=evidence, decided_seq=r["decided_seq"],
            refused=r["refused"],
        ),
        alert=alert, links=post_links(r["post_id"]),
    )


async def _rows(
    conn: psycopg.AsyncConnection, query: sql.SQL | sql.Composed, params: list[Any]
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def decided_post(
    conn: psycopg.AsyncConnection, post_id: str, platform: str | None
) -> Post | None:
    scope, params = _scope(platform)
    rows = await _rows(
        conn,
        sql.SQL("SELECT {}{} WHERE p.post_id = %s AND {}").format(_POST_COLUMNS, _POST_FROM, scope),
        [post_id, *params],
    )
    return post_from_row(rows[0]) if rows else None


@dataclass(frozen=True)
class ApiUpload:
    """What the API recorded when it published an upload: enough to show it while pending."""

    post_id: str
    platform: str
    author: str
    title: str
    description: str
    byte_size: int
    deleted: bool
    rejection: Rejection | None

    def undecided_post(self) -> Post:
        """Pending, or rejected when the pipeline dead-lettered it."""
        return Post(
            post_id=self.post_id, status="rejected" if self.rejection else "pending",
            author=self.author, title=self.title, description=self.description,
            uploaded_at=None, byte_size=self.byte_size, platform=self.platform, decision=None,
            alert=None, rejection=self.rejection, links=post_links(self.post_id),
        )


async def api_upload(
    conn: psycopg.AsyncConnection, post_id: str, platform: str | None
) -> ApiUpload | None:
    scope, params = _scope(platform)
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT u.post_id, u.platform, u.author, u.title, u.description, u.byte_size,"
            " d.post_id IS NOT NULL AS deleted, r.stage, r.reason, r.detail, r.failed_at"
            " FROM api_uploads u LEFT JOIN api_deletions d ON d.post_id = u.post_id"
            " LEFT JOIN api_rejections r ON r.post_id = u.post_id WHERE u.post_id = %s AND {}"
        ).format(scope),
        [post_id, *params],
    )
    if not rows:
        return None
    r = rows[0]
    rejection = None
    if r["reason"] is not None:
        rejection = Rejection(
            stage=r["stage"], reason=r["reason"], detail=r["detail"], failed_at=r["failed_at"]
        )
    return ApiUpload(
        post_id=r["post_id"], platform=r["platform"], author=r["author"], title=r["title"],
        description=r["description"], byte_size=r["byte_size"], deleted=r["deleted"],
        rejection=rejection,
    )


@dataclass(frozen=True)
class PostFilters:
    duplicates: bool | None = None
    alerts: bool | None = None
    author: str | None = None


async def list_posts(
    conn: psycopg.AsyncConnection, platform: str | None, filters: PostFilters,
    after: Position | None, limit: int,
) -> list[Post]:
    """Decided posts, newest decision first; ``limit`` + 1 rows tell whether a page follows."""
    scope, params = _scope(platform)
    where: list[sql.Composable] = [scope]
    if filters.duplicates is not None:
        where.append(sql.SQL("(p.decision = 'duplicate-reference') = %s"))
        params.append(filters.duplicates)
    if filters.alerts is not None:
        where.append(sql.SQL("(a.post_id IS NOT NULL) = %s"))
        params.append(filters.alerts)
    if filters.author is not None:
        where.append(sql.SQL("p.author = %s"))
        params.append(filters.author)
    if after is not None:
        where.append(sql.SQL("(p.decided_seq, p.post_id) < (%s, %s)"))
        params.extend([after.seq, after.id])
    query = sql.SQL(
        "SELECT {}{} WHERE {} ORDER BY p.decided_seq DESC, p.post_id DESC LIMIT %s"
    ).format(_POST_COLUMNS, _POST_FROM, sql.SQL(" AND ").join(where))
    return [post_from_row(r) for r in await _rows(conn, query, [*params, limit + 1])]


async def duplicates_of(
    conn: psycopg.AsyncConnection, post_id: str, platform: str | None, limit: int
) -> list[Post]:
    """Other posts that reference the same stored image (the original's post among them)."""
    return await _scoped_posts(
        conn,
        "p.image_id = (SELECT image_id FROM posts WHERE post_id = %s) AND p.post_id <> %s",
        [post_id, post_id], platform, "p.decided_seq, p.post_id", limit,
    )


async def posts_showing(
    conn: psycopg.AsyncConnection, image_id: str, platform: str | None, limit: int
) -> list[Post]:
    """The posts that show a stored image, its first post first: what a search's match is."""
    return await _scoped_posts(
        conn, "p.image_id = %s", [image_id], platform, "p.decided_seq, p.post_id", limit
    )


async def similar_to(
    conn: psycopg.AsyncConnection, post_id: str, platform: str | None, limit: int
) -> list[Post]:
    """Posts of the other images in the same cluster, in the order they joined it.

    Postgres keeps no distance between cluster members (only the engine's state does), so
    "nearest first" cannot be answered from the tables; the duplicates of this post's own image
    are /duplicates, not here.
    """
    return await _scoped_posts(
        conn,
        "i.cluster_id = (SELECT i2.cluster_id FROM posts p2"
        " JOIN images i2 ON i2.image_id = p2.image_id WHERE p2.post_id = %s)"
        " AND p.image_id <> (SELECT image_id FROM posts WHERE post_id = %s)",
        [post_id, post_id], platform, "i.created_seq, p.decided_seq, p.post_id", limit,
    )


async def _scoped_posts(
    conn: psycopg.AsyncConnection, condition: str, params: list[Any], platform: str | None,
    order: str, limit: int,
) -> list[Post]:
    """Decided posts meeting ``condition`` (SQL text of this module, with ``params``) within
    the caller's scope, in ``order``, at most ``limit``."""
    scope, scope_params = _scope(platform)
    query = sql.SQL("SELECT {}{} WHERE {} AND {} ORDER BY {} LIMIT %s").format(
        _POST_COLUMNS, _POST_FROM, sql.SQL(condition), scope, sql.SQL(order)
    )
    return [post_from_row(r) for r in await _rows(conn, query, [*params, *scope_params, limit])]


async def list_alerts(
    conn: psycopg.AsyncConnection, platform: str | None, after: Position | None, limit: int
) -> list[tuple[int, AlertInfo]]:
    """Alerts, newest first, each with its sort position. A platform sees an alert when either
    post is its own: its upload copied someone's image, or someone copied its image."""
    params: list[Any] = []
    where: list[sql.Composable] = []
    if platform is not None:
        where.append(sql.SQL(
            "(EXISTS (SELECT 1 FROM api_uploads u WHERE u.post_id = a.post_id AND u.platform = %s)"
            " OR EXISTS (SELECT 1 FROM api_uploads u WHERE u.post_id = i.first_post_id"
            " AND u.platform = %s))"
        ))
        params.extend([platform, platform])
    if after is not None:
        where.append(sql.SQL("(p.decided_seq, a.post_id) < (%s, %s)"))
        params.extend([after.seq, after.id])
    query = sql.SQL(
        "SELECT a.post_id, a.author, a.original_author, a.created_at, i.first_post_id,"
        " i.sha256, p.decided_seq FROM alerts a JOIN posts p ON p.post_id = a.post_id"
        " JOIN images i ON i.image_id = a.image_id WHERE {}"
        " ORDER BY p.decided_seq DESC, a.post_id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE"))
    rows = await _rows(conn, query, [*params, limit + 1])
    return [
        (r["decided_seq"], AlertInfo(
            post_id=r["post_id"], author=r["author"], original_author=r["original_author"],
            original_post_id=r["first_post_id"], image_sha256=r["sha256"],
            created_at=r["created_at"],
        ))
        for r in rows
    ]


async def image_visible(
    conn: psycopg.AsyncConnection, sha256: str, platform: str | None
) -> bool:
    """Whether a stored image with this hash exists for the caller: an operator sees every
    one, a platform those its own posts show (its originals, and the originals its duplicates
    reference); the own bytes a copy keeps (it added content of its own) likewise."""
    if platform is None:
        query = sql.SQL(
            "SELECT 1 FROM images WHERE sha256 = %s"
            " UNION ALL SELECT 1 FROM matches WHERE own_blob_key = %s LIMIT 1"
        )
        params: list[Any] = [sha256, blob_key(sha256)]
    else:
        query = sql.SQL(
            "SELECT 1 FROM images i JOIN posts p ON p.image_id = i.image_id"
            " JOIN api_uploads u ON u.post_id = p.post_id"
            " WHERE i.sha256 = %s AND u.platform = %s"
            " UNION ALL SELECT 1 FROM matches m JOIN api_uploads u ON u.post_id = m.post_id"
            " WHERE m.own_blob_key = %s AND u.platform = %s LIMIT 1"
        )
        params = [sha256, platform, blob_key(sha256), platform]
    return bool(await _rows(conn, query, params))


@dataclass(frozen=True)
class BadgeCounts:
    """What a post's thumbnail says beside its decision: how many posts of other images share
    its cluster, and how many other posts show its own stored image."""

    similar: int = 0
    copies: int = 0


async def badge_counts(
    conn: psycopg.AsyncConnection, post_ids: list[str], platform: str | None
) -> dict[str, BadgeCounts]:
    """Badge counts for a page of posts in one query, counting only posts the caller may see."""
    scope, params = _scope(platform)
    query = sql.SQL(
        "SELECT p.post_id,"
        " count(*) FILTER (WHERE q.image_id <> p.image_id) AS similar,"
        " count(*) FILTER (WHERE q.image_id = p.image_id) AS copies"
        " FROM posts p JOIN images i ON i.image_id = p.image_id"
        " JOIN images j ON j.cluster_id = i.cluster_id"
        " JOIN posts q ON q.image_id = j.image_id AND q.post_id <> p.post_id"
        " LEFT JOIN api_uploads u ON u.post_id = q.post_id"
        " WHERE p.post_id = ANY(%s) AND {} GROUP BY p.post_id"
    ).format(scope)
    rows = await _rows(conn, query, [post_ids, *params])
    return {r["post_id"]: BadgeCounts(r["similar"], r["copies"]) for r in rows}


async def upload_positions(
    conn: psycopg.AsyncConnection, post_ids: list[str], platform: str | None
) -> dict[str, tuple[int, int]]:
    """(partition, offset) of the upload record the API published, for each of ``post_ids``
    the API published and the caller may see; a post another producer published (a replay) has
    none, so its own bytes cannot be found again (only the stored image it shows)."""
    scope, params = _scope(platform)
    rows = await _rows(
        conn,
        sql.SQL(
            "SELECT u.post_id, u.topic_partition, u.topic_offset FROM api_uploads u"
            " WHERE u.post_id = ANY(%s) AND {}"
        ).format(scope),
        [post_ids, *params],
    )
    return {r["post_id"]: (r["topic_partition"], r["topic_offset"]) for r in rows}


# ---------------------------------------------------------------------------------------------
# The API's own rows


async def record_upload(
    conn: psycopg.AsyncConnection, *, post_id: str, platform: str, key_id: str, author: str,
    title: str, description: str, sha256: str, byte_size: int, partition: int, offset: int,
) -> None:
    await conn.execute(
        "INSERT INTO api_uploads (post_id, platform, key_id, author, title, description, sha256,"
        " byte_size, topic_partition, topic_offset)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (post_id, platform, key_id, author, title, description, sha256, byte_size, partition,
         offset),
    )


async def claim_idempotency_key(
    conn: psycopg.AsyncConnection, platform: str, idem_key: str, body_sha256: str, post_id: str
) -> tuple[str, str] | None:
    """Claim ``idem_key`` for this body inside the caller's transaction.

    None when it was free (the caller publishes, then commits). Otherwise the (body hash,
    post id) it was first used with. A concurrent request with the same key waits on the
    unique index until the first one commits or rolls back, so one key publishes once.
    """
    cur = await conn.execute(
        "INSERT INTO api_idempotency (platform, idem_key, body_sha256, post_id)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING post_id",
        (platform, idem_key, body_sha256, post_id),
    )
    if await cur.fetchone():
        return None
    cur = await conn.execute(
        "SELECT body_sha256, post_id FROM api_idempotency WHERE platform = %s AND idem_key = %s",
        (platform, idem_key),
    )
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError(f"idempotency key {idem_key!r} conflicted but has no row")
    return row[0], row[1]


async def record_deletion(conn: psycopg.AsyncConnection, post_id: str, key_id: str) -> bool:
    """True if this is the first deletion asked for the post (only that one is published)."""
    cur = await conn.execute(
        "INSERT INTO api_deletions (post_id, key_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING RETURNING post_id",
        (post_id, key_id),
    )
    return await cur.fetchone() is not None
