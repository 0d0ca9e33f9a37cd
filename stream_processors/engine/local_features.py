"""Local evidence: ORB keypoints of the trimmed frame, a grayscale thumbnail, and their store.

Why: global hashes cannot see through crops, rotations and heavy overlays; keypoints verified
geometrically can. ORB is patent-free, ships with OpenCV and costs a few ms at 480 px. The
keypoints of the mirrored frame are computed for queries only (ORB is not mirror-invariant), so a
mirrored-and-cropped copy is still found. Local features are large (tens of KiB), so they live in
a ``FeatureStore`` that the index reads only for the few shortlisted candidates; the default store
is an in-memory dict, a benchmark can plug in an on-disk one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import cv2
import numpy as np

FRAME_LONG_SIDE = 480
THUMB_LONG_SIDE = 192
ORB_FEATURES = 500
ORB_FAST_THRESHOLD = 12
# Low-contrast frames (flat clip art, dark wallpapers, a brightened or washed-out copy) give
# FAST few corners at ORB_FAST_THRESHOLD -- dozens, sometimes none -- and then no geometry can
# be found. Such a frame is detected again at ORB_LOW_FAST_THRESHOLD; textured frames already
# reach ORB_FEATURES and keep their detection (and its cost). Dev recall 720 -> 725 TP, FPs
# unchanged; re-detecting below 150 keypoints 723, every frame at threshold 2 724, threshold 5
# below 150 722.
ORB_LOW_FAST_THRESHOLD = 2
ORB_MIN_KEYPOINTS = 300
DESCRIPTOR_BYTES = 32

_orb = cv2.ORB.create(nfeatures=ORB_FEATURES, fastThreshold=ORB_FAST_THRESHOLD)
_orb_low = cv2.ORB.create(nfeatures=ORB_FEATURES, fastThreshold=ORB_LOW_FAST_THRESHOLD)


@dataclass(frozen=True)
class Keypoints:
    """Keypoint positions (float32 (N, 2), frame pixels) and ORB descriptors (uint8 (N, 32)),
    sorted by decreasing detector response so the first ones are the most repeatable."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class LocalFeatures:
    """What verification needs of one image: keypoints, the frame size they live in, a thumbnail.

    ``frame_size`` is (width, height) of the trimmed image resized to FRAME_LONG_SIDE; the
    thumbnail is the same frame at THUMB_LONG_SIDE, so the two are related by a pure scale.
    """

    keypoints: Keypoints
    frame_size: tuple[int, int]
    thumb: np.ndarray

    def thumb_scale(self) -> tuple[float, float]:
        """(sx, sy) mapping frame coordinates to thumbnail coordinates."""
        th, tw = self.thumb.shape[:2]
        return tw / self.frame_size[0], th / self.frame_size[1]


def empty_keypoints() -> Keypoints:
    return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def detect_orb(gray: np.ndarray) -> Keypoints:
    """ORB keypoints of a grayscale frame, strongest first; a frame with fewer than
    ORB_MIN_KEYPOINTS is detected again with a lower FAST threshold (see ORB_MIN_KEYPOINTS)."""
    found = _detect(_orb, gray)
    if len(found) >= ORB_MIN_KEYPOINTS:
        return found
    low = _detect(_orb_low, gray)
    return low if len(low) > len(found) else found


def _detect(orb: cv2.ORB, gray: np.ndarray) -> Keypoints:
    kps, desc = orb.detectAndCompute(gray, None)
    if desc is None or not kps:
        return empty_keypoints()
    order = np.argsort([-kp.response for kp in kps], kind="stable")
    pts = np.array([kps[i].pt for i in order], dtype=np.float32).reshape(-1, 2)
    return Keypoints(pts, np.ascontiguousarray(desc[order]))


def frame_of(gray: np.ndarray) -> np.ndarray:
    """Resize a trimmed grayscale image so its long side is FRAME_LONG_SIDE."""
    h, w = gray.shape[:2]
    s = FRAME_LONG_SIDE / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=interp)


def thumb_of(frame: np.ndarray) -> np.ndarray:
    """Thumbnail (same channels as the frame) with long side THUMB_LONG_SIDE."""
    h, w = frame.shape[:2]
    s = THUMB_LONG_SIDE / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------- serialisation
_LF_MAGIC = b"LF"
_LF_VERSION = 4  # 4: the thumbnail codec is recorded (PNG or raw)
# magic, version, thumbnail codec, frame w, h, thumb w, h, n keypoints, thumbnail bytes
_LF_HEADER = struct.Struct("<2sBBHHHHHI")
_THUMB_CHANNELS = 3


class ThumbCodec(IntEnum):
    """How a record holds its thumbnail. PNG is lossless at a third of the raw size, for the
    signature on the wire; RAW is for the FeatureStore, read for every hash neighbour's pixel
    check, where decoding a PNG thumbnail alone costs ~0.5 ms."""

    PNG = 0
    RAW = 1


def keypoints_to_bytes(kp: Keypoints) -> bytes:
    return kp.points.astype("<f4").tobytes() + kp.descriptors.tobytes()


def keypoints_from_bytes(data: bytes | memoryview, n: int) -> tuple[Keypoints, int]:
    """Parse n keypoints from the start of data; returns them and the bytes consumed."""
    pts = np.frombuffer(data, dtype="<f4", count=2 * n).astype(np.float32).reshape(n, 2)
    off = 8 * n
    desc = np.frombuffer(data, dtype=np.uint8, count=DESCRIPTOR_BYTES * n, offset=off)
    desc = desc.reshape(n, DESCRIPTOR_BYTES).copy()
    return Keypoints(pts, desc), off + DESCRIPTOR_BYTES * n


def _encode_thumb(thumb: np.ndarray) -> bytes:
    """Lossless PNG: a third of the raw size, and decisions stay bit-identical."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(thumb, np.uint8))
    if not ok:
        raise ValueError("thumbnail could not be encoded")
    return bytes(buf.tobytes())


def local_features_to_bytes(lf: LocalFeatures, codec: ThumbCodec = ThumbCodec.PNG) -> bytes:
    th, tw = lf.thumb.shape[:2]
    if codec is ThumbCodec.PNG:
        thumb = _encode_thumb(lf.thumb)
    else:
        thumb = np.ascontiguousarray(lf.thumb, np.uint8).tobytes()
    header = _LF_HEADER.pack(
        _LF_MAGIC,
        _LF_VERSION,
        codec,
        lf.frame_size[0],
        lf.frame_size[1],
        tw,
        th,
        len(lf.keypoints),
        len(thumb),
    )
    return header + thumb + keypoints_to_bytes(lf.keypoints)


@dataclass(frozen=True)
class _RecordHeader:
    codec: ThumbCodec
    frame_size: tuple[int, int]
    thumb_shape: tuple[int, int, int]
    n_keypoints: int
    thumb_bytes: int


def _record_header(data: bytes | memoryview) -> _RecordHeader:
    """A LocalFeatures record's header, checked."""
    magic, version, codec, fw, fh, tw, th, n, n_thumb = _LF_HEADER.unpack_from(data, 0)
    if magic != _LF_MAGIC or version != _LF_VERSION:
        raise ValueError(f"not a local-features record v{_LF_VERSION}: {magic!r} v{version}")
    try:
        thumb_codec = ThumbCodec(codec)
    except ValueError as exc:
        raise ValueError(f"unknown thumbnail codec {codec} in local-features record") from exc
    return _RecordHeader(thumb_codec, (fw, fh), (th, tw, _THUMB_CHANNELS), n, n_thumb)


def _thumb_of_record(data: bytes | memoryview, head: _RecordHeader) -> np.ndarray:
    """The record's thumbnail: a read-only view of the bytes (RAW) or a decoded PNG."""
    buf = np.frombuffer(data, dtype=np.uint8, count=head.thumb_bytes, offset=_LF_HEADER.size)
    if head.codec is ThumbCodec.RAW:
        if buf.size != int(np.prod(head.thumb_shape)):
            raise ValueError("raw thumbnail of the wrong size in local-features record")
        return buf.reshape(head.thumb_shape)
    thumb = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if thumb is None or thumb.shape != head.thumb_shape:
        raise ValueError("corrupt thumbnail in local-features record")
    return np.asarray(thumb, np.uint8)


def _keypoints_of_record(data: bytes | memoryview, head: _RecordHeader) -> tuple[Keypoints, int]:
    """The record's keypoints (after the thumbnail) and the offset where the record ends."""
    off = _LF_HEADER.size + head.thumb_bytes
    kp, used = keypoints_from_bytes(memoryview(data)[off:], head.n_keypoints)
    return kp, off + used


def local_features_from_bytes(data: bytes | memoryview) -> tuple[LocalFeatures, int]:
    """Parse a LocalFeatures record; returns it and the number of bytes consumed."""
    head = _record_header(data)
    kp, end = _keypoints_of_record(data, head)
    return LocalFeatures(kp, head.frame_size, _thumb_of_record(data, head)), end


def record_keypoints(data: bytes | memoryview) -> Keypoints:
    """The keypoints of a LocalFeatures record without reading its thumbnail: geometry needs
    only the keypoints, and most shortlisted candidates fail geometry."""
    kp, _ = _keypoints_of_record(data, _record_header(data))
    return kp


def record_thumb(data: bytes | memoryview) -> np.ndarray:
    """The thumbnail of a LocalFeatures record alone (the quick pixel check needs nothing else)."""
    return _thumb_of_record(data, _record_header(data))


# ----------------------------------------------------------------------------- store
class FeatureStore(Protocol):
    """Where stored images' local features live; read only for shortlisted candidates."""

    def put(self, key: int, data: bytes) -> None: ...
    def get(self, key: int) -> bytes: ...
    def delete(self, key: int) -> None: ...
    def nbytes(self) -> int: ...


class MemoryFeatureStore:
    """Default FeatureStore: a dict of serialised records."""

    def __init__(self) -> None:
        self._data: dict[int, bytes] = {}

    def put(self, key: int, data: bytes) -> None:
        self._data[key] = data

    def get(self, key: int) -> bytes:
        return self._data[key]

    def delete(self, key: int) -> None:
        self._data.pop(key, None)

    def nbytes(self) -> int:
        return sum(len(v) for v in self._data.values())
