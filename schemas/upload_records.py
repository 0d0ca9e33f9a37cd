"""Any record of ``picnix.uploads``, in either binding it may use.

Our own producers frame events with ``PNX`` (uploads and the post lifecycle events); platforms
may publish uploads in the CloudEvents binary binding instead. Every reader of the topic (the
extract stage, the blob sink reading an upload back by position) parses through here, so both
bindings are accepted, and refused, alike everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.cloudevents import Headers, is_cloudevent, parse_upload
from schemas.events import UPLOAD_TOPIC_EVENTS, Event, parse_event

MS_PER_S = 1000


def parse_upload_record(headers: Headers, value: bytes | None, timestamp_ms: int) -> Event:
    """An upload, post update or post deletion; raises ``SchemaError`` with the reason.

    ``timestamp_ms`` is the record's Kafka timestamp: a CloudEvents upload without ``ce_time``
    was taken then.
    """
    if is_cloudevent(headers):
        return parse_upload(headers, value, record_time(timestamp_ms))
    return parse_event(value, UPLOAD_TOPIC_EVENTS)


def record_time(timestamp_ms: int) -> str:
    """A Kafka timestamp (ms since the epoch) as the ISO 8601 UTC text events carry."""
    return datetime.fromtimestamp(timestamp_ms / MS_PER_S, UTC).isoformat()
