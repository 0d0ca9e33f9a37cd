"""A decision's evidence names the candidates the verifier refused and the rule that refused each
(engine.decision.RefusedCandidate), and, for an accepted copy, the rules that refused it before
the accepting one; a commit that settles or re-evaluates a match records exactly the same."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from schemas.events import DecisionEvent, ImageInfo, PostInfo, UploadRef
from stream_processors.decider import (
    checks_from_info,
    checks_to_info,
    decision_from_info,
    decision_to_info,
)
from stream_processors.engine import default_method as dm
from stream_processors.engine import pair_checks as pc
from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, DecisionKind, RefusedCandidate
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import DefaultMethod, DefaultSignature, Evidence
from stream_processors.engine.verify import PixelRule
from tests.imagegen import distinct_png, encode


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _sig(method: DefaultMethod, payload: bytes) -> DefaultSignature:
    return method.extract(decode_image(payload))


def _decide(method: DefaultMethod, upload_id: str, payload: bytes) -> Decision:
    sig = _sig(method, payload)
    decision = method.evaluate(upload_id, sig)
    method.apply(decision, sig)
    return decision


def _no_blue(img: np.ndarray) -> bytes:
    """Another picture to the verifier (no hue filter removes a channel), near in the hashes."""
    out = img.copy()
    out[:, :, 0] = 0
    return encode(out, ".png")


def _captioned(img: np.ndarray) -> bytes:
    out = img.copy()
    cv2.putText(out, "NICE", (30, 70), cv2.FONT_HERSHEY_DUPLEX, 2, (255, 255, 255), 4, cv2.LINE_AA)
    return encode(out, ".png")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return _bgr(data.astronaut())


def test_a_new_image_records_the_candidate_refused_and_the_rule_that_refused_it(
    astronaut: np.ndarray,
) -> None:
    m = DefaultMethod()
    _decide(m, "orig", encode(astronaut, ".png"))
    d = _decide(m, "no-blue", _no_blue(astronaut))
    assert d.kind is DecisionKind.MERGE_CENTER and d.cluster_id == "orig"
    first = d.refused[0]
    assert (first.entry_id, first.image_id, first.check) == ("orig", "orig", Evidence.HASH_PIXELS)
    colours = first.refusals[0]
    assert (colours.rule, colours.finding) == ("colours", PixelRule.COLOURS_CHANGED)
    assert colours.why.startswith("chroma_flip ") and "> max_chroma_flip 0.1" in colours.why
    assert d.reason == "" and d.reason_refusals == ()


def test_an_accepted_overlay_records_the_rule_that_refused_it_first(
    astronaut: np.ndarray,
) -> None:
    m = DefaultMethod()
    _decide(m, "orig", encode(astronaut, ".png"))
    d = _decide(m, "caption", _captioned(astronaut))
    assert d.is_duplicate and d.image_id == "orig" and d.reason == PixelRule.OVERLAY
    [clean] = d.reason_refusals
    assert (clean.rule, clean.finding) == ("clean-copy", PixelRule.CHANGED_DETAIL)
    assert clean.why.startswith("bad ") and clean.why.endswith("> max_bad 0.0005")
    assert d.refused == ()  # the first candidate tried was the copy's original


def test_a_candidate_refused_on_its_hash_alignment_before_its_keypoints_accept_it() -> None:
    """The caption on the cat is too large for the overlay rule at the hash's alignment; the
    keypoint alignment accepts it: the refusal stays in the evidence, before the acceptance."""
    m = DefaultMethod()
    cat = _bgr(data.chelsea())
    _decide(m, "orig", encode(cat, ".png"))
    d = _decide(m, "caption", _captioned(cat))
    assert d.is_duplicate and d.method == Evidence.KEYPOINTS and d.reason
    [refused] = d.refused
    assert (refused.entry_id, refused.check) == ("orig", Evidence.HASH_PIXELS)
    assert [r.rule for r in refused.refusals] == ["clean-copy", "overlay", "overlays"]
    assert refused.refusals[1].why.startswith("box ")
    assert "clean-copy" in [r.rule for r in d.reason_refusals]


def test_a_candidate_whose_keypoints_align_nothing_is_refused_by_geometry() -> None:
    m = DefaultMethod()
    _decide(m, "d0", distinct_png(0))
    d = _decide(m, "d1", distinct_png(1))
    assert d.kind is DecisionKind.NEW_CLUSTER
    [refused] = d.refused
    assert (refused.entry_id, refused.check) == ("d0", Evidence.KEYPOINTS)
    geometry = refused.refusals[0]
    assert (geometry.rule, geometry.finding) == (pc.GEOMETRY_RULE, pc.NO_GEOMETRY)
    assert "inliers" in geometry.why and "< min_inliers 10" in geometry.why


def test_a_stretched_copy_is_refused_by_the_hash_alignment_for_its_aspect(
    astronaut: np.ndarray,
) -> None:
    m = DefaultMethod()
    _decide(m, "orig", encode(astronaut, ".png"))
    stretched = cv2.resize(astronaut, (512, 230), interpolation=cv2.INTER_AREA)
    d = _decide(m, "stretched", encode(stretched, ".png"))
    hashed = next(c for c in d.refused if c.check == Evidence.HASH_PIXELS)
    [aspect] = hashed.refusals
    assert (aspect.rule, aspect.finding) == (pc.DIHEDRAL_RULE, pc.ASPECT_CHANGED)
    assert aspect.why == "aspect change 0.80 > fast_max_aspect_change 0.4"


def test_the_evidence_keeps_the_first_refused_candidates_in_the_order_tried(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = DefaultMethod()
    _decide(m, "orig", encode(astronaut, ".png"))
    sig = _sig(m, _no_blue(astronaut))
    every = m.evaluate("no-blue", sig).refused
    assert [c.check for c in every] == [Evidence.HASH_PIXELS, Evidence.KEYPOINTS]
    monkeypatch.setattr(dm, "MAX_REFUSED_RECORDED", 1)
    assert m.evaluate("no-blue", sig).refused == every[:1]


def test_the_refusals_travel_with_the_decision_event(astronaut: np.ndarray) -> None:
    m = DefaultMethod()
    _decide(m, "orig", encode(astronaut, ".png"))
    for upload_id, payload in (("no-blue", _no_blue(astronaut)), ("cap", _captioned(astronaut))):
        d = m.evaluate(upload_id, _sig(m, payload))
        assert d.refused or d.reason_refusals
        event = DecisionEvent(
            upload_id=upload_id, decision=decision_to_info(d), post=PostInfo("a", "t", "", "now"),
            image=ImageInfo("0" * 64, 1, 1, 1, "png"), upload_ref=UploadRef("t", 0, 1), seq=1,
        )
        parsed = DecisionEvent.from_record(event.to_record())
        assert decision_from_info(upload_id, parsed.decision) == d


def test_a_commit_reusing_the_match_s_refusals_records_what_a_fresh_evaluation_does(
    astronaut: np.ndarray,
) -> None:
    """Evaluated again from the match's checks, nothing is verified again and the refused
    candidates are the same; settled without evaluating again, the match's stand."""
    commit, replica = DefaultMethod(), DefaultMethod()
    original = _sig(commit, encode(astronaut, ".png"))
    for method in (commit, replica):
        method.apply(method.evaluate("orig", original), original)
    position = replica.position
    unrelated = _sig(commit, distinct_png(0))  # committed after the match: changes nothing
    commit.apply(commit.evaluate("d0", unrelated), unrelated)
    sig = _sig(commit, _no_blue(astronaut))
    checks = CheckMemo()
    matched = replica.evaluate("no-blue", sig, checks)
    assert matched.refused and all(isinstance(c, RefusedCandidate) for c in matched.refused)
    fresh = commit.evaluate("no-blue", sig)
    carried = checks_from_info(checks_to_info(checks))
    again = commit.evaluate("no-blue", sig, carried)
    assert again == fresh and carried.ran == 0
    memo = checks_from_info(checks_to_info(checks))
    settled = commit.settle("no-blue", sig, matched, position, memo)
    assert not settled.reevaluated and settled.decision == fresh
