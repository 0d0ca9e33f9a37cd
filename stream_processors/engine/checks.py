"""The verifications one evaluation of an upload ran, so evaluating it again runs only new ones.

Why this exists: the commit evaluates an upload again whenever an index change since its match
could alter the outcome (engine.delta). On real images that is a quarter of the commits, mostly
because an entry committed inside the window shares visual words with the upload. A full
evaluation is mostly keypoint and pixel checks (tens of milliseconds), while its index queries
take a few. Each check is a pure function of the upload's signature and one stored entry's record.
The check is named by that entry's id, not by a replica's own key, and by its parameters. So what
the match's replica verified is what the commit would verify. The commit looks those up and
verifies only the candidates the changes brought in, and still decides exactly as the full
evaluation would. The memo also carries the answers of the match's index queries, which the
commit merges with the entries added since (engine.index_queries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stream_processors.engine.decision import Region, RuleRefusal
from stream_processors.engine.index_queries import QueryRecord


@dataclass(frozen=True)
class Verified:
    """A check that passed: the rule that accepted the pair (recorded as the decision's reason)
    and, for a check that aligned the two by keypoints, where the upload lies in the stored
    picture (None: the check compared whole pictures); ``refusals``: the rules that refused
    the pair before that one accepted it; ``unexplained_share``: the share of the upload the
    stored picture does not explain (engine.verify.unexplained; 0 for a check that accepts
    only clean copies)."""

    reason: str
    region: Region | None = None
    refusals: tuple[RuleRefusal, ...] = ()
    unexplained_share: float = 0.0


@dataclass(frozen=True)
class Refused:
    """A check that did not pass, and the rules that refused the pair (empty for a check
    that only accepts, such as the quick clean-copy check).

    Why a value and not None: the refusals are part of the decision's evidence, so a commit
    that reuses a match's outcomes must get them too, to decide exactly as a fresh evaluation."""

    refusals: tuple[RuleRefusal, ...] = ()


# What one check says of its candidate
Outcome = Verified | Refused
# One candidate's verification, run lazily
Check = Callable[[], Outcome]


@dataclass(frozen=True)
class CheckKey:
    """Which verification: of the stored entry ``entry_id`` (an image's or alias's upload id),
    by ``check``, the check with its parameters (the evidence string, variant, views)."""

    entry_id: str
    check: str


class CheckMemo:
    """The outcome of every check run for one upload, refusals included, and the answers of
    its index queries (engine.index_queries), for the evaluation that follows. ``ran`` and
    ``reused`` count this memo's own lookups."""

    def __init__(
        self,
        known: Iterable[tuple[CheckKey, Outcome]] = (),
        queries: QueryRecord | None = None,
    ) -> None:
        self._outcomes: dict[CheckKey, Outcome] = dict(known)
        self.queries = QueryRecord() if queries is None else queries
        self.ran = 0
        self.reused = 0

    def run(self, key: CheckKey, check: Check) -> Outcome:
        if key in self._outcomes:
            self.reused += 1
            return self._outcomes[key]
        outcome = check()
        self._outcomes[key] = outcome
        self.ran += 1
        return outcome

    def outcomes(self) -> list[tuple[CheckKey, Outcome]]:
        return list(self._outcomes.items())

    def __len__(self) -> int:
        return len(self._outcomes)
