"""Which objects the blob sink writes and deletes: a copy that keeps its own bytes is stored
beside its reference, and its object goes with its post."""

from __future__ import annotations

from schemas.events import (
    DecisionEvent,
    DecisionInfo,
    ImageInfo,
    PostDeletedEvent,
    PostInfo,
    UploadRef,
)
from sinks.blob_sink import deleted_objects, stores_bytes

OWN = "a" * 64
ORIGINAL = "b" * 64


def _decision(kind: str, keeps: bool = False) -> DecisionEvent:
    info = DecisionInfo(kind, "o", "o", 1.0, "m", unexplained_share=0.2 if keeps else 0.0,
                        keeps_own_bytes=keeps)
    return DecisionEvent(
        upload_id="u", decision=info, post=PostInfo("a", "t", "", "now"),
        image=ImageInfo(OWN, 1, 1, 1, "png"), upload_ref=UploadRef("t", 0, 1), seq=1,
    )


def test_a_new_image_and_a_copy_that_adds_content_are_stored_a_plain_copy_is_not() -> None:
    assert stores_bytes(_decision("new-cluster"))
    assert stores_bytes(_decision("duplicate-reference", keeps=True))
    assert not stores_bytes(_decision("duplicate-reference"))


def test_a_deletion_removes_the_post_s_own_bytes_and_an_orphaned_image() -> None:
    def deleted(own: str | None, orphaned: bool) -> list[str]:
        event = PostDeletedEvent("u", "o", "o", ORIGINAL, orphaned, "t", 2, own_sha256=own)
        return deleted_objects(event)

    assert deleted(None, False) == []
    assert deleted(OWN, False) == [OWN]
    assert deleted(OWN, True) == [OWN, ORIGINAL]
    assert deleted(None, True) == [ORIGINAL]
