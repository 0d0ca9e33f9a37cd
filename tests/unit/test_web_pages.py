"""The web page's pure parts: CSRF checks, the sign-in redirect target, escaping in templates,
and the dashboard's legends and topic filter."""

from __future__ import annotations

import re

import pytest

from infra.settings import Settings
from web.pages import csrf
from web.pages.dashboard import Series, _legend, _topics_regex
from web.pages.render import _ENV, _bytes, _when
from web.pages.routes_signin import _safe_next
from web.problems import Problem


def test_a_form_without_the_expected_csrf_token_is_refused_with_403() -> None:
    token = csrf.new_token()
    csrf.require(token, token, "edit")
    cases = [(token, None, "csrf-token-missing"), (token, "", "csrf-token-missing"),
             (token, csrf.new_token(), "csrf-token-invalid"), (None, token, "csrf-token-invalid")]
    for expected, presented, kind in cases:
        with pytest.raises(Problem) as refused:
            csrf.require(expected, presented, "edit")
        assert refused.value.status == 403 and refused.value.kind == kind
        assert "edit" in refused.value.detail and csrf.FIELD in refused.value.detail


@pytest.mark.parametrize("target, expected", [
    ("/posts/abc?x=1", "/posts/abc?x=1"), ("//evil.example/", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example/", "/"), ("/\tx", "/"), (None, "/"),
    ("", "/"),
])
def test_sign_in_only_returns_to_a_path_on_this_server(target: object, expected: str) -> None:
    assert _safe_next(target) == expected


def test_user_text_in_a_template_is_escaped() -> None:
    html = _ENV.get_template("error.html").render(
        problem=Problem(404, "post-not-found", "no post '<script>alert(1)</script>'"),
        session=None,
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_byte_counts_read_for_people() -> None:
    assert [_bytes(n) for n in (512, 1500, 2_500_000, 3e9, 4e12)] == [
        "512 B", "1.5 KB", "2.5 MB", "3.0 GB", "4000.0 GB",
    ]


def test_legends_name_lines_by_their_labels() -> None:
    assert _legend(Series("q", "sink {sink}"), {"sink": "blob"}) == "sink blob"
    assert _legend(Series("q", "{group} ← {topic}"), {"group": "g", "topic": "t"}) == "g ← t"
    assert _legend(Series("q", "p99"), {}) == "p99"
    assert _legend(Series("q", "{reason}"), {}) == "{reason}"


def test_the_lag_panel_matches_only_this_namespaces_topics() -> None:
    settings = Settings()
    literal = _topics_regex(settings)
    assert literal.startswith('"') and literal.endswith('"')
    pattern = re.compile(literal[1:-1].replace("\\\\", "\\"))  # the PromQL string's value
    for topic in (settings.topic_uploads, settings.topic_features, settings.topic_decisions):
        assert pattern.fullmatch(topic)
    assert not pattern.fullmatch("picnix-test-1234.uploads")
    assert not pattern.fullmatch("picnixXuploads")  # the dot is literal


def test_timestamps_read_to_the_second_in_utc() -> None:
    assert _when("2026-12-03T12:04:48.220975+00:00") == "2026-12-03 12:04:48 UTC"
    assert _when("2026-12-03T13:04:48+01:00") == "2026-12-03 12:04:48 UTC"
    assert _when("yesterday") == "yesterday"
