"""Sign-in sessions of the web page: an opaque random id in an HttpOnly cookie, its SHA-256 in
Postgres (``web_sessions``), bound to the operator key that signed in.

Server-side rather than a signed cookie: no secret to configure or rotate, sign-out and key
revocation end a session at once, and the cookie says nothing about who holds it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from web.keys import ApiKey, Role

COOKIE = "picnix_session"
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Session:
    """Who is signed in, and the CSRF token their forms must carry."""

    key: ApiKey
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(conn: psycopg.AsyncConnection, key: ApiKey) -> tuple[str, Session]:
    """A new session for ``key``: the id for the cookie (never stored) and the session."""
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (session_hash, key_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + %s)",
        (_hash(session_id), key.key_id, csrf_token, LIFETIME),
    )
    # expired sessions go when someone signs in, so the table stays the size of who is active
    await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
    return session_id, Session(key, csrf_token)


async def find_session(conn: psycopg.AsyncConnection, session_id: str) -> Session | None:
    """The live session behind a cookie value: unexpired, and its key still unrevoked."""
    if not session_id or len(session_id) > 100:
        return None
    cur = await conn.execute(
        "SELECT k.key_id, k.name, k.role, s.csrf_token FROM web_sessions s"
        " JOIN api_keys k ON k.key_id = s.key_id"
        " WHERE s.session_hash = %s AND s.expires_at > now() AND k.revoked_at IS NULL",
        (_hash(session_id),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Session(ApiKey(row[0], row[1], Role(row[2])), row[3])


async def close_session(conn: psycopg.AsyncConnection, session_id: str) -> None:
    await conn.execute("DELETE FROM web_sessions WHERE session_hash = %s", (_hash(session_id),))
