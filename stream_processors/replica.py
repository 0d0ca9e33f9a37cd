"""A worker's replica of the index, fed from the index log, and the match made on it. No Kafka.

Why: verifying an upload's candidates is the expensive part of a decision and needs only to read
the index, so every worker keeps its own copy, built from ``picnix.index`` (the commit's record
of every entry added or removed), and matches the uploads of its own ``picnix.features``
partitions on it. A match says what the replica found and at which position of the log; the
commit settles it against the few changes since (``Decider.settle``).

Records are applied once each, by membership: a record the replica already reflects (an entry
it holds, a removal of one it does not) is skipped, so a re-sent record after a crash, or the
log read again from its start, changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from schemas.events import (
    INDEX_TOPIC_EVENTS,
    FeatureEvent,
    IndexEntryRecord,
    IndexRemovalRecord,
    MatchEvent,
    parse_event,
)
from stream_processors.decider import (
    checks_to_info,
    decision_from_info,
    decision_to_info,
    queries_to_info,
)
from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, Settled
from stream_processors.engine.method import DedupMethod


class IndexReplica:
    """One worker's copy of the index; ``position`` is the index-log position it reflects."""

    def __init__(self, method: DedupMethod) -> None:
        self._method = method

    @property
    def position(self) -> int:
        return self._method.position

    @property
    def method(self) -> DedupMethod:
        return self._method

    def apply(self, record: bytes) -> bool:
        """Apply one ``picnix.index`` record; returns whether it changed the replica. A record
        behind the replica's position (a re-send) is applied at that position, as the log
        cannot move back."""
        event = parse_event(record, INDEX_TOPIC_EVENTS)
        assert isinstance(event, IndexEntryRecord | IndexRemovalRecord)
        seq = max(event.seq, self._method.position)
        if isinstance(event, IndexEntryRecord):
            if self._method.holds(event.upload_id):
                return False
            signature = self._method.replica_from_bytes(event.upload_id, event.entry)
            self._method.apply(decision_from_info(event.upload_id, event.decision), signature, seq)
            return True
        if not self._method.holds(event.upload_id):
            return False
        # an entry is an image or an alias, and each removal is a no-op for the other kind
        self._method.remove_alias(event.upload_id, seq)
        self._method.remove(event.upload_id, seq)
        return True

    def match(self, feature: FeatureEvent, record: bytes) -> MatchEvent:
        """Evaluate one upload on the replica as it is now (``start_match``, then
        ``catch_up`` at once). ``record`` is the feature event as it arrived."""
        return self.catch_up(self.start_match(feature, record)).event

    def start_match(self, feature: FeatureEvent, record: bytes) -> Matched:
        """Evaluate one upload on the replica as it is now. ``record`` is the feature event as
        it arrived, passed on whole to the commit. An upload extracted by another method is
        passed on unevaluated: the commit refuses it with its reason."""
        started = time.perf_counter()
        position = self._method.position
        checks = CheckMemo()
        if feature.method != self._method.name:
            return Matched(feature.upload_id, record, position, 0.0, None, None, checks)
        signature = self._method.signature_from_bytes(feature.signature)
        decision = self._method.evaluate(feature.upload_id, signature, checks)
        seconds = time.perf_counter() - started
        return Matched(feature.upload_id, record, position, seconds, decision, signature, checks)

    def catch_up(self, matched: Matched) -> CaughtUp:
        """The match settled against the index changes this replica applied while it was being
        evaluated (the worker applies the index log between a match and its catch-up): the
        decision it would make now, exactly, at the position now, as the event to send.

        Why: the commit settles a match against every change after its position, and each one
        that could alter the outcome makes the sequential commit evaluate again, verifying the
        candidates those changes brought (5-50 ms each). A match takes tens of milliseconds,
        in which the other workers' uploads are committed; settling those here, in parallel,
        leaves the commit only the changes made after the match was sent."""
        started = time.perf_counter()
        decision, position, settled = matched.decision, matched.position, None
        if decision is not None and position != self._method.position:
            settled = self._method.settle(
                matched.upload_id, matched.signature, decision, position, matched.checks
            )
            decision, position = settled.decision, self._method.position
        event = MatchEvent(
            upload_id=matched.upload_id,
            decision=None if decision is None else decision_to_info(decision),
            position=position,
            match_seconds=matched.seconds + time.perf_counter() - started,
            feature=matched.record,
            checks=checks_to_info(matched.checks),
            queries=queries_to_info(matched.checks),
        )
        return CaughtUp(event, position - matched.position, settled)


@dataclass(frozen=True)
class Matched:
    """A match as evaluated, before its catch-up: the upload's feature ``record``, the
    replica's ``position`` and the evaluation's ``seconds``, its ``decision`` (None: not
    evaluated, extracted by another method), the parsed signature and the memo of its checks
    and index answers, which the catch-up settles from and the event carries."""

    upload_id: str
    record: bytes
    position: int
    seconds: float
    decision: Decision | None
    signature: Any
    checks: CheckMemo


@dataclass(frozen=True)
class CaughtUp:
    """The match to send, how many index-log positions its catch-up moved it, and the
    catch-up's settlement (None: nothing to catch up)."""

    event: MatchEvent
    positions: int = 0
    settled: Settled | None = None
