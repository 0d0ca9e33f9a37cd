"""Dead-letter records: the reason, the stage, where the input came from and the input itself."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import DeadLetterEvent, UploadRef


def dead_letter(
    reason: str, detail: str, stage: str, source: UploadRef, original: bytes | None,
    upload_id: str | None = None,
) -> DeadLetterEvent:
    return DeadLetterEvent(
        reason=reason,
        detail=detail,
        stage=stage,
        source=source,
        upload_id=upload_id,
        failed_at=datetime.now(UTC).isoformat(),
        original=original or b"",
    )
