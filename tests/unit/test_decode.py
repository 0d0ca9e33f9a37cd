"""The decoding front door: every bad input of issue 4 about image bytes, and the happy paths.

All inputs are generated here (OpenCV, numpy, struct, zlib); no binary fixture is committed.
Inputs OpenCV cannot write (a CMYK JPEG, EXIF orientation, a broken chunk, lying headers) are
assembled byte by byte from OpenCV-encoded parts.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import cv2
import numpy as np
import pytest

from stream_processors.engine import decode as decode_module
from stream_processors.engine.decode import (
    ALPHA_BACKGROUND_BGR,
    DecodedImage,
    DecodeLimits,
    ImageRejected,
    RejectReason,
    apply_orientation,
    decode_image,
)
from tests.imagegen import (
    artwork,
    cmyk_jpeg,
    encode,
    jpeg,
    jpeg_segments,
    png_chunk,
    png_chunks,
    png_from_chunks,
    png_ihdr,
    segment,
    with_exif_orientation,
    with_png_exif,
)


def reject(data: bytes, limits: DecodeLimits | None = None) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_image(data) if limits is None else decode_image(data, limits)
    return info.value


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- bad input


def test_zero_bytes() -> None:
    err = reject(b"")
    assert err.reason is RejectReason.EMPTY
    assert "zero bytes" in err.detail


def test_random_bytes() -> None:
    data = np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    err = reject(data)
    assert err.reason is RejectReason.UNKNOWN_FORMAT
    assert "no known image signature" in err.detail
    assert data[:4].hex(" ") in err.detail


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (b"name,title\nalice,sunset over the bay\n", "plain text"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
        ('{"caption": "caf\u00e9"}'.encode(), "JSON"),
    ],
)
def test_text_file(text: bytes, kind: str) -> None:
    err = reject(text)
    assert err.reason is RejectReason.UNKNOWN_FORMAT
    assert kind in err.detail
    assert "not an image" in err.detail


def test_truncated_jpeg() -> None:
    data = jpeg(artwork(400, 600))
    err = reject(data[: len(data) * 6 // 10])
    assert err.reason is RejectReason.TRUNCATED
    assert "EOI" in err.detail


def test_jpeg_cut_inside_headers() -> None:
    data = jpeg(artwork())
    err = reject(data[:100])
    assert err.reason is RejectReason.TRUNCATED
    assert "JPEG" in err.detail


def test_jpeg_with_trailing_data_after_eoi_is_accepted() -> None:
    """Some cameras and apps append data after EOI; the image itself is complete."""
    data = jpeg(artwork()) + b"TRAILER" * 10
    assert decode_image(data).format == "jpeg"


def test_png_with_broken_chunk_crc() -> None:
    data = bytearray(encode(artwork(), ".png"))
    offset, _ctype, length = next(c for c in png_chunks(bytes(data)) if c[1] == b"IDAT")
    data[offset + 8 + length // 2] ^= 0x55
    err = reject(bytes(data))
    assert err.reason is RejectReason.CORRUPT
    assert "'IDAT'" in err.detail and "CRC" in err.detail


def test_png_broken_ancillary_chunk_is_rejected_too() -> None:
    """libpng would silently drop it; a damaged file is reported, saying which chunk."""
    png = encode(artwork(), ".png")
    text = png_chunk(b"tEXt", b"Comment\x00hello")
    text = text[:-1] + bytes([text[-1] ^ 1])
    err = reject(png[:33] + text + png[33:])
    assert err.reason is RejectReason.CORRUPT
    assert "'tEXt'" in err.detail


def test_truncated_png() -> None:
    data = encode(artwork(), ".png")
    err = reject(data[: len(data) - 30])
    assert err.reason is RejectReason.TRUNCATED
    assert "PNG" in err.detail


def test_png_without_iend() -> None:
    data = encode(artwork(), ".png")
    err = reject(data[:-12])
    assert err.reason is RejectReason.TRUNCATED
    assert "IEND" in err.detail


def test_decompression_bomb_png_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100-byte PNG whose IHDR declares 30000x30000 (2.7 GB of RGB) never reaches the decoder."""

    def no_decode(*_args: object) -> None:
        raise AssertionError("imdecode must not be called for a decompression bomb")

    monkeypatch.setattr(decode_module.cv2, "imdecode", no_decode)
    row = b"\x00" + b"\x00" * 3 * 30000
    idat = zlib.compress(row * 2, 9)  # a plausible start of the stream, nowhere near complete
    data = png_from_chunks(
        png_ihdr(30000, 30000), png_chunk(b"IDAT", idat), png_chunk(b"IEND", b"")
    )
    assert len(data) < 1000
    err = reject(data)
    assert err.reason is RejectReason.DECOMPRESSION_BOMB
    assert "30000x30000" in err.detail and "900.0 MPixel" in err.detail


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    pos = data.index(b"\xff\xc0")
    return data[: pos + 5] + struct.pack(">HH", height, width) + data[pos + 9 :]


def _bomb_inputs() -> list[tuple[str, bytes]]:
    small = artwork(16, 16)
    gif = bytearray(encode(small, ".gif"))
    gif[6:10] = struct.pack("<HH", 30000, 30000)
    bmp = bytearray(encode(small, ".bmp"))
    bmp[18:26] = struct.pack("<ii", 30000, -30000)
    webp = b"VP8X" + struct.pack("<I", 10) + bytes([0, 0, 0, 0])
    webp += (29999).to_bytes(3, "little") * 2
    webp = b"RIFF" + struct.pack("<I", 4 + len(webp)) + b"WEBP" + webp
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 256, 4, 1, 30000) + struct.pack("<HHII", 257, 4, 1, 30000)
    tiff += struct.pack("<I", 0)
    return [
        ("jpeg", _patch_jpeg_size(jpeg(small), 30000, 30000)),
        ("gif", bytes(gif)),
        ("bmp", bytes(bmp)),
        ("webp", webp),
        ("tiff", tiff),
    ]


@pytest.mark.parametrize(
    ("fmt", "data"), _bomb_inputs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_decompression_bomb_other_formats(
    fmt: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", None)  # any call would fail loudly
    err = reject(data)
    assert err.reason is RejectReason.DECOMPRESSION_BOMB, (fmt, err)
    assert "30000x30000" in err.detail


def test_image_over_the_byte_cap() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1900, 1900, 3), dtype=np.uint8)
    data = encode(noise, ".bmp")
    assert len(data) > 10 * 1024 * 1024
    err = reject(data)
    assert err.reason is RejectReason.TOO_LARGE
    assert str(len(data)) in err.detail and str(10 * 1024 * 1024) in err.detail


def test_animated_gif_uses_first_frame() -> None:
    red = np.zeros((32, 48, 3), np.uint8)
    red[:] = (0, 0, 255)
    blue = np.zeros_like(red)
    blue[:] = (255, 0, 0)
    animation = cv2.Animation()
    animation.frames = [red, blue]
    animation.durations = [100, 100]
    ok, buf = cv2.imencodeanimation(".gif", animation)
    assert ok
    data = buf.tobytes()
    assert data.count(b"\x2c\x00\x00\x00\x00") >= 2, "two image descriptors expected"
    image = decode_image(data)
    assert image.format == "gif"
    assert (image.width, image.height) == (48, 32)
    assert mean_diff(image.pixels, red) < 8


def test_truncated_gif() -> None:
    data = encode(artwork(), ".gif")
    err = reject(data[: len(data) // 2])
    assert err.reason is RejectReason.TRUNCATED
    assert "GIF" in err.detail


def test_gif_cut_in_its_second_frame_is_truncated() -> None:
    """OpenCV's GIF reader fails on a damaged later frame, so the cut is reported as such."""
    animation = cv2.Animation()
    animation.frames = [artwork(), artwork()[::-1].copy()]
    animation.durations = [100, 100]
    data = cv2.imencodeanimation(".gif", animation)[1].tobytes()
    second = data.rindex(b"\x2c\x00\x00\x00\x00")
    err = reject(data[: second + 40])
    assert err.reason is RejectReason.TRUNCATED
    assert "1 complete frame(s)" in err.detail


def test_truncated_tiff() -> None:
    data = encode(artwork(), ".tiff")
    for cut in (len(data) // 2, len(data) - 1):
        err = reject(data[:cut])
        assert err.reason is RejectReason.TRUNCATED and "TIFF" in err.detail


def test_16_bit_png_is_scaled_not_truncated() -> None:
    img16 = (artwork().astype(np.uint16) * 257 + 100).astype(np.uint16)  # low byte is not 0
    data = encode(img16, ".png")
    assert data[24] == 16  # IHDR bit depth
    image = decode_image(data)
    assert image.pixels.dtype == np.uint8
    expected = np.round(img16 / 257.0).astype(np.uint8)
    assert np.abs(image.pixels.astype(int) - expected).max() <= 1


def test_16_bit_grayscale_png() -> None:
    gray = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image = decode_image(encode(gray, ".png"))
    assert image.pixels.shape == (64, 64, 3)
    assert image.pixels[-1, -1].tolist() == [255, 255, 255]
    assert image.pixels[0, 0].tolist() == [0, 0, 0]


def test_png_with_alpha_composites_onto_white() -> None:
    art = artwork()
    bgra = np.zeros((*art.shape[:2], 4), np.uint8)  # transparent black background
    bgra[30:90, 40:120, :3] = art[30:90, 40:120]
    bgra[30:90, 40:120, 3] = 255
    bgra[0:10, 0:10] = (0, 0, 255, 128)  # half-transparent red
    image = decode_image(encode(bgra, ".png"))
    assert image.pixels.shape == (*art.shape[:2], 3)
    assert image.pixels[100, 10].tolist() == list(ALPHA_BACKGROUND_BGR)
    assert np.array_equal(image.pixels[30:90, 40:120], art[30:90, 40:120])
    assert image.pixels[5, 5].tolist() == [127, 127, 255]


def test_alpha_artwork_matches_its_flattened_jpeg_copy() -> None:
    """The same artwork with and without alpha must decode close: that is why we pick white."""
    art = artwork()
    bgra = np.dstack([art, np.zeros(art.shape[:2], np.uint8)])
    bgra[20:100, 20:140, 3] = 255
    flattened = np.full_like(art, 255)
    flattened[20:100, 20:140] = art[20:100, 20:140]
    with_alpha = decode_image(encode(bgra, ".png")).pixels
    copy = decode_image(jpeg(flattened)).pixels
    assert mean_diff(with_alpha, copy) < 2.0


def test_gray_alpha_and_palette_transparency() -> None:
    rows = b"".join(b"\x00" + bytes([100, 0, 100, 255] * 4) for _ in range(8))  # gray+alpha
    ga = png_from_chunks(
        png_ihdr(8, 8, 8, 4), png_chunk(b"IDAT", zlib.compress(rows)), png_chunk(b"IEND", b"")
    )
    pixels = decode_image(ga).pixels
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 1].tolist() == [100, 100, 100]
    rows = b"".join(b"\x00" + bytes([0, 1] * 4) for _ in range(8))  # palette, index 0 transparent
    pal = png_from_chunks(
        png_ihdr(8, 8, 8, 3),
        png_chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0])),
        png_chunk(b"tRNS", b"\x00"),
        png_chunk(b"IDAT", zlib.compress(rows)),
        png_chunk(b"IEND", b""),
    )
    pixels = decode_image(pal).pixels
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 1].tolist() == [0, 255, 0]


def test_cmyk_jpeg_is_converted_to_bgr() -> None:
    art = artwork()
    data = cmyk_jpeg(art)
    sof = data[data.index(b"\xff\xc0") :]
    assert sof[9] == 4, "four components"
    image = decode_image(data)
    assert image.format == "jpeg"
    assert image.pixels.shape == art.shape
    assert mean_diff(image.pixels, art) < 2.0


def test_exif_rotated_jpeg_equals_upright() -> None:
    upright = artwork(120, 160)
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # what the sensor wrote
    stored_jpeg = jpeg(stored)
    image = decode_image(with_exif_orientation(stored_jpeg, 6))
    assert image.pixels.shape == upright.shape
    assert (image.width, image.height) == (160, 120)
    # Exactly the stored pixels turned upright, and close to an upright JPEG of the same picture.
    turned = cv2.rotate(decode_image(stored_jpeg).pixels, cv2.ROTATE_90_CLOCKWISE)
    assert np.array_equal(image.pixels, turned)
    assert mean_diff(image.pixels, decode_image(jpeg(upright)).pixels) < 2.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_agree_across_formats(orientation: int) -> None:
    """Our EXIF transform table (PNG, WebP, TIFF) matches what OpenCV does for JPEG."""
    art = artwork(40, 64)
    plain_jpeg = jpeg(art)
    from_jpeg = decode_image(with_exif_orientation(plain_jpeg, orientation)).pixels
    assert np.array_equal(
        from_jpeg, apply_orientation(decode_image(plain_jpeg).pixels, orientation)
    )
    from_png = decode_image(with_png_exif(encode(art, ".png"), orientation)).pixels
    assert np.array_equal(from_png, apply_orientation(art, orientation))


def test_one_by_one_image_is_too_small() -> None:
    err = reject(encode(np.zeros((1, 1, 3), np.uint8), ".png"))
    assert err.reason is RejectReason.TOO_SMALL
    assert "1x1" in err.detail and "8 px" in err.detail


def test_thin_image_is_too_small_and_limit_is_tunable() -> None:
    data = jpeg(artwork(4, 200))
    assert reject(data).reason is RejectReason.TOO_SMALL
    assert decode_image(data, DecodeLimits(min_side=1)).pixels.shape == (4, 200, 3)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10"/></svg>',
            "SVG",
        ),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"8BPS\x00\x01" + bytes(20), "Photoshop"),
        (b"P6\n2 2\n255\n" + bytes(12), "Netpbm"),
    ],
)
def test_recognised_but_unsupported_formats(data: bytes, what: str) -> None:
    err = reject(data)
    assert err.reason is RejectReason.UNSUPPORTED_FORMAT
    assert what in err.detail and "not supported" in err.detail
    assert "JPEG, PNG, WebP" in err.detail


def test_avif_is_unsupported_even_though_opencv_could_read_it() -> None:
    """We only accept formats whose headers we check for bombs before decoding."""
    err = reject(encode(artwork(), ".avif"))
    assert err.reason is RejectReason.UNSUPPORTED_FORMAT
    assert "AVIF" in err.detail


def test_jpeg_without_frame_header_is_corrupt() -> None:
    segments, scan = jpeg_segments(jpeg(artwork()))
    data = (
        b"\xff\xd8" + b"".join(segment(m, p) for m, p in segments if m != 0xC0) + scan + b"\xff\xd9"
    )
    err = reject(data)
    assert err.reason is RejectReason.CORRUPT
    assert "SOF" in err.detail


def test_truncated_webp_and_bmp() -> None:
    webp = encode(artwork(), ".webp")
    err = reject(webp[: len(webp) // 2])
    assert err.reason is RejectReason.TRUNCATED and "RIFF" in err.detail
    bmp = encode(artwork(), ".bmp")
    err = reject(bmp[:-100])
    assert err.reason is RejectReason.TRUNCATED and "BMP" in err.detail


def test_format_comes_from_magic_bytes() -> None:
    """There is no file name to trust: a PNG is a PNG whatever it was called."""
    assert decode_image(encode(artwork(), ".png")).format == "png"


# --------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize(
    ("ext", "fmt", "tolerance"),
    [
        (".jpg", "jpeg", 3.0),
        (".png", "png", 0.0),
        (".webp", "webp", 3.0),
        (".bmp", "bmp", 0.0),
        (".tiff", "tiff", 0.0),
    ],
)
def test_happy_paths(ext: str, fmt: str, tolerance: float) -> None:
    art = artwork()
    data = encode(art, ext)
    image = decode_image(data)
    assert isinstance(image, DecodedImage)
    assert image.format == fmt
    assert image.pixels.shape == (120, 160, 3) and image.pixels.dtype == np.uint8
    assert (image.width, image.height, image.scale) == (160, 120, 1.0)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert mean_diff(image.pixels, art) <= tolerance


def test_lossless_webp_and_grayscale_jpeg() -> None:
    art = artwork()
    lossless = decode_image(encode(art, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]))
    assert np.array_equal(lossless.pixels, art)
    gray = decode_image(jpeg(cv2.cvtColor(art, cv2.COLOR_BGR2GRAY)))
    assert gray.pixels.shape == (120, 160, 3)


def test_reduced_decode_of_a_large_jpeg_keeps_aspect_and_declared_size() -> None:
    big = cv2.resize(artwork(), (5000, 3000), interpolation=cv2.INTER_LINEAR)
    image = decode_image(jpeg(big, 90))
    assert (image.width, image.height) == (5000, 3000)
    assert image.pixels.shape == (750, 1250, 3)  # 1/4: long side in [1024, 2048)
    assert image.scale == pytest.approx(0.25)
    small = cv2.resize(big, (1250, 750), interpolation=cv2.INTER_AREA)
    assert mean_diff(image.pixels, small) < 3.0


@pytest.mark.parametrize(
    ("long_side", "factor"), [(2047, 1), (2048, 2), (4095, 2), (4096, 4), (8000, 4), (8192, 8)]
)
def test_reduction_thresholds(long_side: int, factor: int) -> None:
    data = jpeg(cv2.resize(artwork(), (long_side, 100)), 80)
    image = decode_image(data)
    assert image.pixels.shape[1] == -(-long_side // factor)
    assert image.width == long_side


def test_reduced_exif_rotated_jpeg_reports_upright_size() -> None:
    stored = cv2.resize(artwork(), (4400, 2400))
    image = decode_image(with_exif_orientation(jpeg(stored, 85), 8))
    assert (image.width, image.height) == (2400, 4400)
    assert image.pixels.shape == (1100, 600, 3)
    assert image.scale == pytest.approx(0.25)


def test_large_png_is_reduced_like_a_jpeg() -> None:
    """Same picture, same output size, whatever the upload format."""
    big = cv2.resize(artwork(), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    from_png = decode_image(encode(big, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]))
    from_jpeg = decode_image(jpeg(big))
    assert from_png.pixels.shape == from_jpeg.pixels.shape == (1000, 1500, 3)
    assert (from_png.width, from_png.height, from_png.scale) == (3000, 2000, 0.5)
    assert mean_diff(from_png.pixels, from_jpeg.pixels) < 3.0


def test_reason_codes_are_stable_strings() -> None:
    """The codes travel on the dead-letter topic and label a metric: they must not drift."""
    assert [r.value for r in RejectReason] == [
        "empty",
        "too-large",
        "unknown-format",
        "unsupported-format",
        "truncated",
        "corrupt",
        "decompression-bomb",
        "too-small",
    ]


def test_alpha_composite_rounds_as_the_exact_formula() -> None:
    """The integer composite gives round((c * a + bg * (255 - a)) / 255) for every c and a."""
    from stream_processors.engine.decode import ALPHA_BACKGROUND_BGR, _composite

    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    color = np.repeat(c.astype(np.uint8)[..., None], 3, axis=2)
    alpha = a.astype(np.uint8)
    got = _composite(color, alpha)
    bg = np.array(ALPHA_BACKGROUND_BGR[:3], np.float64)
    want = np.floor((c[..., None] * a[..., None] + bg * (255 - a[..., None])) / 255 + 0.5)
    assert np.array_equal(got, want.astype(np.uint8))
