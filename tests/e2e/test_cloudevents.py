"""Platforms that publish to Kafka themselves: uploads in the CloudEvents binary binding, sent
with Debian's ``kcat`` (a C client knowing nothing of PicNix), become posts; broken ones reach
the dead-letter topic with their reason and their headers; a copy by another author raises an
alert on the alerts topic in the same binding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from infra.kafka_clients import manual_consumer, topic_partitions
from infra.settings import Settings
from schemas.events import DeadLetterEvent
from sinks.alert_producer import alert_source
from sinks.blob_keys import blob_key
from sinks.dead_letters_view import read_dead_letters
from sinks.object_store import ObjectStore
from tests.e2e.waiting import query, wait_for
from tests.imagegen import distinct_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
KCAT_INSTALL_TIMEOUT_S = 300
KCAT_TIMEOUT_S = 30
# kcat -K: splits "key:value" lines: the only way it sends an empty value (it skips an empty
# file and an empty line)
KEY_DELIMITER = ":"


@pytest.fixture(scope="module")
def kcat() -> str:
    """Debian's kcat, installed when missing (the tests run as root on Debian)."""
    found = shutil.which("kcat")
    if found:
        return found
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "kcat"], check=True, capture_output=True, text=True,
            timeout=KCAT_INSTALL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        output = getattr(exc, "stderr", None) or ""
        raise RuntimeError(
            f"kcat is not installed and `apt-get install -y kcat` failed ({exc!r}): "
            f"{output[-2000:]}"
        ) from exc
    found = shutil.which("kcat")
    if not found:
        raise RuntimeError("`apt-get install -y kcat` succeeded but no kcat is on PATH")
    return found


def _attributes(post_id: str, author: str, **overrides: str | None) -> dict[str, str]:
    attrs: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_type": "picnix.upload.v1",
        "ce_id": post_id,
        "ce_source": "https://platform.example",
        "ce_time": "2026-12-03T12:00:00Z",
        "ce_author": author,
        "ce_title": f"{post_id} by {author}",
        "ce_description": "sent with kcat",
        "content-type": "image/png",
    }
    attrs.update(overrides)
    return {k: v for k, v in attrs.items() if v is not None}


def _header_args(headers: Mapping[str, str]) -> list[str]:
    return [arg for name, value in headers.items() for arg in ("-H", f"{name}={value}")]


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    done = subprocess.run(command, input=stdin, capture_output=True, timeout=KCAT_TIMEOUT_S)
    assert done.returncode == 0, f"{command[:3]} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout


def kcat_publish_file(
    kcat: str, settings: Settings, key: str, headers: Mapping[str, str], path: Path
) -> None:
    """One file, one record: as the README's line does."""
    _run([
        kcat, "-P", "-b", settings.kafka_bootstrap, "-t", settings.topic_uploads, "-k", key,
        "-X", f"message.max.bytes={settings.max_record_bytes}", *_header_args(headers),
        str(path),
    ])


def kcat_publish_empty(kcat: str, settings: Settings, key: str, headers: Mapping[str, str]) -> None:
    _run(
        [kcat, "-P", "-b", settings.kafka_bootstrap, "-t", settings.topic_uploads,
         "-K", KEY_DELIMITER, *_header_args(headers)],
        stdin=f"{key}{KEY_DELIMITER}\n".encode(),
    )


def kcat_read(kcat: str, settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` as kcat's JSON envelope, headers as a name → value dict."""
    out = _run([
        kcat, "-C", "-b", settings.kafka_bootstrap, "-t", topic, "-o", "beginning", "-e", "-J",
        "-q",
    ])
    records = []
    for line in out.decode().splitlines():
        record = json.loads(line)
        flat = record.get("headers") or []
        record["headers"] = dict(zip(flat[::2], flat[1::2], strict=True))
        records.append(record)
    return records


def _decided(settings: Settings, post_id: str) -> tuple[Any, ...] | None:
    rows = query(
        settings,
        "SELECT p.author, p.title, p.description, p.decision, p.uploaded_at, i.sha256"
        " FROM posts p JOIN images i USING (image_id) WHERE p.post_id = %s",
        (post_id,),
    )
    return rows[0] if rows else None


def test_a_cloudevent_sent_with_kcat_is_decided_and_its_image_stored(
    pipeline: Settings, kcat: str, tmp_path: Path
) -> None:
    settings = pipeline
    image = distinct_png(1301)
    path = tmp_path / "sunset.png"
    path.write_bytes(image)
    kcat_publish_file(kcat, settings, "ce-sunset", _attributes("ce-sunset", "alice"), path)

    row = wait_for("the CloudEvents upload to be decided", lambda: _decided(settings, "ce-sunset"))
    author, title, description, decision, uploaded_at, sha256 = row
    assert (author, title, description) == ("alice", "ce-sunset by alice", "sent with kcat")
    assert decision == "new-cluster" and uploaded_at == "2026-12-03T12:00:00Z"
    assert sha256 == hashlib.sha256(image).hexdigest(), "the value is the image, untouched"
    # the blob sink read the upload back by position, in its binding, and stored its bytes
    store = ObjectStore(settings)
    wait_for("the image in the bucket", lambda: store.exists(blob_key(sha256)))


def test_broken_cloudevents_are_dead_lettered_with_their_reason_and_headers(
    pipeline: Settings, kcat: str, tmp_path: Path
) -> None:
    settings = pipeline
    path = tmp_path / "picture.png"
    path.write_bytes(distinct_png(1302))
    no_id = _attributes("ce-no-id", "mallory", ce_id=None)
    other_type = _attributes("ce-order", "mallory", ce_type="com.example.order.v1")
    structured = _attributes(
        "ce-structured", "mallory", **{"content-type": "application/cloudevents+json"}
    )
    kcat_publish_file(kcat, settings, "ce-no-id", no_id, path)
    kcat_publish_file(kcat, settings, "ce-order", other_type, path)
    kcat_publish_file(kcat, settings, "ce-structured", structured, path)
    kcat_publish_empty(kcat, settings, "ce-empty", _attributes("ce-empty", "mallory"))

    expected = {
        "missing-ce-id": None,
        "unknown-ce-type": None,  # another type's id is no upload id
        "unsupported-content-mode": "ce-structured",
        "empty-value": "ce-empty",
    }

    def letters() -> dict[str, DeadLetterEvent] | None:
        found = {e.reason: e for e in read_dead_letters(settings)}
        return found if set(expected) <= set(found) else None

    found = wait_for("the broken CloudEvents on the dead-letter topic", letters)
    for reason, upload_id in expected.items():
        letter = found[reason]
        assert letter.stage == "extract" and letter.detail, letter
        assert letter.upload_id == upload_id, letter
    assert found["missing-ce-id"].original == path.read_bytes(), "the value is kept whole"
    assert "application/cloudevents+json" in found["unsupported-content-mode"].detail
    # the letters keep the attributes, which a CloudEvent carries in its headers
    types = {headers.get("ce_type") for headers in asyncio.run(_header_sets(settings))}
    assert {"com.example.order.v1", "picnix.upload.v1"} <= types
    assert not query(settings, "SELECT 1 FROM posts WHERE post_id = ANY(%s)",
                     (["ce-no-id", "ce-order", "ce-structured", "ce-empty"],))


async def _header_sets(settings: Settings) -> list[dict[str, str]]:
    """The headers of every dead letter (their values are binary frames: not for kcat -J)."""
    consumer = manual_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(settings, settings.topic_uploads_dlq)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        found: list[dict[str, str]] = []
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend({k: v.decode() for k, v in r.headers} for r in records)
        return found
    finally:
        await consumer.stop()


def test_a_copy_by_another_author_raises_an_alert_cloudevent(
    pipeline: Settings, kcat: str, tmp_path: Path
) -> None:
    settings = pipeline
    image = distinct_png(1303)
    path = tmp_path / "artwork.png"
    path.write_bytes(image)
    kcat_publish_file(kcat, settings, "ce-art", _attributes("ce-art", "alice"), path)
    # the copy waits for the original: uploads of different keys may take different partitions
    wait_for("the original to be decided", lambda: _decided(settings, "ce-art"))
    kcat_publish_file(kcat, settings, "ce-art-copy", _attributes("ce-art-copy", "bob"), path)
    row = wait_for("the copy to be decided", lambda: _decided(settings, "ce-art-copy"))
    assert row[3] == "duplicate-reference"

    # sent before the Postgres sink committed the copy's post: on the topic already
    alerts = [r for r in kcat_read(kcat, settings, settings.topic_alerts)
              if r["headers"].get("ce_subject") == "ce-art-copy"]
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    headers, data = alert["headers"], json.loads(alert["payload"])
    assert alert["key"] == "ce-art-copy"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "picnix.alert.ip-theft.v1"
    assert headers["ce_id"] == "ip-theft:ce-art-copy"
    assert headers["ce_source"] == alert_source(settings)
    assert headers["content-type"] == "application/json"
    assert (data["post_id"], data["original_post_id"]) == ("ce-art-copy", "ce-art")
    assert (data["author"], data["original_author"]) == ("bob", "alice")
    assert data["image_sha256"] == hashlib.sha256(image).hexdigest()
    schema = json.loads((SCHEMAS / "cloudevents-alert.schema.json").read_text())
    assert jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(headers)
    data_schema = {**schema["$defs"]["data"], "$defs": schema["$defs"]}
    assert jsonschema_rs.validator_for(data_schema, validate_formats=True).is_valid(data)
    assert query(settings, "SELECT author, original_author FROM alerts WHERE post_id = %s",
                 ("ce-art-copy",)) == [("bob", "alice")]
