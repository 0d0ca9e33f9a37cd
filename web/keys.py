"""API keys: made once, shown once, kept only as a hash.

A key is ``pnx_<key id>_<secret>``: the id names the key in logs and tables without revealing
it; the secret is 256 random bits. Keys are random, not chosen by people, so a single SHA-256
is enough to keep a leaked table from yielding usable keys (a slow password hash guards low-
entropy secrets, which these are not) and lets a request find its key with one index lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

import psycopg

KEY_PREFIX = "pnx"
_KEY_SHAPE = re.compile(r"^pnx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class Role(StrEnum):
    """A platform sees and changes only its own posts; an operator sees everything."""

    PLATFORM = "platform"
    OPERATOR = "operator"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role

    @property
    def platform(self) -> str | None:
        """The name that scopes what this key sees, or None for an operator (everything)."""
        return self.name if self.role is Role.PLATFORM else None


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    plaintext: str


def generate_key() -> tuple[str, str]:
    """A fresh (key id, plaintext key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def well_formed(plaintext: str) -> bool:
    """Whether a presented key has the shape of one of ours (a cheap refusal before Postgres)."""
    return _KEY_SHAPE.match(plaintext) is not None


def create_key(dsn: str, name: str, role: Role) -> NewKey:
    """Store a new key's hash under ``name``; the plaintext is returned once and never stored."""
    if not name.strip():
        raise ValueError("a key needs a non-empty name (the platform or operator it belongs to)")
    key_id, plaintext = generate_key()
    with psycopg.connect(dsn) as conn:
        # A name is a scope: a platform key named like an operator would see its uploads.
        other = conn.execute(
            "SELECT role FROM api_keys WHERE name = %s AND role <> %s LIMIT 1", (name, role.value)
        ).fetchone()
        if other:
            raise ValueError(f"{name!r} already names {other[0]} keys; a name has one role")
        conn.execute(
            "INSERT INTO api_keys (key_id, name, role, key_hash) VALUES (%s, %s, %s, %s)",
            (key_id, name, role.value, hash_key(plaintext)),
        )
    return NewKey(ApiKey(key_id, name, role), plaintext)


async def find_key(conn: psycopg.AsyncConnection, plaintext: str) -> ApiKey | None:
    """The live key this plaintext is, or None (malformed, unknown or revoked)."""
    if not well_formed(plaintext):
        return None
    cur = await conn.execute(
        "SELECT key_id, name, role FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(plaintext),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return ApiKey(row[0], row[1], Role(row[2]))
