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
        """Evaluate one upload on the replica as it is now. ``record`` is the feature event as
        it arrived, passed on whole to the commit. An upload extracted by another method is
        passed on unevaluated: the commit refuses it with its reason."""
        started = time.perf_counter()
        position = self._method.position
        if feature.method != self._method.name:
            return MatchEvent(
                upload_id=feature.upload_id, decision=None, position=position,
                match_seconds=0.0, feature=record,
            )
        signature = self._method.signature_from_bytes(feature.signature)
        checks = CheckMemo()
        decision = self._method.evaluate(feature.upload_id, signature, checks)
        return MatchEvent(
            upload_id=feature.upload_id, decision=decision_to_info(decision), position=position,
            match_seconds=time.perf_counter() - started, feature=record,
            checks=checks_to_info(checks), queries=queries_to_info(checks),
        )
