"""PicNix events in the CloudEvents Kafka protocol binding, binary content mode (CloudEvents 1.0).

Platforms publish uploads from their own code, in any language, with any Kafka client: the
``PNX`` framing is ours alone, the CloudEvents binding is a standard they already have. In binary
mode every attribute is a Kafka header (``ce_<name>``, UTF-8), ``content-type`` is the data's
media type and the record value is the data itself: for an upload, the image bytes untouched.

``parse_upload`` turns such a record into the same :class:`UploadEvent` a ``PNX`` record gives,
refusing with a :class:`SchemaError` whose code names the broken rule, so the extract stage
dead-letters it with its reason as it does a bad ``PNX`` record. ``ip_theft_alert`` builds the
record the Postgres sink publishes on the alerts topic. Pure: no Kafka import, headers in and out
as ``(name, bytes)`` pairs as every Kafka client exposes them. ``cloudevents-upload.schema.json``
and ``cloudevents-alert.schema.json`` beside this module describe the same attributes for
platforms; a unit test keeps them and this parser in agreement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from schemas.envelope import SchemaError
from schemas.events import UploadEvent

SPECVERSION = "1.0"
UPLOAD_TYPE = "picnix.upload.v1"
IP_THEFT_ALERT_TYPE = "picnix.alert.ip-theft.v1"
ALERT_ID_PREFIX = "ip-theft:"
ALERT_CONTENT_TYPE = "application/json"
ATTRIBUTE_PREFIX = "ce_"
SPECVERSION_HEADER = "ce_specversion"
CONTENT_TYPE_HEADER = "content-type"
# structured (application/cloudevents+json) and batched (application/cloudevents-batch+json)
# modes put the whole event, data included, in the value: a base64 image in JSON, which binary
# mode exists to avoid
STRUCTURED_MEDIA_PREFIX = "application/cloudevents"
IMAGE_MEDIA_PREFIX = "image/"
# RFC 3339's date-time (CloudEvents' Timestamp): a full date, "T", a time and a mandatory
# offset; fromisoformat alone would also take a bare date or ISO 8601's basic format. The JSON
# Schema of the attributes carries the same pattern.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
# RFC 2045 token characters: a media type is type "/" subtype, parameters after ";"
_MEDIA_TYPE = re.compile(r"([a-z0-9!#$&^_.+-]+)/([a-z0-9!#$&^_.+-]+)")

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None]


@dataclass(frozen=True)
class CloudEventRecord:
    """A Kafka record in the binary binding: what a producer sends as key, headers and value."""

    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes


@dataclass(frozen=True)
class IpTheftAlert:
    """A duplicate uploaded by someone other than the original's author: the alert's data."""

    post_id: str
    original_post_id: str
    author: str
    original_author: str
    image_id: str
    image_sha256: str
    method: str
    distance: float | None
    detected_at: str


def is_cloudevent(headers: Headers) -> bool:
    """Does this record use the CloudEvents binding (rather than ``PNX`` framing)?

    Binary mode always carries ``ce_specversion``; a structured-mode record carries none but is
    recognised by its content type, so it is refused with the reason instead of as a bad frame.
    """
    found = _header_map(headers, strict=False)
    if SPECVERSION_HEADER in found:
        return True
    content_type = found.get(CONTENT_TYPE_HEADER)
    return content_type is not None and _is_structured(content_type)


def upload_id_of(headers: Headers) -> str | None:
    """The upload id a refused CloudEvents upload names, if it names one, for its dead letter.

    Only an upload-typed event's id is an upload id: another event type's id means nothing here.
    """
    found = _header_map(headers, strict=False)
    if _text(found.get("ce_type")) != UPLOAD_TYPE:
        return None
    upload_id = _text(found.get("ce_id"))
    return upload_id if upload_id and upload_id.strip() and "\x00" not in upload_id else None


def parse_upload(headers: Headers, value: bytes | None, fallback_time: str) -> UploadEvent:
    """An upload in the binary binding → the :class:`UploadEvent` a ``PNX`` upload would be.

    ``ce_time`` is optional in CloudEvents; without it the upload time is ``fallback_time`` (the
    caller passes the record's own Kafka timestamp, the same on every replay). The image bytes
    are checked by the extract stage exactly as a ``PNX`` upload's (size cap, format, decoding).
    """
    found = _header_map(headers, strict=True)
    content_type = found.get(CONTENT_TYPE_HEADER)
    if content_type is not None and _is_structured(content_type):
        raise SchemaError(
            "unsupported-content-mode",
            f"content-type {_text(content_type)!r} is the structured (or batch) mode; PicNix "
            "takes the binary mode only: attributes as ce_ headers, the image bytes as the value",
        )
    specversion = _attribute(found, SPECVERSION_HEADER)
    if specversion != SPECVERSION:
        raise SchemaError(
            "unsupported-specversion",
            f"ce_specversion {specversion!r}, supported {SPECVERSION!r}",
        )
    event_type = _attribute(found, "ce_type")
    if event_type is None:
        raise SchemaError("missing-ce-type", f"ce_type is required ({UPLOAD_TYPE!r})")
    if event_type != UPLOAD_TYPE:
        raise SchemaError(
            "unknown-ce-type", f"ce_type {event_type!r} is not an upload ({UPLOAD_TYPE!r})"
        )
    upload_id = _required(found, "ce_id", "missing-ce-id", "the upload id")
    source = _required(found, "ce_source", "missing-ce-source", "the platform")
    author = _required(found, "ce_author", "missing-ce-author", "the post's author")
    uploaded_at = _time(found)
    media_type = _image_media_type(content_type)
    if not value:
        raise SchemaError(
            "empty-value", f"upload {upload_id!r} ({media_type}) has no image bytes as its value"
        )
    return UploadEvent(
        upload_id=upload_id,
        author=author,
        title=_attribute(found, "ce_title") or "",
        uploaded_at=uploaded_at or fallback_time,
        image=bytes(value),
        description=_attribute(found, "ce_description") or "",
        tenant=source,
    )


def ip_theft_alert(alert: IpTheftAlert, source: str) -> CloudEventRecord:
    """The alerts topic's record for one alert, keyed by the post it flags.

    Its ``ce_id`` is derived from the post, so the record a crash or a replay sends again is the
    same event to a consumer that de-duplicates on (``ce_source``, ``ce_id``), as the spec asks.
    """
    headers = {
        SPECVERSION_HEADER: SPECVERSION,
        "ce_type": IP_THEFT_ALERT_TYPE,
        "ce_id": ALERT_ID_PREFIX + alert.post_id,
        "ce_source": source,
        "ce_subject": alert.post_id,
        "ce_time": alert.detected_at,
        CONTENT_TYPE_HEADER: ALERT_CONTENT_TYPE,
    }
    value = json.dumps(asdict(alert), separators=(",", ":"), sort_keys=True).encode()
    return CloudEventRecord(
        key=alert.post_id.encode(),
        headers=[(name, text.encode()) for name, text in headers.items()],
        value=value,
    )


def _header_map(headers: Headers, *, strict: bool) -> dict[str, bytes | None]:
    """Headers by lower-cased name. ``strict`` refuses a repeated attribute, which would leave
    the event ambiguous; the lenient form (for routing) keeps the last."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, bytes | None] = {}
    for name, raw in pairs:
        key = name.lower()
        relevant = key.startswith(ATTRIBUTE_PREFIX) or key == CONTENT_TYPE_HEADER
        if strict and relevant and key in found:
            raise SchemaError("duplicate-header", f"header {key!r} appears more than once")
        found[key] = raw
    return found


def _text(raw: bytes | None) -> str | None:
    """A header value as text, or None when absent or not UTF-8 (for lenient routing only)."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _attribute(found: dict[str, bytes | None], name: str) -> str | None:
    """An attribute's text: UTF-8 without NUL (no Postgres text holds one), None if absent."""
    raw = found.get(name)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError("invalid-text", f"header {name} is not UTF-8: {exc}") from exc
    if "\x00" in text:
        raise SchemaError("invalid-text", f"header {name} contains a NUL character")
    return text


def _required(found: dict[str, bytes | None], name: str, code: str, what: str) -> str:
    text = _attribute(found, name)
    if text is None or not text.strip():
        raise SchemaError(code, f"header {name} ({what}) is required and must not be empty")
    return text


def _time(found: dict[str, bytes | None]) -> str | None:
    text = _attribute(found, "ce_time")
    if text is None:
        return None
    if not _RFC3339.fullmatch(text):
        raise SchemaError(
            "bad-ce-time", f"ce_time {text!r} is not an RFC 3339 timestamp with an offset"
        )
    try:
        datetime.fromisoformat(text)
    except ValueError as exc:
        raise SchemaError("bad-ce-time", f"ce_time {text!r}: {exc}") from exc
    return text


def _is_structured(raw: bytes) -> bool:
    text = _text(raw)
    return text is not None and text.strip().lower().startswith(STRUCTURED_MEDIA_PREFIX)


def _image_media_type(raw: bytes | None) -> str:
    """The ``content-type`` header as a media type, which must be an image's."""
    if raw is None:
        raise SchemaError(
            "bad-content-type", "header content-type (the image's media type) is required"
        )
    text = _text(raw)
    media_type = (text or "").split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type) or not media_type.startswith(IMAGE_MEDIA_PREFIX):
        raise SchemaError(
            "bad-content-type",
            f"content-type {text!r} is not an image media type (image/png, image/jpeg, ...)",
        )
    return media_type
