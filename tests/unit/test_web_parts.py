"""The HTTP API's pure parts: key hashing, the token bucket, problem documents, cursors, ETags
and how a producer refusal maps to a status."""

from __future__ import annotations

import pytest

from producers.publisher import UploadRefused, build_upload
from tests.imagegen import distinct_png
from web.cursor import BadCursor, Position, decode_cursor, encode_cursor
from web.keys import generate_key, hash_key, well_formed
from web.problems import MEDIA_TYPE, TYPE_PREFIX, Problem, describe_validation, problem_response
from web.ratelimit import RateLimiter, TokenBucket, retry_after_header
from web.routes_images import etag_matches
from web.routes_uploads import body_hash, refusal_problem


def test_generated_keys_are_well_formed_unique_and_hashed_without_the_secret() -> None:
    keys = [generate_key() for _ in range(50)]
    assert len({plain for _, plain in keys}) == 50
    for key_id, plain in keys:
        assert well_formed(plain) and plain.startswith(f"pnx_{key_id}_")
        digest = hash_key(plain)
        assert digest == hash_key(plain) and len(digest) == 64
        assert plain.split("_", 2)[2] not in digest
    assert not well_formed("pnx_short_key")
    assert not well_formed(keys[0][1] + "x")
    assert hash_key(keys[0][1]) != hash_key(keys[1][1])


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_grants_the_burst_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=3, clock=clock)  # one a second
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k")
    assert wait == pytest.approx(1.0)
    assert limiter.acquire("other") == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k") == 0.0
    clock.now += 3600  # refills up to the burst, never beyond
    assert [limiter.acquire("k") for _ in range(4)][-1] > 0


def test_token_bucket_refill_is_proportional() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=2.0, tokens=0.0, updated=0.0)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token in, half to go at 2/s
    assert bucket.take(0.5) == 0.0


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_rate_limiter_refuses_a_meaningless_limit() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(rate_per_minute=0, burst=1)


def test_problem_document_has_the_rfc_9457_members() -> None:
    problem = Problem(429, "rate-limited", "key k is over its limit", headers={"Retry-After": "2"})
    body = problem.body("/v1/posts")
    assert body == {
        "type": TYPE_PREFIX + "rate-limited", "title": "Too many requests", "status": 429,
        "detail": "key k is over its limit", "instance": "/v1/posts",
    }
    response = problem_response(problem, "/v1/posts")
    assert response.status_code == 429
    assert response.headers["content-type"] == MEDIA_TYPE
    assert response.headers["retry-after"] == "2"


def test_validation_errors_name_each_field() -> None:
    detail = describe_validation([
        {"loc": ("body", "title"), "msg": "String should have at most 1000 characters",
         "type": "string_too_long"},
        {"loc": ("query", "limit"), "type": "missing", "msg": "Field required"},
    ])
    assert detail == "title: String should have at most 1000 characters; limit is required"


def test_cursor_round_trip_and_refusals() -> None:
    pos = Position(seq=1234, id="post-7")
    cursor = encode_cursor(pos, "posts")
    assert decode_cursor(cursor, "posts") == pos
    with pytest.raises(BadCursor, match="another listing"):
        decode_cursor(cursor, "alerts")
    for bad in ("!!!", "bm90IGpzb24", encode_cursor(pos, "posts")[:-6]):
        with pytest.raises(BadCursor):
            decode_cursor(bad, "posts")


def test_etag_matching_follows_if_none_match() -> None:
    etag = '"' + "a" * 64 + '"'
    assert etag_matches(etag, etag)
    assert etag_matches(f'"x", W/{etag}', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"' + "b" * 64 + '"', etag)
    assert not etag_matches(None, etag)


def test_body_hash_binds_every_field_unambiguously() -> None:
    base = body_hash("alice", "t", "d", b"img")
    assert base == body_hash("alice", "t", "d", b"img")
    assert base != body_hash("alic", "et", "d", b"img")  # field boundaries count
    assert base != body_hash("alice", "t", "d", b"imh")


@pytest.mark.parametrize(
    ("image", "author", "status"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "a", 413),
        (b"hello, this is text and no picture", "a", 415),
        (b"GIF8", "a", 415),
        (b"", "a", 422),
        (None, " ", 422),
    ],
)
def test_producer_refusals_map_to_statuses(image: bytes | None, author: str, status: int) -> None:
    data = distinct_png(1) if image is None else image
    with pytest.raises(UploadRefused) as refused:
        build_upload("u1", author, "", data, max_bytes=100 if status == 413 else 10**7)
    problem = refusal_problem(refused.value)
    assert problem.status == status
    assert problem.detail  # says what failed and why


def test_only_dead_letters_naming_an_upload_count_as_rejections() -> None:
    from schemas.events import UploadRef
    from stream_processors.dead_letters import dead_letter
    from web.rejections import rejections_of

    ref = UploadRef("t", 0, 1)
    named = dead_letter("truncated", "ends inside IDAT", "extract", ref, b"x", "post-1")
    unnamed = dead_letter("wrong-schema", "not ours", "extract", ref, b"y", None)
    found = rejections_of([named.to_record(), unnamed.to_record(), b"garbage", None])
    assert [(e.upload_id, e.reason) for e in found] == [("post-1", "truncated")]


def test_openapi_documents_bearer_auth_and_the_multipart_upload() -> None:
    from infra.settings import Settings
    from web.app import create_app

    schema = create_app(Settings()).openapi()  # no lifespan: nothing is connected
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/posts/{post_id}"]["get"]["security"] == [{"HTTPBearer": []}]
    upload = schema["paths"]["/v1/uploads"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["image", "author"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_text_postgres_cannot_hold_is_refused_before_it_is_published() -> None:
    from producers.publisher import check_text
    from web.routes_uploads import form_text

    with pytest.raises(UploadRefused) as refused:
        build_upload("u1", "ali\x00ce", "", distinct_png(1), max_bytes=10**7)
    assert refused.value.reason == "invalid-text" and "author" in refused.value.detail
    assert refusal_problem(refused.value).status == 422
    with pytest.raises(UploadRefused, match="title"):
        check_text("post p1", title="a\x00b", description="")
    check_text("post p1", title="fine", description="")
    with pytest.raises(Problem, match="required"):
        form_text({}, "author", required=True)
    assert form_text({}, "title", required=False) == ""


def test_no_page_that_loads_scripts_from_a_cdn_is_served() -> None:
    from infra.settings import Settings
    from web.app import create_app

    paths = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    assert "/openapi.json" in paths
    assert not paths & {"/docs", "/redoc", "/docs/oauth2-redirect"}
