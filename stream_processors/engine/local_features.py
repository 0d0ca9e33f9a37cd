"""Local evidence: ORB keypoints of the trimmed frame, a grayscale thumbnail, and their store.

Why: global hashes cannot see through crops, rotations and heavy overlays; keypoints verified
geometrically can. ORB is patent-free, ships with OpenCV and costs a few ms at 480 px. The
keypoints of the mirrored frame are computed for queries only (ORB is not mirror-invariant), so a
mirrored-and-cropped copy is still found. Local features are large (~25 KiB), so they live in a
``feature_store.FeatureStore`` (on disk in the worker) read only for the few shortlisted
candidates of a decision.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

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


class LocalFeatures:
    """What verification needs of one image: keypoints, the frame size they live in, a thumbnail.

    ``frame_size`` is (width, height) of the trimmed image resized to FRAME_LONG_SIDE; the
    thumbnail is the same frame at THUMB_LONG_SIDE, so the two are related by a pure scale.

    Read-only. Features parsed by ``local_features_deferred`` decode their thumbnail from the
    record when it is first read, then keep it: re-applying a stored image to the index (a
    restarted worker, every stored record) reads only the keypoints, and decoding each
    thumbnail was a third of that cost.
    """

    __slots__ = ("_frame_size", "_keypoints", "_thumb", "_thumb_source")

    def __init__(
        self, keypoints: Keypoints, frame_size: tuple[int, int], thumb: np.ndarray
    ) -> None:
        self._keypoints = keypoints
        self._frame_size = frame_size
        self._thumb: np.ndarray | None = thumb
        self._thumb_source: tuple[bytes, _RecordHeader] | None = None

    @classmethod
    def _of_record(
        cls, keypoints: Keypoints, record: bytes, head: _RecordHeader
    ) -> LocalFeatures:
        """Features whose thumbnail is the record's, decoded when first read."""
        features = cls.__new__(cls)
        features._keypoints = keypoints
        features._frame_size = head.frame_size
        features._thumb = None
        features._thumb_source = (record, head)
        return features

    @property
    def keypoints(self) -> Keypoints:
        return self._keypoints

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._frame_size

    @property
    def thumb(self) -> np.ndarray:
        if self._thumb is None:
            assert self._thumb_source is not None
            self._thumb = _thumb_of_record(*self._thumb_source)
            self._thumb_source = None  # the record is no longer needed
        return self._thumb

    def thumb_scale(self) -> tuple[float, float]:
        """(sx, sy) mapping frame coordinates to thumbnail coordinates."""
        th, tw = self.thumb.shape[:2]
        return tw / self.frame_size[0], th / self.frame_size[1]


def empty_keypoints() -> Keypoints:
    return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def detect_orb(gray: np.ndarray) -> Keypoints:
    """ORB keypoints of a grayscale frame, strongest first; a frame with fewer than
    ORB_MIN_KEYPOINTS is detected again with a lower FAST threshold (see ORB_MIN_KEYPOINTS)."""
    _, kps, desc = _detect_best(gray)
    return _sorted_keypoints(kps, desc)


def detect_orb_views(gray: np.ndarray) -> tuple[Keypoints, Keypoints]:
    """The keypoints of a frame and of its mirror image (``detect_orb`` of each).

    The mirror's are the frame's keypoints reflected, with their descriptors computed on the
    mirrored frame: FAST, the Harris score and the intensity-centroid angle are symmetric under
    a reflection, so detecting on the mirrored frame finds exactly these (the same 500
    keypoints and descriptors on a dev photo) while description alone costs a third of it
    (2.3 vs 6.7 ms at 480 px), and a flat frame is not detected twice more."""
    orb, kps, desc = _detect_best(gray)
    upright = _sorted_keypoints(kps, desc)
    if not kps:
        return upright, empty_keypoints()
    mirrored_frame = np.ascontiguousarray(gray[:, ::-1])
    reflected = [_reflect(kp, gray.shape[1], orb.getScaleFactor()) for kp in kps]
    mkps, mdesc = orb.compute(mirrored_frame, reflected)
    return upright, _sorted_keypoints(list(mkps), mdesc)


def _reflect(kp: cv2.KeyPoint, width: int, scale_factor: float) -> cv2.KeyPoint:
    """``kp`` in the mirrored frame: x is reflected within its pyramid level (ORB detects on
    levels of round(width / scale) px and scales positions back), the angle becomes 180 - a."""
    scale = scale_factor**kp.octave
    level_width = round(width / scale)
    x = (level_width - 1 - kp.pt[0] / scale) * scale
    angle = (180.0 - kp.angle) % 360.0
    return cv2.KeyPoint(x, kp.pt[1], kp.size, angle, kp.response, kp.octave, kp.class_id)


def _detect_best(gray: np.ndarray) -> tuple[cv2.ORB, list[cv2.KeyPoint], np.ndarray | None]:
    """The detector used and its raw detection (see detect_orb)."""
    kps, desc = _orb.detectAndCompute(gray, None)
    if len(kps) >= ORB_MIN_KEYPOINTS:
        return _orb, list(kps), desc
    low_kps, low_desc = _orb_low.detectAndCompute(gray, None)
    if len(low_kps) > len(kps):
        return _orb_low, list(low_kps), low_desc
    return _orb, list(kps), desc


def _sorted_keypoints(kps: list[cv2.KeyPoint], desc: np.ndarray | None) -> Keypoints:
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
_LF_VERSION = 5  # 5: coordinates as uint16 fixed point, thumbnail as PNG or JPEG
# magic, version, thumbnail codec, frame w, h, thumb w, h, n keypoints, thumbnail bytes
_LF_HEADER = struct.Struct("<2sBBHHHHHI")
_THUMB_CHANNELS = 3
# Keypoint coordinates are stored in 1/COORD_SCALE px as uint16: 65535 / 128 = 512 px covers
# FRAME_LONG_SIDE, and 1/128 px is far below RANSAC's reprojection tolerance. 4 B a point where
# float32 pairs took 8; a keypoint is then 36 B, its 32-byte descriptor the incompressible rest.
COORD_SCALE = 128
_COORD_MAX = 65535 / COORD_SCALE


class ThumbCodec(IntEnum):
    """How a record holds its thumbnail; ``choose_codec`` picks one per thumbnail.

    Dev thumbnails on this box: a photo's PNG is ~24 KB (0.7 ms to decode), its JPEG at
    THUMB_JPEG_QUALITY with full-resolution colour ~11 KB (0.2 ms to encode or decode); lossless
    WebP ~13 KB but 59 ms to encode. Flat art and pixel art are the other way round: their PNG
    is small and exact, and exactness is what tells two CryptoPunks one trait apart. The
    thumbnail a method compares is always the decoded one (default_method.extract_signature),
    so an evaluation and the pipeline see the same pixels."""

    PNG = 0
    JPEG = 2


THUMB_JPEG_QUALITY = 95
# A thumbnail is kept lossless while its PNG is at most this many times its JPEG. On the dev
# set JPEG for every thumbnail cost 2 TP and added a false positive (two punks one trait apart
# passed the pixel check); PNG for every one keeps decisions as they were at ~2x the bytes.
THUMB_PNG_MAX_RATIO = 1.5
_JPEG_PARAMS = [
    cv2.IMWRITE_JPEG_QUALITY, THUMB_JPEG_QUALITY,
    # full-resolution colour: 4:2:0 smeared a one-pixel trait of pixel art (CryptoPunks one
    # trait apart) enough to pass the pixel check, dev false positives 2 -> 5
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
]


def quantize_points(points: np.ndarray) -> np.ndarray:
    """Coordinates as a record stores them (uint16 in 1/COORD_SCALE px), as float32 again."""
    fixed = np.rint(np.clip(points, 0.0, _COORD_MAX) * COORD_SCALE).astype(np.uint16)
    return (fixed.astype(np.float32) / COORD_SCALE).reshape(-1, 2)


def keypoints_to_bytes(kp: Keypoints) -> bytes:
    fixed = np.rint(np.clip(kp.points, 0.0, _COORD_MAX) * COORD_SCALE).astype("<u2")
    return fixed.tobytes() + np.ascontiguousarray(kp.descriptors, np.uint8).tobytes()


def keypoints_from_bytes(data: bytes | memoryview, n: int) -> tuple[Keypoints, int]:
    """Parse n keypoints from the start of data; returns them and the bytes consumed."""
    fixed = np.frombuffer(data, dtype="<u2", count=2 * n)
    pts = (fixed.astype(np.float32) / COORD_SCALE).reshape(n, 2)
    off = 4 * n
    desc = np.frombuffer(data, dtype=np.uint8, count=DESCRIPTOR_BYTES * n, offset=off)
    desc = desc.reshape(n, DESCRIPTOR_BYTES).copy()
    return Keypoints(pts, desc), off + DESCRIPTOR_BYTES * n


def encode_thumb(thumb: np.ndarray, codec: ThumbCodec) -> bytes:
    image = np.ascontiguousarray(thumb, np.uint8)
    if codec is ThumbCodec.JPEG:
        ok, buf = cv2.imencode(".jpg", image, _JPEG_PARAMS)
    else:
        ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"thumbnail {image.shape} could not be encoded as {codec.name}")
    return bytes(buf.tobytes())


def choose_codec(thumb: np.ndarray) -> tuple[ThumbCodec, bytes]:
    """PNG where it costs little more than JPEG (flat and pixel art), else JPEG (photos)."""
    png = encode_thumb(thumb, ThumbCodec.PNG)
    jpeg = encode_thumb(thumb, ThumbCodec.JPEG)
    if len(png) <= THUMB_PNG_MAX_RATIO * len(jpeg):
        return ThumbCodec.PNG, png
    return ThumbCodec.JPEG, jpeg


def local_features_to_bytes(lf: LocalFeatures, codec: ThumbCodec | None = None) -> bytes:
    """The record; ``codec`` None chooses one for the thumbnail (``choose_codec``)."""
    th, tw = lf.thumb.shape[:2]
    if codec is None:
        codec, thumb = choose_codec(lf.thumb)
    else:
        thumb = encode_thumb(lf.thumb, codec)
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
    """The record's thumbnail, decoded."""
    buf = np.frombuffer(data, dtype=np.uint8, count=head.thumb_bytes, offset=_LF_HEADER.size)
    thumb = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if thumb is None or thumb.shape != head.thumb_shape:
        raise ValueError(
            f"corrupt {head.codec.name} thumbnail in local-features record: "
            f"{None if thumb is None else thumb.shape}, header says {head.thumb_shape}"
        )
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


def local_features_deferred(data: bytes) -> tuple[LocalFeatures, int]:
    """``local_features_from_bytes`` whose thumbnail is decoded only when first read (see
    LocalFeatures): for a reader that may need only the keypoints. ``data`` is bytes, not a
    view, because the features keep it until then."""
    head = _record_header(data)
    kp, end = _keypoints_of_record(data, head)
    return LocalFeatures._of_record(kp, data, head), end


def record_length(data: bytes | memoryview) -> int:
    """Bytes of the LocalFeatures record at the start of data (its header says), unparsed."""
    head = _record_header(data)
    return _LF_HEADER.size + head.thumb_bytes + (4 + DESCRIPTOR_BYTES) * head.n_keypoints


def record_keypoints(data: bytes | memoryview) -> Keypoints:
    """The keypoints of a LocalFeatures record without reading its thumbnail: geometry needs
    only the keypoints, and most shortlisted candidates fail geometry."""
    kp, _ = _keypoints_of_record(data, _record_header(data))
    return kp


def record_thumb(data: bytes | memoryview) -> np.ndarray:
    """The thumbnail of a LocalFeatures record alone (the quick pixel check needs nothing else)."""
    return _thumb_of_record(data, _record_header(data))
