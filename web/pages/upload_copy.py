"""A duplicate's own bytes, as it was uploaded, read back from the upload log.

PicNix stores each image once: a duplicate's bytes never reach the object store. To show a copy
beside its original the page reads the upload record again at the position the API recorded
when it published it (``api_uploads``; the uploads topic keeps its records). Posts another
producer published have no recorded position; the page shows the stored image for them.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError

from infra.settings import Settings
from schemas.envelope import SchemaError
from schemas.events import UploadEvent, UploadRef
from sinks.blob_sink import CONTENT_TYPES, UploadLogUnavailable, UploadNotFound, UploadReader
from stream_processors.engine.decode import ImageRejected, sniff_format
from web.problems import Problem

FALLBACK_MEDIA_TYPE = "application/octet-stream"


async def read_uploaded(settings: Settings, post_id: str, position: tuple[int, int]) -> UploadEvent:
    """The upload record at ``position`` of the uploads topic, checked to be ``post_id``'s."""
    ref = UploadRef(settings.topic_uploads, *position)
    reader = UploadReader(settings)
    try:
        await reader.start()
        upload = await reader.read_upload(ref)
    except (UploadNotFound, UploadLogUnavailable, KafkaError) as exc:
        raise Problem(
            503, "upload-log-unavailable",
            f"post {post_id}'s upload record at {ref} could not be read: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    except SchemaError as exc:
        raise Problem(
            500, "upload-record-unreadable", f"{ref} holds no upload: {exc.detail}"
        ) from exc
    finally:
        await reader.stop()
    if upload.upload_id != post_id:
        raise Problem(
            500, "upload-record-mismatch",
            f"{ref} holds upload {upload.upload_id}, not post {post_id}'s",
        )
    return upload


def media_type(image: bytes) -> str:
    """The Content-Type an image's magic bytes say (the bytes passed the same check before)."""
    try:
        return CONTENT_TYPES.get(sniff_format(image), FALLBACK_MEDIA_TYPE)
    except ImageRejected:
        return FALLBACK_MEDIA_TYPE
