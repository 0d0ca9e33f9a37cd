"""The seed method reproduces the paper's rule: golden Hu values, pixel identity with an absolute
difference (a darker copy is NOT a duplicate), threshold-based clusters, running-mean centers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.decode import DecodedImage
from stream_processors.engine.seed_method import (
    SEED_THRESHOLD,
    SeedMethod,
    SeedSignature,
    seed_signature,
)


def _synthetic() -> np.ndarray:
    img = np.zeros((240, 320, 3), np.uint8)
    img[:] = (40, 60, 80)
    cv2.ellipse(img, (140, 120), (90, 50), 20, 0, 360, (200, 180, 160), -1)
    cv2.rectangle(img, (230, 30), (300, 200), (20, 220, 90), -1)
    ramp = np.arange(320)[None, :] // 8
    img[:, :, 1] = np.clip(img[:, :, 1].astype(int) + ramp, 0, 255).astype(np.uint8)
    return img


def _image(bgr: np.ndarray) -> DecodedImage:
    h, w = bgr.shape[:2]
    return DecodedImage(pixels=bgr, width=w, height=h, format="png", sha256="")


def _decide(method: SeedMethod, upload_id: str, bgr: np.ndarray) -> tuple[Decision, SeedSignature]:
    sig = method.extract(_image(bgr))
    decision = method.evaluate(upload_id, sig)
    method.apply(decision, sig)
    return decision, sig


def test_golden_hu_values() -> None:
    sig = seed_signature(_synthetic(), 240, 320)
    np.testing.assert_allclose(
        sig.hu, [9.718569850239483e-04, 3.176505889398027e-09, 3.472463036356725e-11], rtol=1e-6
    )
    # and they are the textbook phi1..phi3 of the equalised thumbnail, not a near relative
    f = cv2.equalizeHist(sig.thumb).astype(np.float64)
    y, x = np.mgrid[: f.shape[0], : f.shape[1]].astype(np.float64)
    m00 = f.sum()
    cx, cy = (x * f).sum() / m00, (y * f).sum() / m00

    def eta(p: int, q: int) -> float:
        return float((((x - cx) ** p) * ((y - cy) ** q) * f).sum() / m00 ** (1 + (p + q) / 2))

    phi1 = eta(2, 0) + eta(0, 2)
    phi2 = (eta(2, 0) - eta(0, 2)) ** 2 + 4 * eta(1, 1) ** 2
    phi3 = (eta(3, 0) - 3 * eta(1, 2)) ** 2 + (3 * eta(2, 1) - eta(0, 3)) ** 2
    np.testing.assert_allclose(sig.hu, [phi1, phi2, phi3], rtol=1e-9)


def test_exact_copy_is_duplicate_reference() -> None:
    m = SeedMethod()
    first, _ = _decide(m, "u1", _synthetic())
    assert first.kind is DecisionKind.NEW_CLUSTER
    again, _ = _decide(m, "u2", _synthetic().copy())
    assert again.kind is DecisionKind.DUPLICATE_REFERENCE
    assert again.image_id == "u1" and again.cluster_id == "u1"
    assert len(m) == 1  # a duplicate stores nothing


def test_darker_copy_is_not_a_duplicate() -> None:
    """The seed's saturating subtraction (darker - original clipped at 0) is zero everywhere, so
    it called this a duplicate; the absolute difference does not."""
    original = _synthetic()
    darker = cv2.subtract(original, np.full_like(original, 25))
    assert not cv2.subtract(darker, original).any()  # the seed's test would have passed
    m = SeedMethod()
    _decide(m, "u1", original)
    d, _ = _decide(m, "u2", darker)
    assert d.kind is not DecisionKind.DUPLICATE_REFERENCE


def test_far_image_founds_new_cluster_and_near_one_merges() -> None:
    m = SeedMethod()
    _, s1 = _decide(m, "u1", _synthetic())
    far = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(far, (40, 40), 30, (255, 255, 255), -1)
    d_far, _ = _decide(m, "u2", far)
    assert d_far.kind is DecisionKind.NEW_CLUSTER
    assert d_far.distance is not None and d_far.distance > SEED_THRESHOLD
    assert m.n_clusters == 2
    # a slightly different image near u1: joins its cluster, center = running mean
    near = _synthetic()
    near[0:4, 0:4] = 255
    d_near, s3 = _decide(m, "u3", near)
    assert d_near.kind is DecisionKind.MERGE_CENTER
    assert d_near.cluster_id == "u1" and m.cluster_of("u3") == "u1"
    np.testing.assert_allclose(m._centers[0], (s1.hu + s3.hu) / 2)
    # removal restores the founder's center; removing the last member drops the cluster
    m.remove("u3")
    np.testing.assert_allclose(m._centers[0], s1.hu)
    m.remove("u2")
    assert m.n_clusters == 1 and len(m) == 1


def test_signature_bytes_round_trip_and_versioned() -> None:
    m = SeedMethod()
    sig = seed_signature(_synthetic(), 240, 320)
    data = m.signature_to_bytes(sig)
    back = m.signature_from_bytes(data)
    np.testing.assert_array_equal(back.hu, sig.hu)
    np.testing.assert_array_equal(back.thumb, sig.thumb)
    assert back.shape == (240, 320)
    with pytest.raises(ValueError):
        m.signature_from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError):
        m.signature_from_bytes(data[:-1])
