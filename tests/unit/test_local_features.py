"""Local-feature records: the keypoints can be read without decoding the thumbnail."""

from __future__ import annotations

import numpy as np
import pytest

from stream_processors.engine import local_features as lf


def test_record_keypoints_equal_the_full_parse() -> None:
    rng = np.random.default_rng(0)
    gray = (rng.random((240, 320)) * 255).astype(np.uint8)
    frame = lf.frame_of(gray)
    kp = lf.detect_orb(frame)
    thumb = lf.thumb_of(np.dstack([frame] * 3))
    record = lf.local_features_to_bytes(
        lf.LocalFeatures(kp, (frame.shape[1], frame.shape[0]), thumb)
    )
    full, _ = lf.local_features_from_bytes(record)
    got = lf.record_keypoints(record)
    assert len(got) == len(kp) > 0
    assert np.array_equal(got.points, full.keypoints.points)
    assert np.array_equal(got.descriptors, full.keypoints.descriptors)


def test_low_contrast_frames_are_detected_at_the_low_threshold() -> None:
    rng = np.random.default_rng(1)
    # faint texture: grey levels 120..127, mostly below ORB_FAST_THRESHOLD apart
    gray = (120 + rng.random((240, 320)) * 8).astype(np.uint8)
    gray = np.kron(gray[::8, ::8], np.ones((8, 8), np.uint8))  # blocky, so corners exist
    frame = lf.frame_of(gray)
    strict = lf._detect(lf._orb, frame)
    got = lf.detect_orb(frame)
    assert len(strict) < lf.ORB_MIN_KEYPOINTS
    assert len(got) > len(strict)


def _features() -> lf.LocalFeatures:
    rng = np.random.default_rng(2)
    gray = (rng.random((240, 320)) * 255).astype(np.uint8)
    frame = lf.frame_of(gray)
    colour = np.dstack([frame, frame[::-1], frame[:, ::-1]])
    size = (frame.shape[1], frame.shape[0])
    return lf.LocalFeatures(lf.detect_orb(frame), size, lf.thumb_of(colour))


def test_raw_and_png_records_hold_the_same_features() -> None:
    """The store's raw records and the signature's PNG records parse to the same features, and
    the thumbnail alone is read without the keypoints."""
    feats = _features()
    png = lf.local_features_to_bytes(feats, lf.ThumbCodec.PNG)
    raw = lf.local_features_to_bytes(feats, lf.ThumbCodec.RAW)
    assert len(png) < len(raw)
    for record in (png, raw):
        parsed, used = lf.local_features_from_bytes(record)
        assert used == len(record)
        assert parsed.frame_size == feats.frame_size
        assert np.array_equal(parsed.thumb, feats.thumb)
        assert np.array_equal(parsed.keypoints.descriptors, feats.keypoints.descriptors)
        assert np.array_equal(lf.record_thumb(record), feats.thumb)


def test_a_record_with_an_unknown_codec_or_a_short_thumbnail_is_refused() -> None:
    raw = bytearray(lf.local_features_to_bytes(_features(), lf.ThumbCodec.RAW))
    bad_codec = bytes(raw[:3]) + bytes([9]) + bytes(raw[4:])
    with pytest.raises(ValueError, match="unknown thumbnail codec 9"):
        lf.record_thumb(bad_codec)
    header = lf._LF_HEADER.unpack_from(raw, 0)
    short = lf._LF_HEADER.pack(*header[:-1], header[-1] - 3) + bytes(raw[lf._LF_HEADER.size :])
    with pytest.raises(ValueError, match="raw thumbnail of the wrong size"):
        lf.record_thumb(short)
