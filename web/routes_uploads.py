"""``POST /v1/uploads``: the upload gateway. Validates as the producer API does, publishes with
acks=all, and answers 202 once Kafka has the upload; the pipeline decides later.

An ``Idempotency-Key`` makes a retry safe: the same key and body get the first answer again and
publish nothing; the same key with another body is a 409, since one of the two would be lost.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from producers.publisher import UploadRefused, build_upload
from web import queries
from web.auth import Caller
from web.keys import ApiKey
from web.models import UploadAccepted
from web.problems import Problem
from web.services import Services, Svc

router = APIRouter(tags=["uploads"])

# Room the multipart framing and the text fields take beside an image at the cap.
FORM_OVERHEAD_BYTES = 256 * 1024
TEXT_FIELD_MAX_BYTES = 64 * 1024
IDEMPOTENCY_KEY_MAX = 200

_REFUSAL_STATUS = {"too-large": 413, "empty": 422, "empty-field": 422, "invalid-text": 422}

UPLOAD_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "author"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "author": {"type": "string", "minLength": 1},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                    },
                }
            }
        },
    }
}


def body_hash(author: str, title: str, description: str, image: bytes) -> str:
    """What an Idempotency-Key is bound to: the fields and the image, unambiguously framed."""
    h = hashlib.sha256()
    for part in (author.encode(), title.encode(), description.encode(), image):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def refusal_problem(exc: UploadRefused) -> Problem:
    """The producer's refusal as HTTP: too large 413, empty or a blank field 422, and every
    verdict of the magic-byte check (unknown or unsupported format) 415."""
    status = _REFUSAL_STATUS.get(exc.reason, 415)
    title = f"Upload refused: {exc.reason}"
    return Problem(status, f"upload-{exc.reason}", exc.detail, title=title)


def check_multipart(request: Request, cap: int, what: str) -> None:
    """Refuse a form that cannot hold an image under the cap (413, before reading it) or that
    is not multipart (415, ``what`` says which form was expected)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap + FORM_OVERHEAD_BYTES:
        raise Problem(
            413, "upload-too-large",
            f"the request is {int(declared)} bytes; an image may be at most {cap} bytes",
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise Problem(
            415, "not-multipart", f"{what}; got Content-Type {media_type or 'none'!r}"
        )


async def read_image_part(form: Any, cap: int) -> tuple[bytes, str]:
    """The form's ``image`` file part, at most one byte over the cap (so an oversized image is
    refused as such, not read whole), and its file name ("" when it has none); a missing or
    non-file part is a 422 naming it."""
    part = form.get("image")
    if part is None:
        raise Problem(422, "missing-field", "the multipart field 'image' (a file) is required")
    if not isinstance(part, UploadFile):
        raise Problem(422, "invalid-field", "the multipart field 'image' must be a file part")
    return await part.read(cap + 1), part.filename or ""


def form_text(form: Any, name: str, required: bool) -> str:
    """A text field of the upload form, refused (422, naming it) when missing, a file or too
    long; "" for an optional field left out. What the text may hold, build_upload checks."""
    value = form.get(name)
    if value is None:
        if required:
            raise Problem(422, "missing-field", f"the multipart field {name!r} is required")
        return ""
    if not isinstance(value, str):
        raise Problem(422, "invalid-field", f"the multipart field {name!r} must be text, no file")
    if len(value.encode()) > TEXT_FIELD_MAX_BYTES:
        raise Problem(
            422, "invalid-field", f"the field {name!r} is longer than {TEXT_FIELD_MAX_BYTES} bytes"
        )
    return value


def _accepted(post_id: str, replayed: bool) -> JSONResponse:
    body = UploadAccepted(post_id=post_id, status_url=f"/v1/posts/{post_id}")
    headers = {"Location": body.status_url}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


@router.post(
    "/v1/uploads", status_code=202, response_model=UploadAccepted,
    openapi_extra=UPLOAD_FORM_SCHEMA,
    summary="Upload an image as a post; the decision follows on /v1/posts/{post_id}",
)
async def create_upload(
    request: Request, key: Caller, svc: Svc,
) -> JSONResponse:
    cap = svc.settings.max_image_bytes
    check_multipart(request, cap, "uploads are multipart/form-data with fields image, author, "
                    "title, description")
    idem_key = request.headers.get("idempotency-key")
    if idem_key is not None and not 0 < len(idem_key) <= IDEMPOTENCY_KEY_MAX:
        raise Problem(
            400, "bad-idempotency-key",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters, got {len(idem_key)}",
        )
    async with request.form(max_files=1, max_fields=8, max_part_size=TEXT_FIELD_MAX_BYTES) as form:
        image, filename = await read_image_part(form, cap)
        author = form_text(form, "author", required=True)
        title = form_text(form, "title", required=False)
        description = form_text(form, "description", required=False)
    post_id, replayed = await publish_upload(
        svc, key, author=author, title=title, description=description, image=image,
        filename=filename, idem_key=idem_key,
    )
    return _accepted(post_id, replayed=replayed)


async def publish_upload(
    svc: Services, key: ApiKey, *, author: str, title: str, description: str, image: bytes,
    filename: str, idem_key: str | None = None,
) -> tuple[str, bool]:
    """Validate and publish one upload as the producer API does, recording it for the key's
    scope: (post id, whether an Idempotency-Key replayed an earlier one). The gateway and the
    web page's upload form both publish through here. Refusals are Problems (413/415/422/409).
    """
    cap = svc.settings.max_image_bytes
    post_id = str(uuid.uuid4())
    try:
        upload = build_upload(
            post_id, author, title, image, cap, description=description, filename=filename
        )
    except UploadRefused as exc:
        raise refusal_problem(exc) from exc
    platform = key.name
    digest = body_hash(author, title, description, image)
    async with svc.connection() as conn, conn.transaction():
        if idem_key is not None:
            earlier = await queries.claim_idempotency_key(conn, platform, idem_key, digest, post_id)
            if earlier is not None:
                earlier_hash, earlier_post = earlier
                if earlier_hash != digest:
                    raise Problem(
                        409, "idempotency-key-reused",
                        f"Idempotency-Key {idem_key!r} was used for another upload (post "
                        f"{earlier_post}) with a different body; use a new key for a new upload",
                    )
                return earlier_post, True
        published = await svc.publisher.publish(upload)
        await queries.record_upload(
            conn, post_id=post_id, platform=platform, key_id=key.key_id, author=author,
            title=title, description=description, sha256=hashlib.sha256(image).hexdigest(),
            byte_size=len(image), partition=published.partition, offset=published.offset,
        )
    return post_id, False
