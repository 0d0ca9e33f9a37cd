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
