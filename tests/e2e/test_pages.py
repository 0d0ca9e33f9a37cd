"""The web page in a real browser (Debian's chromium driven by Playwright) against the real
stack: the module's pipeline runs the workers, the sinks and ``picnix serve``, and the browser
signs in with an operator key, uploads an image and a cropped copy by another author, and sees
the decisions, the side-by-side view, the alert, the dashboard, edit and delete.

The tests run in file order and share one signed-in page. Each view is saved as a screenshot
under ``tests/e2e/artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from skimage import data

from infra.settings import Settings
from sinks.blob_keys import blob_key
from sinks.object_store import ObjectStore
from tests.e2e.browser import ensure_chromium
from tests.e2e.waiting import wait_for
from tests.imagegen import encode
from web.keys import Role, create_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DECISION_TIMEOUT_MS = 120_000
SCRIPT_TITLE = "<script>window.__pwned = 1</script>Astronaut <b>bold</b>"
CROP_TITLE = "Cropped astronaut"
SIMILAR_TITLE = "Astronaut without blue"
CROP_MARGIN = 51  # pixels cut off each side of the 512x512 picture: a fifth of it
# a well-formed key that is no key (the shape keys.py accepts, never created)
UNKNOWN_KEY = "pnx_000000000000_" + "A" * 43


@dataclass
class Site:
    settings: Settings
    operator_key: str
    platform_key: str
    posts: dict[str, str] = field(default_factory=dict)  # "original" / "crop" -> post id

    def url(self, path: str) -> str:
        return f"{self.settings.http_url}{path}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


@pytest.fixture(scope="module")
def site(pipeline: Settings) -> Site:
    return Site(
        pipeline,
        create_key(pipeline.pg_dsn, "moderator", Role.OPERATOR).plaintext,
        create_key(pipeline.pg_dsn, "some-platform", Role.PLATFORM).plaintext,
    )


@pytest.fixture(scope="module")
def page(chromium: Path, site: Site) -> Iterator[Page]:
    """One signed-out page for the module. It needs ``site`` so that the browser (whose event
    loop runs in this thread) is closed before the pipeline's teardown runs its own loop."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _astronaut() -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


def _crop(img: np.ndarray) -> np.ndarray:
    """The sides cut off: a copy the engine verifies with keypoints, not hashes."""
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[CROP_MARGIN : h - CROP_MARGIN, CROP_MARGIN : w - CROP_MARGIN])


def _similar_png() -> bytes:
    """The astronaut without its blue channel: near it in the hashes, so it joins its cluster,
    but another picture to the pixel check (no hue filter makes it), so no duplicate."""
    img = _astronaut()
    img[:, :, 0] = 0
    return encode(img, ".png")


def _sign_in(page: Page, site: Site, key: str) -> None:
    page.goto(site.url("/sign-in"))
    page.fill("input[name=key]", key)
    page.click("form[action='/sign-in'] button[type=submit]")
    page.wait_for_load_state()


def _upload(page: Page, site: Site, image: bytes, author: str, title: str) -> str:
    """Upload through the form; wait until the page shows the decision; the post id."""
    page.goto(site.url("/upload"))
    page.set_input_files(
        "input[name=image]", {"name": "picture.png", "mimeType": "image/png", "buffer": image}
    )
    page.fill("input[name=author]", author)
    page.fill("input[name=title]", title)
    page.click("form.upload button[type=submit]")
    page.wait_for_selector(
        "#upload-result[data-status=decided] .result-figure", timeout=DECISION_TIMEOUT_MS
    )
    post_id = page.get_attribute("#upload-result", "data-post")
    assert post_id
    return post_id


def _images_loaded(page: Page, selector: str) -> int:
    """How many images under ``selector`` the browser decoded (naturalWidth > 0)."""
    count: int = page.eval_on_selector_all(
        selector, "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"
    )
    return count


def test_signed_out_browser_is_sent_to_sign_in(page: Page, site: Site) -> None:
    page.goto(site.url("/alerts"))
    assert page.url.startswith(site.url("/sign-in?next="))
    _shot(page, "sign-in")
    resp = page.request.get(site.url("/web/posts/nothing"))
    assert resp.status == 401


def test_wrong_or_platform_key_cannot_sign_in(page: Page, site: Site) -> None:
    _sign_in(page, site, UNKNOWN_KEY)
    assert "not a known, unrevoked PicNix key" in page.inner_text(".error")
    _sign_in(page, site, site.platform_key)
    assert "needs an operator key" in page.inner_text(".error")
    cookies = page.context.cookies()
    assert not [c for c in cookies if c["name"] == "picnix_session"]
    page.goto(site.url("/"))
    assert "/sign-in" in page.url


def test_sign_in_without_csrf_token_is_refused(page: Page, site: Site) -> None:
    resp = page.request.post(
        site.url("/sign-in"), form={"key": site.operator_key, "next": "/"}, max_redirects=0
    )
    assert resp.status == 403
    assert "csrf_token" in resp.text()
    assert not [c for c in page.context.cookies() if c["name"] == "picnix_session"]


def test_operator_signs_in(page: Page, site: Site) -> None:
    _sign_in(page, site, site.operator_key)
    assert page.url == site.url("/")
    assert "moderator" in page.inner_text("header")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "picnix_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""


def test_signed_in_form_post_without_csrf_token_is_refused(page: Page, site: Site) -> None:
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf_token": "not-this-sessions-token"}]
    for form in forms:
        resp = page.request.post(
            site.url("/posts/any-post/delete"), form=form, max_redirects=0
        )
        assert resp.status == 403, resp.text()
        assert "csrf_token" in resp.text()
    resp = page.request.post(
        site.url("/upload"), multipart={"author": "x", "image": {
            "name": "a.png", "mimeType": "image/png", "buffer": encode(_astronaut(), ".png"),
        }}, max_redirects=0,
    )
    assert resp.status == 403


def test_upload_shows_the_decision(page: Page, site: Site) -> None:
    post_id = _upload(page, site, encode(_astronaut(), ".png"), "alice", SCRIPT_TITLE)
    site.posts["original"] = post_id
    text = page.inner_text("#upload-result")
    assert "new-cluster" in text
    assert _images_loaded(page, "#upload-result img") == 1
    _shot(page, "upload-result-original")


def test_cropped_copy_by_another_author_is_a_duplicate_with_an_alert(
    page: Page, site: Site
) -> None:
    crop = encode(_crop(_astronaut()), ".png")
    post_id = _upload(page, site, crop, "bob", CROP_TITLE)
    site.posts["crop"] = post_id
    text = page.inner_text("#upload-result")
    assert "duplicate-reference" in text and "alice's post" in text
    assert "possible IP theft" in text and "bob posted alice's image" in text
    assert "keypoints matched" in text
    assert re.search(r"Accepted by [a-z-]+", text), text
    assert re.search(r"It shows x 10.90 %, y 10.90 % of the original", text), text
    _shot(page, "upload-result")


def test_an_edited_picture_joins_the_cluster_as_a_similar_post(page: Page, site: Site) -> None:
    post_id = _upload(page, site, _similar_png(), "carol", SIMILAR_TITLE)
    site.posts["similar"] = post_id
    text = page.inner_text("#upload-result")
    assert "merge-center" in text and "possible IP theft" not in text


def test_grid_shows_badges_and_titles_as_text(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    crop_card = page.locator(f".card[data-post='{site.posts['crop']}']")
    badges = crop_card.locator(".badges").inner_text()
    assert "duplicate of alice's post" in badges and "possible IP theft" in badges
    original_card = page.locator(f".card[data-post='{site.posts['original']}']")
    original_badges = original_card.locator(".badges").inner_text()
    assert "1 copy" in original_badges and "similar 1" in original_badges
    similar_card = page.locator(f".card[data-post='{site.posts['similar']}']")
    assert "similar 2" in similar_card.locator(".badges").inner_text()  # alice's and bob's
    assert "duplicate" not in similar_card.locator(".badges").inner_text()
    # the title arrives as text: no script ran, no element was made of it
    assert original_card.locator(".title").inner_text() == SCRIPT_TITLE
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".card .title b").count() == 0
    assert _images_loaded(page, ".card img") == 3
    _shot(page, "grid")


def test_post_page_shows_the_copy_beside_the_original(page: Page, site: Site) -> None:
    page.goto(site.url(f"/posts/{site.posts['crop']}"))
    assert page.inner_text("#post-status") == "decided"
    assert page.inner_text(".decision") == "duplicate-reference"
    pair = page.locator(f".pair[data-copy='{site.posts['crop']}']")
    assert "Original by alice" in pair.locator(".original").inner_text()
    assert "Copy by bob" in pair.locator(".copy").inner_text()
    assert "possible IP theft" in pair.locator(".evidence").inner_text()
    assert "keypoints" in pair.locator(".evidence").inner_text()
    assert "accepted by clean-copy" in pair.locator(".evidence").inner_text()
    sources = pair.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert sources[1] == f"/web/posts/{site.posts['crop']}/upload"
    sizes = pair.locator("img").evaluate_all(
        "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    crop_h, crop_w = _crop(_astronaut()).shape[:2]
    assert sizes == [[512, 512], [crop_w, crop_h]]  # the original, and the copy as uploaded
    # the decision's region outlined: where _crop cut the 512x512 astronaut, as fractions
    rect = pair.locator(".original svg.region rect")
    box = [float(rect.get_attribute(a) or "nan") for a in ("x", "y", "width", "height")]
    lo, size = CROP_MARGIN / 512, (512 - 2 * CROP_MARGIN) / 512
    assert np.allclose(box, [lo, lo, size, size], atol=0.02), box
    assert "outlined: the part the copy shows" in pair.locator(".original").inner_text()
    _shot(page, "post")
    pair.screenshot(path=str(ARTIFACTS / "side-by-side.png"))
    page.goto(site.url(f"/posts/{site.posts['original']}"))
    assert page.inner_text(".post-title") == SCRIPT_TITLE
    assert page.locator(f".pair[data-copy='{site.posts['crop']}']").count() == 1
    similar = page.locator(f"section.similar .card[data-post='{site.posts['similar']}']")
    assert "carol" in similar.inner_text()
    _shot(page, "post-original")


def test_post_page_says_which_picture_the_verifier_refused_and_why(page: Page, site: Site) -> None:
    """The astronaut without its blue channel is near the original in the hashes, and the
    colours rule refuses the pair: its post names the original, the rule and the figure."""
    page.goto(site.url(f"/posts/{site.posts['similar']}"))
    assert page.inner_text(".decision") == "merge-center"
    refused = page.locator(f"ul.refused li[data-entry='{site.posts['original']}']").first
    text = refused.inner_text()
    assert text.startswith(f"refused {site.posts['original'][:12]}"), text
    assert re.search(r"by colours: chroma_flip 0\.\d+ > max_chroma_flip 0\.1", text), text
    _shot(page, "post-refused")


def test_alerts_show_both_authors_and_both_images(page: Page, site: Site) -> None:
    page.goto(site.url("/alerts"))
    row = page.locator(f".alert-row[data-alert='{site.posts['crop']}']")
    assert "alice" in row.locator(".original").inner_text()
    assert "bob" in row.locator(".copy").inner_text()
    assert _images_loaded(page, ".alert-row img") == 2
    _shot(page, "alerts")


def test_one_blob_for_the_original_and_its_copy(site: Site) -> None:
    """The crop added no object: the bucket holds the original and the similar picture."""
    keys = set(ObjectStore(site.settings).list_keys())
    expected = {_blob(encode(_astronaut(), ".png")), _blob(_similar_png())}
    assert keys == expected, keys
    assert _blob(encode(_crop(_astronaut()), ".png")) not in keys


def _blob(image: bytes) -> str:
    return blob_key(hashlib.sha256(image).hexdigest())


def _publish_with_the_producer_api(settings: Settings, image: bytes, author: str) -> str:
    """Publish as ``picnix replay`` does (no API, so no recorded upload position); in a thread
    of its own, since the sync Playwright API keeps an event loop running in this one."""
    from producers.publisher import UploadPublisher, build_upload

    post_id = str(uuid.uuid4())
    upload = build_upload(post_id, author, "replayed copy", image, settings.max_image_bytes)

    async def publish() -> None:
        async with UploadPublisher(settings) as publisher:
            await publisher.publish(upload)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish()).result(timeout=60)
    return post_id


def test_a_copy_published_by_another_producer_shows_the_stored_image(
    page: Page, site: Site
) -> None:
    post_id = _publish_with_the_producer_api(site.settings, encode(_astronaut(), ".png"), "dave")

    def decided() -> bool:
        resp = page.request.get(site.url(f"/web/posts/{post_id}"))
        return resp.status == 200 and resp.json()["status"] == "decided"

    wait_for("the replayed copy decided", decided, timeout=DECISION_TIMEOUT_MS / 1000)
    page.goto(site.url(f"/posts/{site.posts['original']}"))
    pair = page.locator(f".pair[data-copy='{post_id}']")
    assert "Copy by dave" in pair.inner_text()
    assert "its own bytes are not kept" in pair.locator(".copy").inner_text()
    sha = hashlib.sha256(encode(_astronaut(), ".png")).hexdigest()
    assert pair.locator(".copy img").get_attribute("src") == f"/web/images/{sha}"
    assert "identical bytes" in pair.locator(".evidence").inner_text()
    assert _images_loaded(page, f".pair[data-copy='{post_id}'] img") == 2


def test_dashboard_draws_prometheus_series(page: Page, site: Site) -> None:
    page.goto(site.url("/dashboard"))
    # (a locator, not wait_for_function: the page's CSP refuses evaluating strings)
    expect(page.locator(".chart[data-loaded=true]")).to_have_count(6, timeout=30_000)
    # the uploads just made reach Prometheus with its next scrapes of the workers
    page.wait_for_selector(
        ".chart[data-panel=uploads] svg polyline", timeout=60_000
    )
    page.wait_for_selector(
        ".chart[data-panel=latency] svg polyline", timeout=60_000
    )
    # and the copy's bytes, saved, and its share of the decisions, once the decider's worker
    # has been scraped after it
    bytes_saved = page.locator(".chart[data-panel=bytes_saved] .legend")
    expect(bytes_saved).to_contain_text(re.compile(r"bytes saved: [1-9]"), timeout=60_000)
    dedup = page.locator(".chart[data-panel=dedup] .legend")
    expect(dedup).to_contain_text(re.compile(r"dedup rate: [1-9]"), timeout=60_000)
    titles = page.locator(".chart-title").all_inner_texts()
    assert any("Uploads" in t for t in titles) and any("lag" in t for t in titles)
    resp = page.request.get(site.url("/web/dashboard/uploads?minutes=15"))
    body = resp.json()
    assert resp.status == 200 and body["lines"] and body["lines"][0]["points"]
    _shot(page, "dashboard")


def test_edit_and_delete_travel_through_the_pipeline(page: Page, site: Site) -> None:
    crop = site.posts["crop"]
    page.goto(site.url(f"/posts/{crop}"))
    page.click("details.edit summary")
    page.fill("details.edit input[name=title]", "Renamed by the moderator")
    page.click("details.edit form.stack button[type=submit]")
    assert "Edit sent" in page.inner_text(".notice")

    def renamed() -> bool:
        page.goto(site.url(f"/posts/{crop}"))
        return page.inner_text(".post-title") == "Renamed by the moderator"

    wait_for("the edit applied", renamed, timeout=60)
    page.click("details.edit summary")
    page.click("form.delete button")
    assert re.search(r"Deletion of post .* sent", page.inner_text(".notice"))

    def gone() -> bool:
        resp = page.request.get(site.url(f"/posts/{crop}"))
        return resp.status == 404

    wait_for("the deletion applied", gone, timeout=60)
    assert _blob(encode(_astronaut(), ".png")) in ObjectStore(site.settings).list_keys()


def test_sign_out_ends_the_session(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    page.click("form.signout button")
    assert "/sign-in" in page.url
    page.goto(site.url("/"))
    assert "/sign-in" in page.url
