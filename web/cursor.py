"""Opaque pagination cursors: the position after the last item of a page, never an offset.

Keyset pagination stays correct while posts arrive (an offset would skip or repeat rows) and
costs one index range scan a page however deep the client pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass


class BadCursor(ValueError):
    """A cursor this server did not make (truncated, edited or from another listing)."""


@dataclass(frozen=True)
class Position:
    """Sort key of the last item seen: a listing's ordered column and its unique tiebreaker."""

    seq: int
    id: str


def encode_cursor(pos: Position, listing: str) -> str:
    raw = json.dumps({"l": listing, "s": pos.seq, "i": pos.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str) -> Position:
    """The position a cursor of ``listing`` holds; raises :class:`BadCursor` saying why not."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this API returned ({exc})") from exc
    if not isinstance(data, dict) or data.get("l") != listing:
        raise BadCursor(f"cursor {cursor[:40]!r} belongs to another listing than {listing}")
    seq, ident = data.get("s"), data.get("i")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(ident, str):
        raise BadCursor(f"cursor {cursor[:40]!r} holds no position")
    return Position(seq, ident)
