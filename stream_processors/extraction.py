"""The extract stage's logic, free of Kafka: bytes in, a feature event or a rejection out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from schemas.events import FeatureEvent, ImageInfo, PostInfo, UploadEvent, UploadRef
from stream_processors.engine.decode import DecodeLimits, ImageRejected, decode_image
from stream_processors.engine.method import DedupMethod


@dataclass(frozen=True)
class Rejection:
    """Why an upload cannot be processed; it goes to the dead-letter topic as is."""

    reason: str
    detail: str


def extract_features(
    upload: UploadEvent, ref: UploadRef, method: DedupMethod, limits: DecodeLimits
) -> FeatureEvent | Rejection:
    started = time.perf_counter()
    try:
        image = decode_image(upload.image, limits)
    except ImageRejected as exc:
        return Rejection(reason=str(exc.reason), detail=exc.detail)
    signature = method.signature_to_bytes(method.extract(image))
    return FeatureEvent(
        upload_id=upload.upload_id,
        post=PostInfo(upload.author, upload.title, upload.description, upload.uploaded_at),
        image=ImageInfo(image.sha256, len(upload.image), image.width, image.height, image.format),
        method=method.name,
        upload_ref=ref,
        extract_seconds=time.perf_counter() - started,
        signature=signature,
    )


def extract_probe(image: bytes, method: DedupMethod, limits: DecodeLimits) -> Any | Rejection:
    """A searched picture's signature, decoded under the same limits as an upload, so a search
    refuses exactly what the pipeline would dead-letter."""
    try:
        decoded = decode_image(image, limits)
    except ImageRejected as exc:
        return Rejection(reason=str(exc.reason), detail=exc.detail)
    return method.extract(decoded)
