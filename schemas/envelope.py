"""Binary framing shared by every PicNix event.

An event is a small JSON header (schema name, version, fields) followed by an optional raw binary
payload. Image bytes and signatures travel as the payload, so nothing is base64-inflated, and the
header stays human-readable in `kafka-console-consumer` and the dead-letter topic.

Layout: ``b"PNX" | format byte (1) | header length (uint32, big endian) | header JSON | payload``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"PNX"
FRAME_FORMAT = 1
_PREFIX = struct.Struct(">3sBI")
MAX_HEADER_BYTES = 64 * 1024


class SchemaError(ValueError):
    """A record is not a valid PicNix event; the message says which rule it broke."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Frame:
    """A decoded record before schema validation."""

    header: dict[str, Any]
    payload: bytes


def pack(header: dict[str, Any], payload: bytes = b"") -> bytes:
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if len(raw) > MAX_HEADER_BYTES:
        raise SchemaError("header-too-large", f"{len(raw)} bytes > {MAX_HEADER_BYTES}")
    return _PREFIX.pack(MAGIC, FRAME_FORMAT, len(raw)) + raw + payload


def unpack(record: bytes | None) -> Frame:
    if not record:
        raise SchemaError("empty-record", "the record has no value")
    if len(record) < _PREFIX.size:
        raise SchemaError("malformed", f"record of {len(record)} bytes is shorter than the frame")
    magic, fmt, header_len = _PREFIX.unpack_from(record)
    if magic != MAGIC:
        raise SchemaError("malformed", f"record does not start with {MAGIC!r} (got {magic!r})")
    if fmt != FRAME_FORMAT:
        raise SchemaError("unknown-frame-format", f"frame format {fmt}, expected {FRAME_FORMAT}")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(record):
        raise SchemaError("malformed", f"header length {header_len} exceeds the record")
    start = _PREFIX.size
    try:
        header = json.loads(record[start : start + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError("malformed-json", f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise SchemaError("malformed-json", "header JSON is not an object")
    return Frame(header=header, payload=bytes(record[start + header_len :]))
