"""The decide stage's logic, free of Kafka.

State lives in two mappings the caller provides (Faust tables in the worker, dicts in tests):
``decisions`` (upload id → DecisionEvent record) makes a re-delivered upload re-emit the same
decision without touching the engine; ``stored`` (image id → StoredImageRecord) lets a restarted
worker rebuild the in-memory engine by re-applying its records in order.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from schemas.events import DecisionEvent, FeatureEvent, StoredImageRecord
from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.method import DedupMethod


@dataclass(frozen=True)
class DecideOutcome:
    """The decision to emit and whether it was already made before (a re-delivery)."""

    event: DecisionEvent
    redelivered: bool


class MethodMismatch(ValueError):
    """A feature event was extracted by another method than the one deciding."""


class Decider:
    def __init__(
        self,
        method: DedupMethod,
        decisions: MutableMapping[str, bytes],
        stored: MutableMapping[str, bytes],
    ) -> None:
        self._method = method
        self._decisions = decisions
        self._stored = stored
        self._restored = False

    def restore(self) -> int:
        """Re-apply every stored image in decision order; returns how many were applied."""
        records = sorted(
            (StoredImageRecord.from_record(raw) for raw in self._stored.values()),
            key=lambda r: r.seq,
        )
        for record in records:
            decision = Decision(
                upload_id=record.upload_id,
                kind=DecisionKind(record.kind),
                image_id=record.image_id,
                cluster_id=record.cluster_id,
                distance=record.distance,
                method=record.method,
            )
            self._method.apply(decision, self._method.signature_from_bytes(record.signature))
        self._restored = True
        return len(records)

    def decide(self, feature: FeatureEvent, seq: int) -> DecideOutcome:
        if not self._restored:
            self.restore()
        previous = self._decisions.get(feature.upload_id)
        if previous is not None:
            return DecideOutcome(DecisionEvent.from_record(previous), redelivered=True)
        if feature.method != self._method.name:
            raise MethodMismatch(
                f"upload {feature.upload_id} was extracted with {feature.method!r}, "
                f"decide runs {self._method.name!r}"
            )
        signature = self._method.signature_from_bytes(feature.signature)
        decision = self._method.evaluate(feature.upload_id, signature)
        self._method.apply(decision, signature)
        event = _decision_event(decision, feature, seq)
        if decision.stores_image:
            self._stored[decision.image_id] = StoredImageRecord(
                seq=seq,
                upload_id=decision.upload_id,
                kind=str(decision.kind),
                image_id=decision.image_id,
                cluster_id=decision.cluster_id,
                distance=decision.distance,
                method=decision.method,
                signature=feature.signature,
            ).to_record()
        self._decisions[feature.upload_id] = event.to_record()
        return DecideOutcome(event, redelivered=False)


def _decision_event(decision: Decision, feature: FeatureEvent, seq: int) -> DecisionEvent:
    return DecisionEvent(
        upload_id=decision.upload_id,
        kind=str(decision.kind),
        image_id=decision.image_id,
        cluster_id=decision.cluster_id,
        distance=decision.distance,
        method=decision.method,
        seq=seq,
        author=feature.author,
        title=feature.title,
        description=feature.description,
        uploaded_at=feature.uploaded_at,
        sha256=feature.sha256,
        byte_size=feature.byte_size,
        width=feature.width,
        height=feature.height,
        image_format=feature.image_format,
        upload_ref=feature.upload_ref,
    )
