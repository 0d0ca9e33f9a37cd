"""Writes one decision into PostgreSQL as keyed, idempotent statements.

Every insert is ``ON CONFLICT DO NOTHING`` and counters move only when their row was inserted,
so a decision delivered twice (a re-emitted decision, a replayed log) changes nothing. An alert
row that is new is handed back, for the sink to publish before it commits the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from schemas.cloudevents import IpTheftAlert
from schemas.events import (
    DecisionEvent,
    Event,
    PostDeletedEvent,
    PostUpdatedEvent,
    RefusalInfo,
    RefusedCandidateInfo,
)
from sinks.blob_keys import blob_key
from stream_processors.engine.decision import DecisionKind


@dataclass(frozen=True)
class Written:
    """What applying one event did: whether any row changed, and the alert it raised if new."""

    changed: bool
    alert: IpTheftAlert | None = None


UNCHANGED = Written(changed=False)
CHANGED = Written(changed=True)


def write_decision(conn: psycopg.Connection, ev: DecisionEvent) -> Written:
    """Apply one decision inside the caller's transaction; changed if the post was new."""
    d, post, image = ev.decision, ev.post, ev.image
    kind = DecisionKind(d.kind)
    if kind is not DecisionKind.DUPLICATE_REFERENCE:
        # A cluster's id is its founder's image id. Ensuring the row on every join (not only on
        # new-cluster) keeps a cluster the engine still knows after its rows were emptied.
        conn.execute(
            "INSERT INTO clusters (cluster_id, founder_image_id, created_seq) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (d.cluster_id, d.cluster_id, ev.seq),
        )
    if kind is not DecisionKind.DUPLICATE_REFERENCE:
        conn.execute(
            "INSERT INTO images (image_id, sha256, blob_key, byte_size, width, height,"
            " image_format, cluster_id, first_post_id, first_author, created_seq)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                d.image_id, image.sha256, blob_key(image.sha256), image.byte_size, image.width,
                image.height, image.image_format, d.cluster_id, ev.upload_id, post.author, ev.seq,
            ),
        )
        joined = conn.execute(
            "INSERT INTO cluster_members (image_id, cluster_id, joined_seq) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING image_id",
            (d.image_id, d.cluster_id, ev.seq),
        ).fetchone()
        if joined:
            conn.execute(
                "UPDATE clusters SET member_count = member_count + 1 WHERE cluster_id = %s",
                (d.cluster_id,),
            )
    inserted = conn.execute(
        "INSERT INTO posts (post_id, author, title, description, image_id, decision, byte_size,"
        " uploaded_at, decided_seq, refused) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING post_id",
        (
            ev.upload_id, post.author, post.title, post.description, d.image_id, d.kind,
            image.byte_size, post.uploaded_at, ev.seq, _json(d.refused),
        ),
    ).fetchone()
    if not inserted:
        return UNCHANGED
    conn.execute("UPDATE images SET ref_count = ref_count + 1 WHERE image_id = %s", (d.image_id,))
    if kind is not DecisionKind.DUPLICATE_REFERENCE:
        return CHANGED
    r = d.region
    # a copy that added content of its own names the object its own bytes are stored under
    # (the blob sink's key for them), beside the reference to the original
    own_key = blob_key(image.sha256) if d.keeps_own_bytes else None
    conn.execute(
        "INSERT INTO matches (post_id, image_id, distance, method, region_x0, region_y0,"
        " region_x1, region_y1, reason, reason_refusals, unexplained_share, own_blob_key)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            ev.upload_id, d.image_id, d.distance, d.method,
            *((None,) * 4 if r is None else (r.x0, r.y0, r.x1, r.y1)), d.reason or None,
            _json(d.reason_refusals), d.unexplained_share, own_key,
        ),
    )
    return Written(changed=True, alert=_insert_alert(conn, ev))


def _json(infos: tuple[RefusalInfo, ...] | tuple[RefusedCandidateInfo, ...]) -> Jsonb:
    """Refusals as the jsonb columns of migration 008 hold them: the event's own field names."""
    return Jsonb([dataclasses.asdict(info) for info in infos])


def _insert_alert(conn: psycopg.Connection, ev: DecisionEvent) -> IpTheftAlert | None:
    """A duplicate by another author than the image's first: the alert, if its row is new."""
    row = conn.execute(
        "WITH added AS ("
        " INSERT INTO alerts (post_id, image_id, author, original_author)"
        " SELECT %s, image_id, %s, first_author FROM images"
        " WHERE image_id = %s AND first_author <> %s ON CONFLICT DO NOTHING"
        " RETURNING post_id, image_id, author, original_author, created_at)"
        " SELECT added.post_id, images.first_post_id, added.author, added.original_author,"
        " added.image_id, images.sha256, added.created_at"
        " FROM added JOIN images USING (image_id)",
        (ev.upload_id, ev.post.author, ev.decision.image_id, ev.post.author),
    ).fetchone()
    if row is None:
        return None
    post_id, original_post_id, author, original_author, image_id, sha256, created_at = row
    return IpTheftAlert(
        post_id=post_id,
        original_post_id=original_post_id,
        author=author,
        original_author=original_author,
        image_id=image_id,
        image_sha256=sha256,
        method=ev.decision.method,
        distance=ev.decision.distance,
        detected_at=created_at.isoformat(),
    )


def write_update(conn: psycopg.Connection, ev: PostUpdatedEvent) -> Written:
    """Set a post's text; writing the same text again on a re-delivery changes nothing."""
    row = conn.execute(
        "UPDATE posts SET title = %s, description = %s, updated_at = %s"
        " WHERE post_id = %s AND (title, description) IS DISTINCT FROM (%s, %s)"
        " RETURNING post_id",
        (ev.title, ev.description, ev.updated_at, ev.post_id, ev.title, ev.description),
    ).fetchone()
    return CHANGED if row is not None else UNCHANGED


def write_delete(conn: psycopg.Connection, ev: PostDeletedEvent) -> Written:
    """Remove a post; if it was its image's last, the image leaves its cluster and the table."""
    conn.execute("DELETE FROM alerts WHERE post_id = %s", (ev.post_id,))
    conn.execute("DELETE FROM matches WHERE post_id = %s", (ev.post_id,))
    deleted = conn.execute(
        "DELETE FROM posts WHERE post_id = %s RETURNING image_id", (ev.post_id,)
    ).fetchone()
    if not deleted:
        return UNCHANGED
    conn.execute(
        "UPDATE images SET ref_count = ref_count - 1 WHERE image_id = %s", (ev.image_id,)
    )
    if ev.orphaned:
        # Matches and alerts of other posts cannot point here: they would be live references.
        left = conn.execute(
            "DELETE FROM cluster_members WHERE image_id = %s RETURNING cluster_id", (ev.image_id,)
        ).fetchone()
        conn.execute("DELETE FROM images WHERE image_id = %s", (ev.image_id,))
        if left:
            conn.execute(
                "UPDATE clusters SET member_count = member_count - 1 WHERE cluster_id = %s",
                (left[0],),
            )
            conn.execute(
                "DELETE FROM clusters WHERE cluster_id = %s AND member_count = 0", (left[0],)
            )
    return CHANGED


def write_event(conn: psycopg.Connection, ev: Event) -> Written:
    """Apply any event of ``picnix.decisions``: what it changed, and the new alert it raised."""
    if isinstance(ev, DecisionEvent):
        return write_decision(conn, ev)
    if isinstance(ev, PostUpdatedEvent):
        return write_update(conn, ev)
    if isinstance(ev, PostDeletedEvent):
        return write_delete(conn, ev)
    raise TypeError(f"not an event of the decisions topic: {type(ev).__name__}")
