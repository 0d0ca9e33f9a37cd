"""A second evaluation of an upload reuses the verifications the first ran (engine.checks).

The commit evaluates a match again when an index change since could alter it; the match's
verifications travel with it on ``picnix.matches`` so the commit runs only new ones, and decides
exactly as a fresh evaluation.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from schemas.events import MatchEvent
from stream_processors.decider import checks_from_info, checks_to_info, queries_to_info
from stream_processors.engine.checks import CheckKey, CheckMemo, Outcome, Refused, Verified
from stream_processors.engine.decision import DecisionKind, Region, RuleRefusal
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import DefaultMethod, DefaultSignature
from stream_processors.engine.index_queries import QueryRecord
from tests.imagegen import distinct_png, encode


def _sig(method: DefaultMethod, bgr: np.ndarray, ext: str = ".png") -> DefaultSignature:
    return method.extract(decode_image(encode(bgr, ext)))


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    return [
        np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        for rgb in (data.astronaut(), data.chelsea(), data.coffee())
    ]


def test_a_memo_runs_each_check_once_and_remembers_refusals() -> None:
    memo = CheckMemo()
    calls: list[str] = []

    refused = Refused((RuleRefusal("clean-copy", "changed-detail", "bad 0.0100 > max_bad"),))

    def refuse() -> Outcome:
        calls.append("refuse")
        return refused

    key = CheckKey("entry", "default:hash+pixels v0")
    assert memo.run(key, refuse) == refused
    assert memo.run(key, refuse) == refused  # with its refusals, as the first run said
    assert calls == ["refuse"]
    assert (memo.ran, memo.reused, len(memo)) == (1, 1, 1)


def test_evaluating_again_with_the_memo_verifies_nothing_and_decides_the_same(
    pictures: list[np.ndarray],
) -> None:
    method = DefaultMethod()
    for i, bgr in enumerate(pictures):
        sig = _sig(method, bgr)
        method.apply(method.evaluate(f"p{i}", sig), sig)
    for k in range(3):
        other = method.extract(decode_image(distinct_png(k)))
        method.apply(method.evaluate(f"d{k}", other), other)
    h, w = pictures[0].shape[:2]
    crop = np.ascontiguousarray(pictures[0][h // 6 : h - h // 6, w // 6 : w - w // 6])
    copy = _sig(method, crop, ".jpg")
    first = CheckMemo()
    decision = method.evaluate("copy", copy, first)
    assert decision.kind is DecisionKind.DUPLICATE_REFERENCE and decision.image_id == "p0"
    assert first.ran >= 1
    again = checks_from_info(checks_to_info(first))  # as the match event carries them
    assert method.evaluate("copy", copy, again) == decision
    assert (again.ran, again.reused) == (0, first.ran)
    assert method.evaluate("copy", copy) == decision  # and as without any memo


def test_checks_survive_the_match_events_record() -> None:
    memo = CheckMemo(
        [
            (CheckKey("a", "default:orb+ransac+pixels views um"), Verified(
                "overlay", Region(0.1, 1 / 3, 0.9, 0.7),
                (RuleRefusal("clean-copy", "changed-detail", "bad 0.0131 > max_bad 0.0005"),),
            )),
            (CheckKey("b", "default:hash+pixels v1"), Refused((
                RuleRefusal("colours", "colours-changed", "chroma_flip 0.300 > max 0.1"),
            ))),
            (CheckKey("d", "default:orb+ransac+pixels views u"), Refused((
                RuleRefusal("geometry", "no-geometry", "3 matches < min_matches 8"),
            ))),
            (CheckKey("e", "default:hash+quick-pixels v1"), Refused()),
            (CheckKey("c", "default:hash+quick-pixels v0"), Verified("quick-clean-copy")),
        ]
    )
    event = MatchEvent(
        upload_id="u", decision=None, position=3, match_seconds=0.01, feature=b"\x00f",
        checks=checks_to_info(memo),
    )
    parsed = MatchEvent.from_record(event.to_record())
    assert parsed == event
    assert checks_from_info(parsed.checks).outcomes() == memo.outcomes()


def test_index_answers_survive_the_match_events_record_to_the_last_bit() -> None:
    """A word score the commit ranks an added entry against must be the float the match had."""
    record = QueryRecord([
        ("sha", ()),
        ("hash v0 r40 l3", (("a", 7.0), ("b", 31.0))),
        ("words view1 l12 m4", (("c", 534.1146723419237), ("a", 0.1 + 0.2), ("d", 1e-300))),
    ])
    memo = CheckMemo(queries=record)
    event = MatchEvent(
        upload_id="u", decision=None, position=3, match_seconds=0.01, feature=b"",
        queries=queries_to_info(memo),
    )
    parsed = MatchEvent.from_record(event.to_record())
    assert parsed == event
    assert checks_from_info(parsed.checks, parsed.queries).queries.items() == record.items()


def test_a_match_event_without_checks_still_parses() -> None:
    event = MatchEvent(
        upload_id="u", decision=None, position=-1, match_seconds=0.0, feature=b"",
    )
    parsed = MatchEvent.from_record(event.to_record())
    assert parsed.checks == () and parsed.queries == ()


def test_a_malformed_checks_field_is_a_schema_error_naming_it() -> None:
    from schemas.envelope import SchemaError, pack

    record = pack(
        {
            "schema": MatchEvent.SCHEMA, "version": MatchEvent.VERSION, "upload_id": "u",
            "decision": None, "position": 0, "match_seconds": 0.0,
            "checks": [{"entry_id": "a", "check": "x", "reason": 3}],
        },
        b"",
    )
    with pytest.raises(SchemaError) as exc:
        MatchEvent.from_record(record)
    assert "picnix.MatchEvent.checks[0].reason" in str(exc.value)
