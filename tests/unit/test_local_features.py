"""Local-feature records: the keypoints can be read without decoding the thumbnail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

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
    strict, _ = lf._orb.detectAndCompute(frame, None)
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


def test_jpeg_and_png_records_round_trip_with_quantised_points() -> None:
    """A record keeps descriptors exactly and points to 1/COORD_SCALE px; a PNG thumbnail
    exactly, a JPEG one closely at a fraction of the bytes; the thumbnail is read alone."""
    feats = _features()
    png = lf.local_features_to_bytes(feats, lf.ThumbCodec.PNG)
    jpeg = lf.local_features_to_bytes(feats, lf.ThumbCodec.JPEG)
    assert len(jpeg) < len(png)
    for record in (png, jpeg):
        parsed, used = lf.local_features_from_bytes(record)
        assert used == len(record) == lf.record_length(record)
        assert parsed.frame_size == feats.frame_size
        assert np.array_equal(parsed.keypoints.descriptors, feats.keypoints.descriptors)
        err = np.abs(parsed.keypoints.points - feats.keypoints.points).max()
        assert err <= 0.5 / lf.COORD_SCALE
        assert np.array_equal(parsed.keypoints.points, lf.quantize_points(feats.keypoints.points))
        assert np.array_equal(lf.record_thumb(record), parsed.thumb)
    assert np.array_equal(lf.local_features_from_bytes(png)[0].thumb, feats.thumb)


def test_a_jpeg_thumbnail_of_a_photo_stays_close_to_the_pixels() -> None:
    """The pixel checks compare thumbnails to a few grey levels: JPEG must stay well below."""
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # skimage's bundled photo, BGR
    thumb = lf.thumb_of(lf.frame_of(photo))
    frame = lf.frame_of(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    feats = lf.LocalFeatures(lf.detect_orb(frame), (frame.shape[1], frame.shape[0]), thumb)
    decoded = lf.record_thumb(lf.local_features_to_bytes(feats, lf.ThumbCodec.JPEG))
    err = np.abs(decoded.astype(int) - thumb)
    assert err.mean() < 2.0
    assert np.percentile(err, 99) <= 8
    codec, _ = lf.choose_codec(thumb)
    assert codec is lf.ThumbCodec.JPEG


def test_pixel_art_keeps_a_lossless_thumbnail() -> None:
    """A one-pixel trait is what tells two pixel-art pictures apart: flat art stays exact."""
    sprite = np.full((24, 24, 3), (96, 160, 200), np.uint8)  # a flat background
    sprite[6:20, 7:17] = (60, 110, 170)  # a face
    sprite[10, 9], sprite[10, 14] = (0, 0, 0), (0, 0, 0)  # eyes: one-pixel traits
    sprite[15:17, 9:15] = (40, 40, 140)  # a mouth
    art = np.kron(sprite, np.ones((8, 8, 1), np.uint8))
    thumb = lf.thumb_of(art)
    codec, _ = lf.choose_codec(thumb)
    assert codec is lf.ThumbCodec.PNG
    frame = lf.frame_of(art[:, :, 0])
    feats = lf.LocalFeatures(lf.detect_orb(frame), (frame.shape[1], frame.shape[0]), thumb)
    assert np.array_equal(lf.record_thumb(lf.local_features_to_bytes(feats)), thumb)


def test_a_record_is_parsed_again_to_the_same_features() -> None:
    """What the pipeline stores after the wire is what an evaluation in one process compares:
    a parsed record written again parses to identical arrays (JPEG re-encoding aside, the
    store keeps the bytes as they came)."""
    record = lf.local_features_to_bytes(_features())
    once, _ = lf.local_features_from_bytes(record)
    again, _ = lf.local_features_from_bytes(bytes(record))
    assert np.array_equal(once.thumb, again.thumb)
    assert np.array_equal(once.keypoints.points, again.keypoints.points)


def test_a_record_with_an_unknown_codec_or_a_corrupt_thumbnail_is_refused() -> None:
    raw = bytearray(lf.local_features_to_bytes(_features()))
    bad_codec = bytes(raw[:3]) + bytes([9]) + bytes(raw[4:])
    with pytest.raises(ValueError, match="unknown thumbnail codec 9"):
        lf.record_thumb(bad_codec)
    header = lf._LF_HEADER.unpack_from(raw, 0)
    wrong_size = lf._LF_HEADER.pack(*header[:5], header[5] + 1, *header[6:])
    with pytest.raises(ValueError, match="corrupt JPEG thumbnail"):
        lf.record_thumb(wrong_size + bytes(raw[lf._LF_HEADER.size :]))
