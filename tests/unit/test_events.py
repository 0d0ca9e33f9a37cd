"""Event schemas: round trips, and every malformed input rejected with a precise reason."""

from __future__ import annotations

import json
import struct

import pytest

from schemas.envelope import MAGIC, SchemaError, pack, unpack
from schemas.events import (
    DecisionEvent,
    DecisionInfo,
    FeatureEvent,
    ImageInfo,
    PostInfo,
    RefusalInfo,
    RefusedCandidateInfo,
    RegionInfo,
    UploadEvent,
    UploadRef,
)


def _upload(**overrides: object) -> UploadEvent:
    fields: dict[str, object] = {
        "upload_id": "u-1", "author": "alice", "title": "cat", "uploaded_at": "2026-01-01",
        "image": b"\xff\xd8\xff\xe0 pretend jpeg",
    }
    fields.update(overrides)
    return UploadEvent(**fields)  # type: ignore[arg-type]


def test_upload_round_trip_keeps_bytes_inline_without_base64() -> None:
    event = _upload()
    record = event.to_record()
    assert record.startswith(MAGIC)
    assert record.endswith(event.image)  # raw payload after the header
    assert UploadEvent.from_record(record) == event


def test_nested_value_objects_round_trip() -> None:
    ref = UploadRef("picnix.uploads", 3, 42)
    feature = FeatureEvent(
        upload_id="u", post=PostInfo("a", "t", "", "now"),
        image=ImageInfo("0" * 64, 10, 2, 3, "png"), method="default", upload_ref=ref,
        extract_seconds=0.01, signature=b"\x00\x01",
    )
    back = FeatureEvent.from_record(feature.to_record())
    assert back == feature
    assert back.upload_ref == ref and back.image.width == 2


def _header_record(header: dict[str, object], payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">3sBI", MAGIC, 1, len(raw)) + raw + payload


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (b"", "empty-record"),
        (b"not an event at all", "malformed"),
        (struct.pack(">3sBI", MAGIC, 1, 5) + b"{nope", "malformed-json"),
        (struct.pack(">3sBI", MAGIC, 9, 2) + b"{}", "unknown-frame-format"),
        (_header_record({"schema": "picnix.Other", "version": 1}), "wrong-schema"),
        (_header_record({"schema": "picnix.UploadEvent", "version": 99}), "unknown-version"),
        (_header_record({"schema": "picnix.UploadEvent", "version": 1, "author": "a"}),
         "missing-field"),
        (_header_record({"schema": "picnix.UploadEvent", "version": 1, "upload_id": 7,
                         "author": "a", "title": "t", "uploaded_at": "x"}), "wrong-type"),
        (_header_record({"schema": "picnix.UploadEvent", "version": 1, "upload_id": " ",
                         "author": "a", "title": "t", "uploaded_at": "x"}), "empty-field"),
        (_header_record({"schema": "picnix.UploadEvent", "version": 1, "upload_id": "u",
                         "author": "a", "title": "t\u0000", "uploaded_at": "x"}), "invalid-text"),
    ],
)
def test_malformed_records_are_rejected_with_their_reason(record: bytes, code: str) -> None:
    with pytest.raises(SchemaError) as info:
        UploadEvent.from_record(record)
    assert info.value.code == code
    assert info.value.detail


def test_optional_fields_accept_null_and_numbers() -> None:
    ref = UploadRef("t", 0, 1)
    event = DecisionEvent(
        upload_id="u", decision=DecisionInfo("new-cluster", "u", "u", None, "m"),
        post=PostInfo("a", "t", "", "now"), image=ImageInfo("0" * 64, 1, 1, 1, "png"),
        upload_ref=ref, seq=0,
    )
    assert DecisionEvent.from_record(event.to_record()).decision.distance is None
    frame = unpack(event.to_record())
    frame.header["decision"]["distance"] = 3
    assert DecisionEvent.from_record(pack(frame.header)).decision.distance == 3.0
    del frame.header["decision"]["kind"]
    with pytest.raises(SchemaError, match=r"DecisionEvent\.decision\.kind"):
        DecisionEvent.from_record(pack(frame.header))


def test_a_decision_s_region_round_trips_and_older_records_read_without_one() -> None:
    region = RegionInfo(0.1, 0.2, 0.85, 0.9)
    event = DecisionEvent(
        upload_id="u", decision=DecisionInfo("duplicate-reference", "o", "o", 12.0, "m", region),
        post=PostInfo("a", "t", "", "now"), image=ImageInfo("0" * 64, 1, 1, 1, "png"),
        upload_ref=UploadRef("t", 0, 1), seq=3,
    )
    assert DecisionEvent.from_record(event.to_record()) == event
    frame = unpack(event.to_record())
    del frame.header["decision"]["region"]  # written before decisions carried a region
    assert DecisionEvent.from_record(pack(frame.header)).decision.region is None
    frame.header["decision"]["region"] = {"x0": 0.1, "y0": 0.2, "x1": 0.85}
    with pytest.raises(SchemaError, match=r"decision\.region"):
        DecisionEvent.from_record(pack(frame.header))


def test_a_decision_s_refusals_round_trip_and_older_records_read_without_them() -> None:
    """The refused candidates and the refusals before the accepting rule travel with the
    decision (the post page shows them); a record written before decisions carried them reads
    as none, and a malformed refusal is a schema error naming it."""
    clean_copy = RefusalInfo("clean-copy", "changed-detail", "bad 0.0039 > max_bad 0.0005")
    refused = RefusedCandidateInfo(
        "p7", "p7", "default:hash+pixels",
        (RefusalInfo("colours", "colours-changed", "chroma_flip 0.222 > max_chroma_flip 0.1"),),
    )
    unaligned = RefusedCandidateInfo(
        "a3", "p1", "default:orb+ransac+pixels",
        (RefusalInfo("geometry", "no-geometry", "9 inliers < min_inliers 10"),),
    )
    info = DecisionInfo(
        "duplicate-reference", "o", "o", 20.0, "default:hash+pixels", reason="overlay",
        reason_refusals=(clean_copy,), refused=(refused, unaligned),
    )
    event = DecisionEvent(
        upload_id="u", decision=info, post=PostInfo("a", "t", "", "now"),
        image=ImageInfo("0" * 64, 1, 1, 1, "png"), upload_ref=UploadRef("t", 0, 1), seq=3,
    )
    back = DecisionEvent.from_record(event.to_record())
    assert back == event
    assert back.decision.refused[1].refusals[0].why == "9 inliers < min_inliers 10"
    frame = unpack(event.to_record())
    del frame.header["decision"]["refused"], frame.header["decision"]["reason_refusals"]
    old = DecisionEvent.from_record(pack(frame.header)).decision
    assert old.refused == () and old.reason_refusals == () and old.reason == "overlay"
    frame.header["decision"]["refused"] = [{"entry_id": "p7", "image_id": "p7", "check": 3}]
    with pytest.raises(SchemaError, match=r"decision\.refused\[0\]\.check"):
        DecisionEvent.from_record(pack(frame.header))


def test_a_decision_s_added_content_round_trips_and_older_records_read_without_it() -> None:
    """The share a copy's original does not explain and whether its own bytes are kept travel
    with the decision; a record written before reads as unmeasured and not kept."""
    info = DecisionInfo(
        "duplicate-reference", "o", "o", 20.0, "default:hash+pixels", reason="overlays",
        unexplained_share=0.18, keeps_own_bytes=True,
    )
    event = DecisionEvent(
        upload_id="u", decision=info, post=PostInfo("a", "t", "", "now"),
        image=ImageInfo("0" * 64, 1, 1, 1, "png"), upload_ref=UploadRef("t", 0, 1), seq=3,
    )
    assert DecisionEvent.from_record(event.to_record()) == event
    frame = unpack(event.to_record())
    del frame.header["decision"]["unexplained_share"], frame.header["decision"]["keeps_own_bytes"]
    old = DecisionEvent.from_record(pack(frame.header)).decision
    assert old.unexplained_share is None and not old.keeps_own_bytes
    frame.header["decision"]["keeps_own_bytes"] = "yes"
    with pytest.raises(SchemaError, match=r"decision\.keeps_own_bytes"):
        DecisionEvent.from_record(pack(frame.header))
