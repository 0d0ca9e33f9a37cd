"""The HTTP API against the real stack, through a real HTTP client.

The module's pipeline (``pipeline`` fixture) runs the workers, the sinks and the API server
that ``picnix pipeline up`` starts, on a free port; a second server started here as
``picnix serve`` with a tiny rate limit shows the 429. Keys come from ``picnix keys create``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from infra.pipeline import SERVER, pipeline_status
from infra.settings import Settings
from tests.conftest import free_port
from tests.e2e.api_server import running_server
from tests.e2e.waiting import wait_for
from tests.imagegen import artwork, distinct_png, encode, jpeg

pytestmark = [pytest.mark.e2e]

PROBLEM = "application/problem+json"


def _create_key(settings: Settings, name: str, role: str = "platform") -> str:
    """A key made the way an operator makes one: ``picnix keys create``, printed once."""
    out = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", name, "--role", role],
        env={**settings.to_env(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout
    key = out.strip().splitlines()[-1]
    assert key.startswith("pnx_"), out
    return key


def _client(settings: Settings, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=settings.http_url, headers=headers, timeout=60)


def _topic_end(settings: Settings, topic: str) -> int:
    """Records in a topic: what 'nothing new was published' is measured on."""
    from infra.kafka_clients import manual_consumer, topic_partitions

    async def end() -> int:
        consumer = manual_consumer(settings, group_id=None)
        await consumer.start()
        try:
            parts = await topic_partitions(settings, topic)
            return sum((await consumer.end_offsets(parts)).values())
        finally:
            await consumer.stop()

    return asyncio.run(end())


def _uploads_end(settings: Settings) -> int:
    return _topic_end(settings, settings.topic_uploads)


def _upload(
    client: httpx.Client, image: bytes, author: str = "alice", title: str = "t",
    headers: dict[str, str] | None = None, **fields: str,
) -> httpx.Response:
    return client.post(
        "/v1/uploads", files={"image": ("pic.png", image, "image/png")},
        data={"author": author, "title": title, **fields}, headers=headers or {},
    )


def _assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:picnix:problem:") and body["title"] and body["detail"]
    return body


def _decided(client: httpx.Client, post_id: str, timeout: float = 120.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        resp = client.get(f"/v1/posts/{post_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body if body["status"] == "decided" else None

    return wait_for(f"post {post_id} decided", probe, timeout=timeout)


@dataclasses.dataclass(frozen=True)
class Api:
    settings: Settings
    platform_a: str
    platform_b: str
    operator: str

    def client(self, key: str | None) -> httpx.Client:
        return _client(self.settings, key)


@pytest.fixture(scope="module")
def api(pipeline: Settings) -> Api:
    assert any(st.name == SERVER.name and st.up for st in pipeline_status(pipeline))
    return Api(
        pipeline, _create_key(pipeline, "platform-a"), _create_key(pipeline, "platform-b"),
        _create_key(pipeline, "ops", role="operator"),
    )


@pytest.fixture(scope="module")
def original_and_copy(api: Api) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Platform A uploads an image by alice, then the same bytes by bob: a duplicate, an alert."""
    image = encode(artwork(240, 320), ".png")
    with api.client(api.platform_a) as a:
        first = _upload(a, image, author="alice", title="original")
        assert first.status_code == 202, first.text
        original = _decided(a, first.json()["post_id"])
        second = _upload(a, image, author="bob", title="copy")
        assert second.status_code == 202, second.text
        copy = _decided(a, second.json()["post_id"])
    return original, copy, image


def test_every_v1_call_needs_a_valid_key(api: Api) -> None:
    with api.client(None) as anonymous:
        body = _assert_problem(anonymous.get("/v1/stats"), 401)
        assert "Authorization" in body["detail"]
        _assert_problem(anonymous.get("/v1/posts"), 401)
        _assert_problem(_upload(anonymous, distinct_png(1)), 401)
        wrong = anonymous.get("/v1/posts", headers={"Authorization": "Bearer pnx_nope"})
        _assert_problem(wrong, 401)
        basic = anonymous.get("/v1/posts", headers={"Authorization": "Basic YWxhZGRpbjpvcGVu"})
        assert "Bearer" in _assert_problem(basic, 401)["detail"]
        forged = api.platform_a[:-4] + "AAAA"
        _assert_problem(
            anonymous.get("/v1/posts", headers={"Authorization": f"Bearer {forged}"}), 401
        )
        health = anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        schema = anonymous.get("/openapi.json").json()
        assert {"/v1/uploads", "/v1/posts/{post_id}", "/v1/images/{sha256}"} <= set(schema["paths"])


def test_a_key_name_has_one_role(api: Api) -> None:
    """Names scope what a platform sees: a second key of platform-a shares its posts, but an
    operator key cannot take a platform's name."""
    refused = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", "platform-a", "--role", "operator"],
        env={**api.settings.to_env(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "one role" in refused.stderr
    assert refused.stdout == ""  # no key printed


def test_invalid_uploads_are_refused_and_publish_nothing(api: Api) -> None:
    before = _uploads_end(api.settings)
    cap = api.settings.max_image_bytes
    with api.client(api.platform_a) as a:
        too_big = b"\x89PNG\r\n\x1a\n" + b"\0" * cap
        assert str(cap) in _assert_problem(_upload(a, too_big), 413)["detail"]
        text = _assert_problem(_upload(a, b"just some words, no picture"), 415)
        assert "not an image" in text["detail"]
        no_author = a.post("/v1/uploads", files={"image": ("p.png", distinct_png(2), "image/png")})
        assert "author" in _assert_problem(no_author, 422)["detail"]
        no_image = a.post("/v1/uploads", data={"author": "alice"})
        _assert_problem(no_image, 415)  # not even multipart
        no_image = a.post("/v1/uploads", data={"author": "alice"}, files={"x": ("x", b"1")})
        assert "image" in _assert_problem(no_image, 422)["detail"]
        blank = _upload(a, distinct_png(3), author="  ")
        assert "author" in _assert_problem(blank, 422)["detail"]
        nul = _upload(a, distinct_png(3), title="a\x00b")  # no Postgres text can hold it
        assert "NUL" in _assert_problem(nul, 422)["detail"]
    assert _uploads_end(api.settings) == before


def test_idempotency_key_replays_the_answer_and_refuses_another_body(api: Api) -> None:
    image = distinct_png(4)
    with api.client(api.platform_a) as a:
        before = _uploads_end(api.settings)
        headers = {"Idempotency-Key": "upload-4"}
        first = _upload(a, image, headers=headers)
        assert first.status_code == 202, first.text
        assert _uploads_end(api.settings) == before + 1
        again = _upload(a, image, headers=headers)
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert _uploads_end(api.settings) == before + 1  # the replay published nothing
        other = _upload(a, image, title="another title", headers=headers)
        assert first.json()["post_id"] in _assert_problem(other, 409)["detail"]
        assert _uploads_end(api.settings) == before + 1
    with api.client(api.platform_b) as b:  # keys are per platform: B's own upload-4 is new
        assert _upload(b, image, headers=headers).json() != first.json()
    assert _uploads_end(api.settings) == before + 2


def test_concurrent_retries_with_one_idempotency_key_publish_once(api: Api) -> None:
    """Five clients send the same upload with the same key at once: the unique key makes all
    but one wait for the first's commit, then answer its 202."""
    image = distinct_png(7)
    before = _uploads_end(api.settings)

    def send(_: int) -> httpx.Response:
        with api.client(api.platform_a) as a:
            return _upload(a, image, headers={"Idempotency-Key": "burst-7"})

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(send, range(5)))
    assert [r.status_code for r in answers] == [202] * 5
    assert len({r.json()["post_id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 4
    assert _uploads_end(api.settings) == before + 1


@pytest.mark.slow  # waits for decisions
def test_an_upload_becomes_decided_with_its_duplicate_and_alert(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    original, copy, image = original_and_copy
    sha = hashlib.sha256(image).hexdigest()
    assert original["decision"]["kind"] == "new-cluster"
    assert original["alert"] is None and original["platform"] == "platform-a"
    assert copy["decision"]["kind"] == "duplicate-reference"
    assert copy["decision"]["image"]["sha256"] == sha
    assert copy["decision"]["image"]["image_id"] == original["decision"]["image"]["image_id"]
    assert copy["decision"]["cluster_id"] == original["decision"]["cluster_id"]
    assert copy["decision"]["evidence"]["method"]
    assert copy["decision"]["evidence"]["reason"] == "identical-bytes"
    assert copy["alert"]["author"] == "bob" and copy["alert"]["original_author"] == "alice"
    assert copy["alert"]["original_post_id"] == original["post_id"]
    with api.client(api.platform_a) as a:
        dups = a.get(f"/v1/posts/{copy['post_id']}/duplicates").json()
        assert [p["post_id"] for p in dups] == [original["post_id"]]
        similar = a.get(f"/v1/posts/{original['post_id']}/similar")
        assert similar.status_code == 200
        assert copy["post_id"] not in [p["post_id"] for p in similar.json()]  # a duplicate
        alerts = a.get("/v1/alerts").json()["items"]
        assert copy["post_id"] in [al["post_id"] for al in alerts]


@pytest.mark.slow  # waits for decisions
def test_listing_filters_and_cursor_pagination(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    original, copy, _ = original_and_copy
    with api.client(api.platform_a) as a:
        dup_ids = [p["post_id"] for p in a.get("/v1/posts?duplicates=true").json()["items"]]
        assert copy["post_id"] in dup_ids and original["post_id"] not in dup_ids
        alert_ids = [p["post_id"] for p in a.get("/v1/posts?alerts=true").json()["items"]]
        assert alert_ids == [copy["post_id"]]
        by_alice = a.get("/v1/posts", params={"author": "alice"}).json()["items"]
        assert original["post_id"] in [p["post_id"] for p in by_alice]
        assert all(p["author"] == "alice" for p in by_alice)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = a.get("/v1/posts", params=params).json()
            seen += [p["post_id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everything = [p["post_id"] for p in a.get("/v1/posts").json()["items"]]
        assert seen == everything and len(seen) == len(set(seen)) >= 2
        _assert_problem(a.get("/v1/posts", params={"cursor": "garbage"}), 400)


@pytest.mark.slow  # waits for decisions
def test_a_platform_sees_only_its_own_posts_and_an_operator_all(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    original, copy, image = original_and_copy
    sha = hashlib.sha256(image).hexdigest()
    with api.client(api.platform_b) as b:
        body = _assert_problem(b.get(f"/v1/posts/{original['post_id']}"), 404)
        assert original["post_id"] in body["detail"]
        _assert_problem(b.get(f"/v1/posts/{copy['post_id']}/duplicates"), 404)
        _assert_problem(b.patch(f"/v1/posts/{copy['post_id']}", json={"title": "mine"}), 404)
        _assert_problem(b.delete(f"/v1/posts/{copy['post_id']}"), 404)
        _assert_problem(b.get(f"/v1/images/{sha}"), 404)
        listed = [p["post_id"] for p in b.get("/v1/posts").json()["items"]]
        assert original["post_id"] not in listed and copy["post_id"] not in listed
        assert b.get("/v1/alerts").json()["items"] == []
    with api.client(_create_key(api.settings, "platform-a")) as rotated:  # same platform
        assert rotated.get(f"/v1/posts/{original['post_id']}").status_code == 200
    with api.client(api.operator) as ops:
        assert ops.get(f"/v1/posts/{copy['post_id']}").json()["post_id"] == copy["post_id"]
        listed = [p["post_id"] for p in ops.get("/v1/posts").json()["items"]]
        assert {original["post_id"], copy["post_id"]} <= set(listed)


@pytest.mark.slow  # waits for decisions
def test_images_stream_with_their_hash_as_etag(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    _, _, image = original_and_copy
    sha = hashlib.sha256(image).hexdigest()
    with api.client(api.platform_a) as a:
        def stored() -> httpx.Response | None:
            r = a.get(f"/v1/images/{sha}")
            return r if r.status_code == 200 else None

        resp = wait_for("the stored object", stored)
        assert resp.content == image
        assert resp.headers["etag"] == f'"{sha}"'
        assert resp.headers["content-type"] == "image/png"
        assert "immutable" in resp.headers["cache-control"]
        cached = a.get(f"/v1/images/{sha}", headers={"If-None-Match": f'"{sha}"'})
        assert cached.status_code == 304 and cached.content == b""
        assert cached.headers["etag"] == f'"{sha}"'
        _assert_problem(a.get(f"/v1/images/{'0' * 64}"), 404)
        _assert_problem(a.get("/v1/images/not-a-hash"), 422)


@pytest.mark.slow  # waits for a decision, an update and a deletion
def test_patch_and_delete_travel_as_lifecycle_events(api: Api) -> None:
    with api.client(api.platform_a) as a:
        posted = _upload(a, distinct_png(5), author="carol", title="before", description="d0")
        post_id = posted.json()["post_id"]
        _decided(a, post_id)
        _assert_problem(a.patch(f"/v1/posts/{post_id}", json={}), 422)
        _assert_problem(a.patch(f"/v1/posts/{post_id}", json={"colour": "red"}), 422)
        _assert_problem(a.patch(f"/v1/posts/{post_id}", json={"title": "a\x00b"}), 422)
        patched = a.patch(f"/v1/posts/{post_id}", json={"title": "after"})
        assert patched.status_code == 202 and patched.json()["action"] == "update"
        wait_for(
            "the new title",
            lambda: a.get(f"/v1/posts/{post_id}").json()["title"] == "after",
        )
        assert a.get(f"/v1/posts/{post_id}").json()["description"] == "d0"  # kept
        before = _uploads_end(api.settings)
        assert a.delete(f"/v1/posts/{post_id}").status_code == 202
        assert a.delete(f"/v1/posts/{post_id}").status_code in (202, 404)  # asked again
        assert _uploads_end(api.settings) == before + 1
        wait_for(
            "the post gone", lambda: a.get(f"/v1/posts/{post_id}").status_code == 404,
        )
        assert "deleted" in a.get(f"/v1/posts/{post_id}").json()["detail"]


@pytest.mark.slow  # waits for decisions
def test_stats_report_the_dedup_figures(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    with api.client(api.platform_b) as b:
        stats = b.get("/v1/stats").json()
    assert set(stats) == {
        "uploads", "images", "bytes_saved", "dedup_rate", "clusters", "alerts", "dlq",
    }
    assert stats["uploads"] >= 2 and stats["images"] >= 1 and stats["alerts"] >= 1
    assert stats["bytes_saved"] >= len(original_and_copy[2])
    assert 0 < stats["dedup_rate"] < 1 and stats["clusters"] >= 1 and stats["dlq"] >= 0


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    with api.client(api.operator) as ops:
        ops.get("/v1/posts/no-such-post")
        text = ops.get("/metrics").text
    assert 'picnix_http_request_seconds_bucket{le="0.005",method="GET",' \
        'route="/v1/posts/{post_id}",status="404"}' in text
    assert "no-such-post" not in text
    assert "picnix_component_ready 1.0" in text


@pytest.fixture(scope="module")
def strict_server(api: Api) -> Iterator[Settings]:
    """A second ``picnix serve``, started here on a free port with a burst of 3."""
    settings = dataclasses.replace(
        api.settings, http_port=free_port(), api_rate_burst=3, api_rate_per_minute=6
    )
    with running_server(settings):
        yield settings


def test_rate_limit_answers_429_with_retry_after(api: Api, strict_server: Settings) -> None:
    with _client(strict_server, api.platform_b) as b:
        statuses = [b.get("/v1/posts/none").status_code for _ in range(3)]
        assert statuses == [404, 404, 404]
        limited = b.get("/v1/posts/none")
        body = _assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1 and "limit" in body["detail"]
    with _client(strict_server, api.platform_a) as a:  # another key has its own bucket
        assert a.get("/v1/posts/none").status_code == 404
    time.sleep(float(limited.headers["retry-after"]))
    with _client(strict_server, api.platform_b) as b:
        assert b.get("/v1/posts/none").status_code == 404


@pytest.mark.slow  # waits for decisions
def test_a_larger_photo_upload_round_trips(api: Api) -> None:
    """A JPEG of a few hundred KB goes through multipart intact (its size preserved)."""
    small = np.random.default_rng(6).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    photo = cv2.resize(small, (1600, 1200), interpolation=cv2.INTER_CUBIC)
    image = encode(photo, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 98])
    with api.client(api.platform_a) as a:
        post_id = _upload(a, image, author="dave").json()["post_id"]
        post = a.get(f"/v1/posts/{post_id}").json()
        assert post["status"] in ("pending", "decided") and post["byte_size"] == len(image)
        decided = _decided(a, post_id)
        assert decided["byte_size"] == len(image)
        assert decided["decision"]["kind"] in ("new-cluster", "merge-center")


@pytest.mark.slow  # waits for extract to dead-letter it
def test_an_upload_the_pipeline_refuses_reads_as_rejected_with_its_reason(api: Api) -> None:
    truncated = encode(artwork(), ".png")[:300]  # PNG magic bytes: the gateway accepts it
    with api.client(api.platform_a) as a:
        accepted = _upload(a, truncated, author="erin")
        assert accepted.status_code == 202, accepted.text
        post_id = accepted.json()["post_id"]

        def rejected() -> dict[str, Any] | None:
            body: dict[str, Any] = a.get(f"/v1/posts/{post_id}").json()
            return body if body["status"] == "rejected" else None

        post = wait_for("the rejection", rejected)
        assert post["rejection"]["stage"] == "extract" and post["rejection"]["detail"]
        assert post["rejection"]["reason"] in ("truncated", "corrupt")
        _assert_problem(a.patch(f"/v1/posts/{post_id}", json={"title": "x"}), 409)


def _search(client: httpx.Client, image: bytes, name: str = "probe.jpg") -> httpx.Response:
    return client.post("/v1/search", files={"image": (name, image, "application/octet-stream")})


def _decisions_end(settings: Settings) -> int:
    return _topic_end(settings, settings.topic_decisions)


def test_search_finds_the_original_of_a_copy_and_stores_nothing(
    api: Api, original_and_copy: tuple[dict[str, Any], dict[str, Any], bytes]
) -> None:
    original, copy, image = original_and_copy
    sha = hashlib.sha256(image).hexdigest()
    picture = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    # a resized JPEG copy: no byte in common with what is stored
    copy_jpeg = jpeg(cv2.resize(picture, (256, 192), interpolation=cv2.INTER_AREA), quality=80)
    uploads, decisions = _uploads_end(api.settings), _decisions_end(api.settings)
    with api.client(api.operator) as ops:
        stats = ops.get("/v1/stats").json()
        found = ops.post("/v1/search", files={"image": ("c.jpg", copy_jpeg, "image/jpeg")})
        assert found.status_code == 200, found.text
        body = found.json()
        assert len(body["matches"]) == 1 and body["searched_images"] >= 1
        match = body["matches"][0]
        assert match["image"]["sha256"] == sha
        assert match["evidence"]["method"]
        posts = [p["post_id"] for p in match["posts"]]
        assert posts[:2] == [original["post_id"], copy["post_id"]]
        unseen = _search(ops, distinct_png(4242), "unseen.png")
        assert unseen.status_code == 200 and unseen.json()["matches"] == []
        # nothing was published or decided, and the figures did not move
        assert _uploads_end(api.settings) == uploads
        assert _decisions_end(api.settings) == decisions
        assert ops.get("/v1/stats").json() == stats
    # every worker answers: the one without the engine forwards to the one that holds it
    answers = [
        httpx.post(f"{url}/search", content=copy_jpeg, timeout=60).json()
        for url in api.settings.search_urls
    ]
    assert len(answers) == api.settings.default_workers
    assert all(a["match"]["sha256"] == sha for a in answers)
    assert len({a["worker"] for a in answers}) == 1
    with api.client(api.platform_a) as a:
        mine = _search(a, copy_jpeg).json()["matches"]
        assert [m["image"]["sha256"] for m in mine] == [sha]
    with api.client(api.platform_b) as b:
        assert _search(b, copy_jpeg).json()["matches"] == []  # not among platform-b's posts


def test_search_refuses_what_an_upload_would(api: Api) -> None:
    with api.client(None) as anonymous:
        _assert_problem(_search(anonymous, distinct_png(5)), 401)
    with api.client(api.platform_a) as a:
        assert "not an image" in _assert_problem(_search(a, b"words, no picture"), 415)["detail"]
        _assert_problem(a.post("/v1/search", data={"author": "alice"}), 415)
        no_image = a.post("/v1/search", files={"author": (None, "alice")})
        assert "image" in _assert_problem(no_image, 422)["detail"]
        truncated = distinct_png(6)[:60]  # PNG magic bytes, then nothing decodable
        problem = _assert_problem(_search(a, truncated, "t.png"), 422)
        assert problem["type"].startswith("urn:picnix:problem:image-")


def test_a_crop_s_evidence_outlines_where_it_lies_in_the_original(api: Api) -> None:
    """Uploaded through the API, decided by the pipeline, read back from Postgres: the crop's
    evidence carries its box in the original, and a search of the crop finds the same box."""
    from skimage import data

    photo = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    h, w = photo.shape[:2]
    box = (0.2, 0.1, 1.0, 0.8)
    crop = photo[int(h * box[1]) : int(h * box[3]), int(w * box[0]) : int(w * box[2])]
    with api.client(api.platform_a) as a:
        first = _upload(a, jpeg(photo, 92), author="carol", title="coffee")
        _decided(a, first.json()["post_id"])
        second = _upload(a, jpeg(crop, 85), author="dave", title="coffee, cropped")
        copy = _decided(a, second.json()["post_id"])
        assert copy["decision"]["kind"] == "duplicate-reference", copy
        region = copy["decision"]["evidence"]["region"]
        got = [region[k] for k in ("x0", "y0", "x1", "y1")]
        assert np.allclose(got, box, atol=0.02), got
        assert copy["decision"]["evidence"]["reason"] == "clean-copy"
        found = _search(a, jpeg(crop, 70)).json()["matches"]
        assert len(found) == 1 and found[0]["image"]["image_id"] == first.json()["post_id"]
        # the crop is now stored as an alias too, and may match first: a region measured on
        # the alias is not one of the original, so none is given then
        searched = found[0]["evidence"]["region"]
        if searched is not None:
            got = [searched[k] for k in ("x0", "y0", "x1", "y1")]
            assert np.allclose(got, box, atol=0.02), got
