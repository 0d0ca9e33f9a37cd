"""The decide stage: idempotent on re-delivery, and restorable from its tables."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from schemas.events import FeatureEvent, UploadRef
from stream_processors.decider import Decider
from stream_processors.engine.decode import decode_image
from stream_processors.engine.method import build_method


def _png(seed: int, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (size, size),
                     interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _feature(method_name: str, upload_id: str, data: bytes, offset: int) -> FeatureEvent:
    method = build_method(method_name)
    image = decode_image(data)
    return FeatureEvent(
        upload_id=upload_id, author="alice", title=upload_id, description="", uploaded_at="now",
        sha256=hashlib.sha256(data).hexdigest(), byte_size=len(data), width=image.width,
        height=image.height, image_format=image.format, method=method.name,
        upload_ref=UploadRef("picnix.uploads", 0, offset),
        extract_seconds=0.0, signature=method.signature_to_bytes(method.extract(image)),
    )


def test_exact_copy_references_the_first_upload_and_redelivery_changes_nothing() -> None:
    decisions: dict[str, bytes] = {}
    stored: dict[str, bytes] = {}
    decider = Decider(build_method("default"), decisions, stored)
    first = _feature("default", "u1", _png(1), 0)
    copy = _feature("default", "u2", _png(1), 1)
    other = _feature("default", "u3", _png(2), 2)

    a = decider.decide(first, seq=0)
    b = decider.decide(copy, seq=1)
    c = decider.decide(other, seq=2)
    assert a.event.kind == "new-cluster"
    assert b.event.kind == "duplicate-reference" and b.event.image_id == "u1"
    assert c.event.image_id == "u3"
    snapshot = (dict(decisions), dict(stored))

    again = decider.decide(copy, seq=7)
    assert again.redelivered and again.event == b.event
    assert (decisions, stored) == snapshot


def test_a_restarted_decider_rebuilds_the_same_state_from_its_tables() -> None:
    decisions: dict[str, bytes] = {}
    stored: dict[str, bytes] = {}
    features = [_feature("default", f"u{i}", _png(i % 3), i) for i in range(6)]
    live = Decider(build_method("default"), decisions, stored)
    for i, feature in enumerate(features[:4]):
        live.decide(feature, seq=i)

    restarted = Decider(build_method("default"), dict(decisions), dict(stored))
    for i, feature in enumerate(features[4:], start=4):
        assert restarted.decide(feature, seq=i).event == live.decide(feature, seq=i).event
