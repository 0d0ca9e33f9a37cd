"""The CloudEvents Kafka binding (binary mode): uploads parsed into the same UploadEvent a PNX
record gives, each broken rule refused with its code, alerts built as the schema says, and the
JSON Schemas in schemas/ agreeing with the parser on valid and invalid attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from schemas.cloudevents import (
    IP_THEFT_ALERT_TYPE,
    IpTheftAlert,
    ip_theft_alert,
    is_cloudevent,
    parse_upload,
    upload_id_of,
)
from schemas.envelope import SchemaError
from schemas.events import PostUpdateEvent, UploadEvent, UploadRef
from schemas.upload_records import parse_upload_record, record_time
from stream_processors.engine.decode import DecodeLimits
from stream_processors.engine.method import build_method
from stream_processors.extraction import Rejection, extract_features
from tests.imagegen import artwork, encode

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
FALLBACK = "2026-12-03T10:00:00+00:00"
PNG = encode(artwork(), ".png")


def _attributes(**overrides: str | None) -> dict[str, str]:
    attrs: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_type": "picnix.upload.v1",
        "ce_id": "post-1",
        "ce_source": "https://platform.example/uploads",
        "ce_time": "2026-12-03T11:00:00.5Z",
        "ce_author": "alice",
        "ce_title": "Sunset",
        "ce_description": "over the bay",
        "content-type": "image/png",
    }
    attrs.update(overrides)
    return {k: v for k, v in attrs.items() if v is not None}


def _headers(attrs: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in attrs.items()]


def _validator(name: str, part: str | None = None) -> Any:
    schema = json.loads((SCHEMAS / name).read_text())
    if part is not None:
        schema = {**schema["$defs"][part], "$defs": schema["$defs"]}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def test_a_binary_mode_upload_becomes_the_upload_event_a_pnx_record_would() -> None:
    event = parse_upload(_headers(_attributes()), PNG, FALLBACK)
    assert event == UploadEvent(
        upload_id="post-1", author="alice", title="Sunset", uploaded_at="2026-12-03T11:00:00.5Z",
        image=PNG, description="over the bay", tenant="https://platform.example/uploads",
    )
    assert event.image == PNG  # the value, byte for byte


def test_optional_attributes_default_and_the_record_time_stands_in_for_ce_time() -> None:
    attrs = _attributes(ce_time=None, ce_title=None, ce_description=None)
    event = parse_upload(_headers(attrs), PNG, FALLBACK)
    assert (event.uploaded_at, event.title, event.description) == (FALLBACK, "", "")


def test_header_names_are_matched_whatever_their_case_and_a_mapping_works_too() -> None:
    attrs = {k.upper() if k == "content-type" else k: v for k, v in _attributes().items()}
    assert parse_upload(_headers(attrs), PNG, FALLBACK).upload_id == "post-1"
    mapping = {k: v.encode() for k, v in _attributes().items()}
    assert parse_upload(mapping, PNG, FALLBACK).author == "alice"


BROKEN: dict[str, tuple[dict[str, str], str]] = {
    "no id": (_attributes(ce_id=None), "missing-ce-id"),
    "blank id": (_attributes(ce_id="  "), "missing-ce-id"),
    "no source": (_attributes(ce_source=None), "missing-ce-source"),
    "no author": (_attributes(ce_author=None), "missing-ce-author"),
    "no type": (_attributes(ce_type=None), "missing-ce-type"),
    "other type": (_attributes(ce_type="com.example.order.v1"), "unknown-ce-type"),
    "old upload type": (_attributes(ce_type="picnix.upload.v0"), "unknown-ce-type"),
    "spec 0.3": (_attributes(ce_specversion="0.3"), "unsupported-specversion"),
    "no spec": (_attributes(ce_specversion=None), "unsupported-specversion"),
    "structured": (
        _attributes(**{"content-type": "application/cloudevents+json; charset=UTF-8"}),
        "unsupported-content-mode",
    ),
    "batch": (
        _attributes(**{"content-type": "application/cloudevents-batch+json"}),
        "unsupported-content-mode",
    ),
    "date only": (_attributes(ce_time="2026-12-03"), "bad-ce-time"),
    "no offset": (_attributes(ce_time="2026-12-03T11:00:00"), "bad-ce-time"),
    "month 13": (_attributes(ce_time="2026-13-03T11:00:00Z"), "bad-ce-time"),
    "basic format": (_attributes(ce_time="20261203T110000Z"), "bad-ce-time"),
    "not an image": (_attributes(**{"content-type": "application/pdf"}), "bad-content-type"),
    "bare image/": (_attributes(**{"content-type": "image/"}), "bad-content-type"),
    "no content type": (_attributes(**{"content-type": None}), "bad-content-type"),
    "NUL in title": (_attributes(ce_title="cat\x00"), "invalid-text"),
    "NUL in author": (_attributes(ce_author="al\x00ice"), "invalid-text"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_rule_is_refused_with_its_code(case: str) -> None:
    attrs, code = BROKEN[case]
    with pytest.raises(SchemaError) as err:
        parse_upload(_headers(attrs), PNG, FALLBACK)
    assert err.value.code == code
    assert err.value.detail  # says what failed and why


def test_an_empty_value_is_refused_naming_the_upload() -> None:
    for value in (b"", None):
        with pytest.raises(SchemaError) as err:
            parse_upload(_headers(_attributes()), value, FALLBACK)
        assert err.value.code == "empty-value" and "post-1" in err.value.detail


def test_headers_that_are_not_utf8_or_repeated_are_refused() -> None:
    headers = _headers(_attributes())
    with pytest.raises(SchemaError) as err:
        parse_upload([*headers, ("ce_id", b"again")], PNG, FALLBACK)
    assert err.value.code == "duplicate-header"
    broken = [(k, b"\xff\xfe" if k == "ce_title" else v) for k, v in headers]
    with pytest.raises(SchemaError) as err:
        parse_upload(broken, PNG, FALLBACK)
    assert err.value.code == "invalid-text"


def test_the_binding_is_told_by_its_headers() -> None:
    assert not is_cloudevent([])
    assert not is_cloudevent([("traceparent", b"00-abc")])
    assert is_cloudevent(_headers(_attributes()))
    # structured mode has no ce_ header: told by its content type, so it is refused with why
    assert is_cloudevent([("content-type", b"application/cloudevents+json")])


def test_a_refused_upload_names_its_id_only_when_it_is_an_upload() -> None:
    assert upload_id_of(_headers(_attributes(ce_time="yesterday"))) == "post-1"
    assert upload_id_of(_headers(_attributes(ce_type="com.example.order.v1"))) is None
    assert upload_id_of(_headers(_attributes(ce_id=None))) is None
    assert upload_id_of([]) is None


def test_a_record_of_the_uploads_topic_is_parsed_in_its_own_binding() -> None:
    ce = parse_upload_record(_headers(_attributes(ce_time=None)), PNG, 1_764_759_600_000)
    assert isinstance(ce, UploadEvent) and ce.uploaded_at == record_time(1_764_759_600_000)
    update = PostUpdateEvent(post_id="p", title="t", description="d", updated_at=FALLBACK)
    assert parse_upload_record([], update.to_record(), 0) == update
    with pytest.raises(SchemaError) as err:  # a CloudEvent is not read as a PNX frame
        parse_upload_record(_headers(_attributes(ce_id=None)), update.to_record(), 0)
    assert err.value.code == "missing-ce-id"


def test_the_image_bytes_meet_the_same_checks_as_a_pnx_upload() -> None:
    upload = parse_upload(_headers(_attributes()), PNG, FALLBACK)
    method = build_method("default")
    result = extract_features(
        upload, UploadRef("picnix.uploads", 0, 7), method, DecodeLimits(max_bytes=len(PNG) - 1)
    )
    assert isinstance(result, Rejection) and result.reason == "too-large"
    not_png = parse_upload(_headers(_attributes()), b"plain text, no image", FALLBACK)
    result = extract_features(not_png, UploadRef("picnix.uploads", 0, 8), method, DecodeLimits())
    assert isinstance(result, Rejection) and result.reason == "unknown-format"


# The schema describes the headers only; every case below goes through both with a valid value.
SCHEMA_CASES: list[dict[str, str]] = [
    _attributes(),
    _attributes(ce_time=None, ce_title=None, ce_description=None),
    _attributes(ce_title="", ce_description=""),
    _attributes(**{"content-type": "image/jpeg; q=0.9"}),
    _attributes(**{"content-type": "IMAGE/WebP"}),
    _attributes(ce_time="2026-12-03T11:00:00+05:30"),
    _attributes(ce_partitionkey="post-1"),  # other extensions are allowed
    *(attrs for attrs, _code in BROKEN.values()),
]


@pytest.mark.parametrize("index", range(len(SCHEMA_CASES)))
def test_the_upload_schema_and_the_parser_agree(index: int) -> None:
    attrs = SCHEMA_CASES[index]
    try:
        parse_upload(_headers(attrs), PNG, FALLBACK)
        parsed = True
    except SchemaError:
        parsed = False
    assert _validator("cloudevents-upload.schema.json").is_valid(attrs) is parsed, attrs


def test_an_alert_is_a_cloudevent_as_its_schema_says_with_a_stable_id() -> None:
    alert = IpTheftAlert(
        post_id="copy-1", original_post_id="orig-1", author="bob", original_author="alice",
        image_id="img-1", image_sha256="ab" * 32, method="exact", distance=None,
        detected_at="2026-12-03T11:00:01.250000+00:00",
    )
    record = ip_theft_alert(alert, "urn:picnix:picnix")
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["ce_id"] == "ip-theft:copy-1" and headers["ce_type"] == IP_THEFT_ALERT_TYPE
    assert record.key == b"copy-1"
    assert ip_theft_alert(alert, "urn:picnix:picnix") == record  # a re-send is the same event
    data = json.loads(record.value)
    assert data["original_author"] == "alice" and data["image_sha256"] == "ab" * 32
    assert _validator("cloudevents-alert.schema.json").is_valid(headers)
    assert _validator("cloudevents-alert.schema.json", "data").is_valid(data)
    assert not _validator("cloudevents-alert.schema.json").is_valid(
        {**headers, "ce_type": "picnix.upload.v1"}
    )
