"""The table of aligned-pixel rules (verify.rules) and the walk over it: which rule accepted a
pair, which refused it, and every refusal on the way."""

from __future__ import annotations

from typing import Any

import cv2
import pytest
from skimage import data

from stream_processors.engine.verify import (
    RULES,
    Finding,
    PixelCheck,
    PixelRule,
    PixelThresholds,
    Refusal,
    Rule,
    Verdict,
    pixel_check,
)
from stream_processors.engine.verify.rules import judge
from tests.unit.verify_fixtures import caption, figures, identity, refusal, thumb

PIXELS = PixelThresholds()


def test_the_rules_in_their_order() -> None:
    """Coverage, colours and a lone silhouette refuse what the others cannot judge; the
    clean-copy rule accepts most copies; the overlay rules take what it refuses for a pasted
    caption or stickers."""
    assert [rule.name for rule in RULES] == [
        "coverage",
        "colours",
        "silhouette",
        "clean-copy",
        "overlay",
        "overlays",
    ]


def _stub(name: str, finding: Finding | None, called: list[str]) -> Rule:
    def answer(check: PixelCheck, t: PixelThresholds) -> Finding | None:
        called.append(name)
        return finding

    return Rule(name, answer)


def test_the_first_acceptance_decides_and_keeps_the_refusals_before_it() -> None:
    called: list[str] = []
    table = (
        _stub("gate", None, called),
        _stub("strict", Finding(PixelRule.CHANGED_DETAIL, why="bad 0.01"), called),
        _stub("lenient", Finding(PixelRule.OVERLAY, accepted=True), called),
        _stub("never", Finding(PixelRule.OVERLAYS, accepted=True), called),
    )
    verdict = judge(figures(), PIXELS, table)
    assert verdict == Verdict(True, PixelRule.OVERLAY)
    assert verdict.refusals == (Refusal("strict", PixelRule.CHANGED_DETAIL, "bad 0.01"),)
    assert called == ["gate", "strict", "lenient"]


def test_a_final_refusal_ends_the_walk_and_names_the_verdict() -> None:
    called: list[str] = []
    table = (
        _stub("strict", Finding(PixelRule.CHANGED_DETAIL), called),
        _stub("overlay", Finding(PixelRule.LAYOUT_DIFFERS, final=True), called),
        _stub("never", Finding(PixelRule.OVERLAYS, accepted=True), called),
    )
    verdict = judge(figures(), PIXELS, table)
    assert verdict == Verdict(False, PixelRule.LAYOUT_DIFFERS)
    assert [r.check for r in verdict.refusals] == ["strict", "overlay"]
    assert called == ["strict", "overlay"]


def test_without_acceptance_or_final_refusal_the_first_refusal_names_the_verdict() -> None:
    table = (
        _stub("strict", Finding(PixelRule.FAINT_CHANGE), []),
        _stub("overlay", Finding(PixelRule.NOT_OVERLAY), []),
    )
    verdict = judge(figures(), PIXELS, table)
    assert verdict == Verdict(False, PixelRule.FAINT_CHANGE)
    assert len(verdict.refusals) == 2


def test_a_table_that_judges_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rule of"):
        judge(figures(), PIXELS, (_stub("gate", None, []),))


def test_verdicts_that_decide_alike_are_equal_whatever_the_refusals() -> None:
    explained = Verdict(
        False, PixelRule.CHANGED_DETAIL, (Refusal("a", PixelRule.NOT_OVERLAY, "x"),)
    )
    assert explained == Verdict(False, PixelRule.CHANGED_DETAIL)


@pytest.mark.parametrize(
    ("fields", "rule", "check"),
    [
        ({}, PixelRule.CLEAN_COPY, None),
        ({"cover_small": PIXELS.min_cover_small - 0.01}, PixelRule.LITTLE_OVERLAP, "coverage"),
        ({"cover_large": PIXELS.min_cover_large - 0.01}, PixelRule.SMALL_PART, "coverage"),
        (
            {"ncc": PIXELS.min_ncc - 0.01, "ncc_unshaded": 0.0},
            PixelRule.LAYOUT_DIFFERS,
            "clean-copy",
        ),
        ({"detail_ncc": PIXELS.min_detail_ncc - 0.01}, PixelRule.DETAIL_DIFFERS, "clean-copy"),
        ({"bad": PIXELS.max_bad * 2}, PixelRule.CHANGED_DETAIL, "clean-copy"),
        ({"bad_faint": PIXELS.max_bad_faint * 2}, PixelRule.FAINT_CHANGE, "clean-copy"),
    ],
)
def test_each_pixel_rule_names_itself(
    fields: dict[str, Any], rule: PixelRule, check: str | None
) -> None:
    verdict = figures(**fields).verdict(PIXELS)
    assert verdict.rule is rule
    assert verdict.accepted is (rule is PixelRule.CLEAN_COPY)
    assert (verdict.refusals[0].check if verdict.refusals else None) == check


def test_real_pairs_are_accepted_and_refused_by_their_named_rule() -> None:
    """The same verdicts as passes() gives, with the rule the evidence records and the
    refusals that explain it."""
    t = thumb(data.astronaut())
    captioned = caption(t, "for sale", (20, 170))
    accepted = pixel_check(captioned, t, identity(captioned, t)).verdict(PIXELS)
    assert accepted == Verdict(True, PixelRule.OVERLAY)
    assert [r.check for r in accepted.refusals] == ["clean-copy"]
    recoloured = t.copy()
    cv2.circle(recoloured, (96, 96), 48, (20, 200, 40), -1, cv2.LINE_AA)
    refused = pixel_check(recoloured, t, identity(recoloured, t)).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.CHANGED_DETAIL
    overlay = refusal(refused, "overlay")
    assert overlay is not None and overlay.rule is PixelRule.NOT_OVERLAY
    assert overlay.why.startswith("box")
