"""A decision's refusals as the API reads them from the Postgres sink's jsonb columns, and as
the post page shows them: which stored picture the verifier refused, by which rule, and why."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from schemas.events import RefusalInfo, RefusedCandidateInfo
from sinks.blob_keys import blob_key
from web.pages.render import _ENV
from web.queries import post_from_row

CLEAN_COPY = RefusalInfo("clean-copy", "changed-detail", "bad 0.0039 > max_bad 0.0005")
COLOURS = RefusedCandidateInfo(
    "p-original-0001", "p-original-0001", "default:hash+pixels",
    (RefusalInfo("colours", "colours-changed", "chroma_flip 0.222 > max_chroma_flip 0.1"),),
)
GEOMETRY = RefusedCandidateInfo(
    "p-other", "p-other", "default:orb+ransac+pixels",
    (
        RefusalInfo("geometry", "no-geometry", "9 inliers < min_inliers 10"),
        RefusalInfo("geometry", "no-geometry", "mirrored: 4 matches < min_matches 8"),
    ),
)


def _row(**overrides: Any) -> dict[str, Any]:
    """A row of queries._POST_COLUMNS, the refusals as psycopg reads jsonb: plain lists."""
    row: dict[str, Any] = {
        "post_id": "p-copy", "author": "bob", "title": "t", "description": "",
        "uploaded_at": "2026-01-01T00:00:00+00:00", "decision": "duplicate-reference",
        "decided_seq": 3, "byte_size": 10, "image_id": "p-original-0001", "sha256": "0" * 64,
        "image_bytes": 10, "width": 2, "height": 2, "image_format": "png",
        "cluster_id": "p-original-0001", "first_post_id": "p-original-0001",
        "first_author": "alice", "distance": 20.0, "method": "default:hash+pixels",
        "region_x0": None, "region_y0": None, "region_x1": None, "region_y1": None,
        "reason": "overlay", "reason_refusals": [dataclasses.asdict(CLEAN_COPY)],
        "unexplained_share": None, "own_blob_key": None,
        "refused": [dataclasses.asdict(COLOURS), dataclasses.asdict(GEOMETRY)],
        "alert_author": None, "original_author": None, "alert_at": None, "platform": None,
        "delete_requested_at": None,
    }
    return row | overrides


def test_the_api_reads_the_refusals_and_none_for_posts_recorded_before() -> None:
    post = post_from_row(_row())
    assert post.decision is not None and post.decision.evidence is not None
    assert post.decision.evidence.reason_refusals is not None
    assert post.decision.evidence.reason_refusals[0].why == CLEAN_COPY.why
    assert post.decision.refused is not None
    assert [c.entry_id for c in post.decision.refused] == ["p-original-0001", "p-other"]
    assert post.decision.refused[1].refusals[1].rule == "geometry"
    old = post_from_row(_row(reason_refusals=None, refused=None))
    assert old.decision is not None and old.decision.refused is None
    assert old.decision.evidence is not None and old.decision.evidence.reason_refusals is None


def test_the_post_page_names_each_refused_picture_its_rule_and_why() -> None:
    post = post_from_row(_row())
    html = _ENV.get_template("post.html").render(
        post=post, duplicates=[], similar=[], copies=[], as_uploaded={}, counts={},
        notice=None, request=SimpleNamespace(url=SimpleNamespace(path="/posts/p-copy")),
        session=SimpleNamespace(csrf_token="t", key=SimpleNamespace(name="mod", key_id="k")),
    )
    # the figures are text: their comparison signs escaped
    assert "bad 0.0039 &gt; max_bad 0.0005" in html
    assert '<code>overlay</code>, after <span class="refusal" data-rule="clean-copy">' in html
    assert '<code title="changed-detail">clean-copy</code> refused: bad 0.0039' in html
    assert 'refused <a href="/posts/p-original-0001"' in html
    assert '<code title="colours-changed">colours</code>: chroma_flip 0.222' in html
    assert "mirrored: 4 matches &lt; min_matches 8" in html
    assert "(keypoints)" in html and "(hash alignment)" in html


def test_the_post_page_says_a_copys_added_content_was_kept_and_its_share() -> None:
    own = "ab" * 32
    post = post_from_row(_row(unexplained_share=0.234, own_blob_key=blob_key(own)))
    assert post.decision is not None and post.decision.evidence is not None
    assert post.decision.evidence.own_image == f"/v1/images/{own}"
    html = _ENV.get_template("post.html").render(
        post=post, duplicates=[], similar=[], copies=[], as_uploaded={}, counts={},
        notice=None, request=SimpleNamespace(url=SimpleNamespace(path="/posts/p-copy")),
        session=SimpleNamespace(csrf_token="t", key=SimpleNamespace(name="mod", key_id="k")),
    )
    assert "23 % of the upload is not explained by the original: its added content was kept" in html
    plain = post_from_row(_row(unexplained_share=0.0))
    assert plain.decision is not None and plain.decision.evidence is not None
    assert plain.decision.evidence.own_image is None
