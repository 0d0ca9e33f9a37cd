"""The aligned-pixel rules as one ordered table, and the walk over it that makes a verdict.

Why a table: which rule accepted a pair, or which refused it and on which figure, should be
readable from one place, and a rule should change in its own module with its own thresholds
and tests. The order is the rules' logic: coverage, colours and a lone shared silhouette
refuse what the others cannot judge (their refusals are final); the clean-copy rule accepts
most copies; the overlay rules accept what it refuses for a pasted caption or stickers, and
refuse finally a pasted overlay on another picture. A pair no rule accepts is refused by the
final refusal, else by the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream_processors.engine.verify.rules import (
    clean_copy,
    colour,
    coverage,
    overlay,
    overlays,
    silhouette,
)
from stream_processors.engine.verify.verdict import Finding, Refusal, Verdict

if TYPE_CHECKING:
    from stream_processors.engine.verify.evidence import PixelCheck
    from stream_processors.engine.verify.thresholds import PixelThresholds


@dataclass(frozen=True)
class Rule:
    """A rule of the table: its name (as a refusal names it) and its judgement of a pair,
    None when it has nothing against the pair and no acceptance to give."""

    name: str
    judge: Callable[[PixelCheck, PixelThresholds], Finding | None]


RULES: tuple[Rule, ...] = (
    Rule("coverage", coverage.judge),
    Rule("colours", colour.judge),
    Rule("silhouette", silhouette.judge),
    Rule("clean-copy", clean_copy.judge),
    Rule("overlay", overlay.judge),
    Rule("overlays", overlays.judge),
)


def judge(check: PixelCheck, t: PixelThresholds, rules: tuple[Rule, ...] = RULES) -> Verdict:
    """Walk the rules in order: the first acceptance decides, or a final refusal; when the
    walk ends with neither, the first refusal does. Every refusal on the way is kept."""
    refusals: list[Refusal] = []
    for rule in rules:
        finding = rule.judge(check, t)
        if finding is None:
            continue
        if finding.accepted:
            return Verdict(True, finding.rule, tuple(refusals))
        refusals.append(Refusal(rule.name, finding.rule, finding.why))
        if finding.final:
            return Verdict(False, finding.rule, tuple(refusals))
    if not refusals:
        raise ValueError(f"no rule of {[r.name for r in rules]} judged the pair")
    return Verdict(False, refusals[0].rule, tuple(refusals))
