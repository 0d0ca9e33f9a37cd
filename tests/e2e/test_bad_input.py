"""Hostile input through the real pipeline: each bad upload lands on the dead-letter topic with
its reason, the valid oddities (GIF, 16-bit, alpha, CMYK, EXIF) become posts, and the stream
goes on."""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest

from infra.settings import Settings
from producers.publisher import UploadPublisher
from schemas.envelope import MAGIC
from schemas.events import UploadEvent
from sinks.dead_letters_view import read_dead_letters
from tests.e2e.waiting import Row, query, wait_for
from tests.imagegen import (
    artwork,
    cmyk_jpeg,
    encode,
    jpeg,
    png_chunk,
    png_from_chunks,
    png_ihdr,
    with_exif_orientation,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _upload(upload_id: str, image: bytes) -> bytes:
    return UploadEvent(
        upload_id=upload_id, author="mallory", title=upload_id, uploaded_at="2026-11-25",
        image=image,
    ).to_record()


def _frame(header: bytes) -> bytes:
    return struct.pack(">3sBI", MAGIC, 1, len(header)) + header


def _broken_png() -> bytes:
    data = bytearray(encode(artwork(), ".png"))
    data[40] ^= 0xFF  # inside IDAT: its CRC no longer matches
    return bytes(data)


def _bad_inputs(cap: int) -> dict[str, tuple[bytes, str]]:
    """upload id → (record, expected dead-letter reason)."""
    picture = artwork()
    full = jpeg(picture)
    noise = np.random.default_rng(3).integers(0, 256, cap // 3 + 64, dtype=np.uint8)
    return {
        "bad-empty": (_upload("bad-empty", b""), "empty"),
        "bad-random": (_upload("bad-random", np.random.default_rng(1).bytes(4096)),
                       "unknown-format"),
        "bad-text": (_upload("bad-text", b"hello, this is not an image\n" * 20), "unknown-format"),
        "bad-truncated-jpeg": (_upload("bad-truncated-jpeg", full[: len(full) // 2]), "truncated"),
        "bad-broken-png": (_upload("bad-broken-png", _broken_png()), "corrupt"),
        "bad-bomb": (
            _upload("bad-bomb", png_from_chunks(png_ihdr(30000, 30000), png_chunk(b"IEND", b""))),
            "decompression-bomb",
        ),
        "bad-too-large": (_upload("bad-too-large", b"BM" + bytes(noise) * 3), "too-large"),
        "bad-one-pixel": (_upload("bad-one-pixel", encode(picture[:1, :1], ".png")), "too-small"),
        "bad-svg": (_upload("bad-svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'),
                    "unsupported-format"),
        "bad-pdf": (_upload("bad-pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
                    "unsupported-format"),
    }


def _malformed() -> list[tuple[bytes, str]]:
    """Records with no usable upload id: matched by reason and order."""
    missing = {"schema": "picnix.UploadEvent", "version": 1, "author": "a", "title": "t",
               "uploaded_at": "now"}
    unknown = {**missing, "upload_id": "x", "version": 7}
    # published by another producer than ours (which refuses it): Postgres can't store a NUL
    nul_title = {**missing, "upload_id": "nul-title", "title": "cat\u0000"}
    return [
        (b'{"upload_id": "json-but-not-an-event"}', "malformed"),
        (_frame(b"{this is not json"), "malformed-json"),
        (_frame(json.dumps(missing).encode()), "missing-field"),
        (_frame(json.dumps(unknown).encode()), "unknown-version"),
        (_frame(json.dumps(nul_title).encode()), "invalid-text"),
    ]


def _valid_oddities() -> dict[str, bytes]:
    picture = artwork(240, 320)
    upright = jpeg(picture)
    rotated_pixels = cv2.rotate(picture, cv2.ROTATE_90_COUNTERCLOCKWISE)
    animation = cv2.Animation()
    animation.frames = [picture, 255 - picture]
    animation.durations = [100, 100]
    ok, gif = cv2.imencodeanimation(".gif", animation)
    assert ok
    rgba = np.dstack([picture, np.full(picture.shape[:2], 200, np.uint8)])
    return {
        "odd-upright": upright,
        # stored rotated, tagged "rotate 90° clockwise to view": the same picture as upright
        "odd-exif-rotated": with_exif_orientation(jpeg(rotated_pixels), 6),
        "odd-gif": gif.tobytes(),
        "odd-16bit": encode(picture.astype(np.uint16) * 257, ".png"),
        "odd-alpha": encode(rgba, ".png"),
        "odd-cmyk": cmyk_jpeg(np.random.default_rng(5).integers(0, 256, (64, 96, 3), np.uint8)),
    }


def _prometheus_value(settings: Settings, expr: str) -> float:
    url = f"{settings.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return sum(float(r["value"][1]) for r in result)


def test_bad_input_is_dead_lettered_with_its_reason_and_the_stream_goes_on(
    pipeline: Settings,
) -> None:
    settings = pipeline
    bad = _bad_inputs(settings.max_image_bytes)
    malformed = _malformed()
    oddities = _valid_oddities()

    async def publish() -> None:
        async with UploadPublisher(settings) as publisher:
            for upload_id, (record, _) in bad.items():
                await publisher.publish_raw(record, key=upload_id.encode())
            for record, _ in malformed:
                await publisher.publish_raw(record, key=b"malformed")
            for upload_id, image in oddities.items():
                await publisher.publish_raw(_upload(upload_id, image), key=upload_id.encode())

    asyncio.run(publish())

    def oddity_posts() -> list[Row] | None:
        rows = query(settings, "SELECT post_id, image_id, decision FROM posts"
                               " WHERE post_id LIKE 'odd-%%'")
        return rows if len(rows) == len(oddities) else None

    posts = wait_for("every valid oddity to become a post", oddity_posts)
    by_id = {post_id: (image_id, decision) for post_id, image_id, decision in posts}
    # EXIF orientation is applied: the rotated file shows the same stored image as the upright
    # one (uploads travel on several partitions, so either may have come first)
    assert by_id["odd-exif-rotated"][0] == by_id["odd-upright"][0]
    assert "duplicate-reference" in (by_id["odd-exif-rotated"][1], by_id["odd-upright"][1])

    def dead_letters() -> dict[str, str] | None:
        found = {e.upload_id: e.reason for e in read_dead_letters(settings) if e.upload_id}
        return found if set(bad) <= set(found) else None

    reasons = wait_for("every bad upload on the dead-letter topic", dead_letters)
    assert {k: reasons[k] for k in bad} == {k: reason for k, (_, reason) in bad.items()}
    anonymous = [e.reason for e in read_dead_letters(settings) if not e.upload_id]
    assert anonymous == [reason for _, reason in malformed]
    for event in read_dead_letters(settings):
        assert event.detail and event.stage == "extract"
        if event.upload_id in bad:
            assert event.original == bad[event.upload_id][0], "the original event is kept whole"
    # nothing bad became a post
    assert not query(settings, "SELECT 1 FROM posts WHERE post_id LIKE 'bad-%%'")
    # the real Prometheus scraped the worker's dead-letter counter
    total = len(bad) + len(malformed)
    wait_for(
        "Prometheus to scrape picnix_dlq_total",
        lambda: _prometheus_value(settings, 'sum(picnix_dlq_total{job="picnix-worker"})') >= total,
        timeout=60,
    )
