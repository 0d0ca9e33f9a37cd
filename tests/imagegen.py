"""Image inputs for tests, generated from OpenCV, numpy, struct and zlib: no binary fixtures.

Inputs OpenCV cannot write (a CMYK JPEG, EXIF orientation, a broken chunk, lying headers) are
assembled byte by byte from OpenCV-encoded parts. Shared by the decoder's unit tests and the
pipeline's bad-input tests.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import cv2
import numpy as np


def artwork(height: int = 120, width: int = 160) -> np.ndarray:
    """A smooth, asymmetric BGR picture: JPEG round trips stay close and rotations are visible."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (255 * x / max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (255 * y / max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = 128
    cv2.circle(img, (width // 4, height // 4), max(min(height, width) // 8, 1), (0, 0, 255), -1)
    return img


def distinct_png(seed: int) -> bytes:
    """A PNG of its own per seed (random 16x16 colours enlarged smoothly to 256x256): pictures of
    two seeds are different images to the engine, so each upload is stored, not referenced."""
    small = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return encode(cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC), ".png")


def encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def jpeg(img: np.ndarray, quality: int = 95) -> bytes:
    return encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + ctype
        + payload
        + struct.pack(">I", zlib.crc32(ctype + payload))
    )


def png_from_chunks(*chunks: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_ihdr(width: int, height: int, depth: int = 8, color: int = 2) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))


def png_chunks(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk of a valid PNG."""
    pos = 8
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        yield pos, ctype, length
        pos += 12 + length


def exif_tiff(orientation: int) -> bytes:
    """A minimal big-endian EXIF TIFF structure holding only the Orientation tag."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    return (
        b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    )


def with_exif_orientation(jpg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment right after SOI, as cameras write it."""
    payload = b"Exif\x00\x00" + exif_tiff(orientation)
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpg[2:]


def with_png_exif(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk after IHDR (PNG 1.5 extension; EXIF without the 'Exif' prefix)."""
    ihdr_end = 8 + 25
    return png[:ihdr_end] + png_chunk(b"eXIf", exif_tiff(orientation)) + png[ihdr_end:]


def jpeg_segments(jpg: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Header segments up to and including SOS, and the entropy-coded scan that follows."""
    pos, segments = 2, []
    while True:
        marker = jpg[pos + 1]
        (length,) = struct.unpack_from(">H", jpg, pos + 2)
        segments.append((marker, jpg[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            return segments, jpg[pos : jpg.rindex(b"\xff\xd9")]


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def cmyk_jpeg(bgr: np.ndarray) -> bytes:
    """An Adobe CMYK JPEG (what Photoshop writes for print), built from OpenCV grayscale JPEGs.

    libjpeg (and so OpenCV) cannot *write* CMYK JPEGs. But a baseline JPEG may carry each
    component in its own non-interleaved scan, whose entropy-coded data is exactly the scan of a
    one-component (grayscale) JPEG of that plane. So each of C, M, Y, K is encoded as grayscale
    and the four scans are stitched under a 4-component frame header, each with its own
    quantisation table and with its Huffman tables redefined before its scan. An Adobe APP14
    segment with transform 0 marks the components as CMYK, stored inverted as Adobe does.
    """
    f = bgr.astype(np.float64) / 255.0
    k = 1.0 - f.max(axis=2)
    den = np.where(k < 1.0, 1.0 - k, 1.0)
    c, m, y = ((1.0 - f[..., i] - k) / den for i in (2, 1, 0))
    planes = [np.round(255 * (1.0 - p)).astype(np.uint8) for p in (c, m, y, k)]
    height, width = bgr.shape[:2]
    out = b"\xff\xd8" + segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    scans = b""
    for index, plane in enumerate(planes):
        segments, scan = jpeg_segments(jpeg(plane, 100))
        (dqt,) = (p for mk, p in segments if mk == 0xDB)
        out += segment(0xDB, bytes([index]) + dqt[1:65])
        for mk, payload in segments:
            if mk == 0xC4:
                scans += segment(0xC4, payload)
        scans += segment(0xDA, bytes([1, index + 1, 0x00, 0, 63, 0])) + scan
    sof = struct.pack(">BHHB", 8, height, width, 4)
    sof += b"".join(struct.pack(">BBB", i + 1, 0x11, i) for i in range(4))
    return out + segment(0xC0, sof) + scans + b"\xff\xd9"


def scene(seed: int, height: int = 192, width: int = 192) -> np.ndarray:
    """A picture of its own per seed with edges and fine detail everywhere: a two-colour
    gradient under random anti-aliased disks, bars and strokes and a fine random texture, so an
    aligned comparison has layout and detail to correlate on every part of it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = rng.integers(30, 226, (2, 3)).astype(np.float32)
    ramp = (x / max(width - 1, 1) + y / max(height - 1, 1))[..., None] / 2
    img = (a * (1 - ramp) + b * ramp).astype(np.uint8)
    side = min(height, width)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(3)
        if kind == 0:
            r = int(rng.integers(side // 24, side // 8))
            cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            dx, dy = (int(v) for v in rng.integers(side // 16, side // 5, 2))
            cv2.rectangle(img, (cx, cy), (cx + dx, cy + dy), colour, -1, cv2.LINE_AA)
        else:
            ex, ey = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(img, (cx, cy), (ex, ey), colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    texture = rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
    out: np.ndarray = np.clip(
        img.astype(np.float32) + cv2.GaussianBlur(texture, (0, 0), 0.8)[..., None], 0, 255
    ).astype(np.uint8)
    return out
