"""The decide stage's logic, free of Kafka.

State lives in mappings the caller provides (Faust tables in the worker, dicts in tests):

- ``posts``: post id → the latest event emitted for it (its decision, or its deletion). A
  re-delivered input re-emits that event and touches nothing else, so at-least-once delivery
  has an exactly-once effect.
- ``stored``: upload id → :class:`StoredImageRecord`, for every upload whose signature is part of
  the engine's state: each stored image (its id is its upload's) and each duplicate the engine
  keeps as an alias of its image. A record holds the signature's small state form (the method's
  own FeatureStore, another table in the worker, holds the local features), so a restarted
  worker rebuilds the in-memory engine by re-applying these records in decision order.
- ``refs``: image id → number of live posts showing it; at zero the image leaves the engine;
  under INDEX_POSITION_KEY, the position of the index log's latest change.

Every change to the engine also goes out as an index-log record (``Emit.index``, for
``picnix.index``): each worker's replica (``stream_processors.replica``) applies them to match
uploads in parallel, and ``settle`` turns a match made on a replica, at an earlier position of
the log, into exactly the decision an evaluation now would make (engine.delta).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from schemas.events import (
    DECISION_TOPIC_EVENTS,
    CheckInfo,
    DecisionEvent,
    DecisionInfo,
    Event,
    FeatureEvent,
    IndexEntryRecord,
    IndexRemovalRecord,
    MatchEvent,
    PostDeletedEvent,
    PostDeleteEvent,
    PostUpdatedEvent,
    PostUpdateEvent,
    QueryInfo,
    RefusalInfo,
    RefusedCandidateInfo,
    RegionInfo,
    StoredImageRecord,
    parse_event,
)
from stream_processors.engine.checks import CheckKey, CheckMemo, Outcome, Refused, Verified
from stream_processors.engine.decision import (
    Decision,
    DecisionKind,
    RefusedCandidate,
    Region,
    RuleRefusal,
    Settled,
)
from stream_processors.engine.delta import NO_POSITION
from stream_processors.engine.index_queries import QueryRecord
from stream_processors.engine.method import DedupMethod

REASON_UNKNOWN_POST = "unknown-post"
REASON_METHOD_MISMATCH = "method-mismatch"
# The id a search probe is evaluated under: no upload id is empty, so it can name no image.
SEARCH_PROBE_ID = ""
# The key of the index log's position in ``refs`` (no image id is empty either)
INDEX_POSITION_KEY = ""


IndexRecord = IndexEntryRecord | IndexRemovalRecord


@dataclass(frozen=True)
class Emit:
    """An event for ``picnix.decisions``; ``redelivered`` if it was emitted before. ``index``:
    the records for ``picnix.index`` of what it changed in the engine (sent again on a
    redelivery: a crash may have lost them, and replicas apply each once)."""

    event: Event
    redelivered: bool
    index: tuple[IndexRecord, ...] = ()


@dataclass(frozen=True)
class Refuse:
    """An input decide cannot apply; it goes to the dead-letter topic with this reason."""

    reason: str
    detail: str


DecideOutcome = Emit | Refuse


@dataclass(frozen=True)
class SearchMatch:
    """The stored image a searched picture is a copy of, and how the engine matched it."""

    image_id: str
    sha256: str
    method: str
    distance: float | None
    region: Region | None
    reason: str


@dataclass(frozen=True)
class SearchResult:
    """What deciding a picture now would say, without deciding it: the stored image it copies,
    or else the cluster it would join (None: it would start one). ``stored_images`` is how many
    images and aliases the engine held when it answered."""

    match: SearchMatch | None
    cluster_id: str | None
    cluster_distance: float | None
    stored_images: int


@dataclass(frozen=True)
class Pending:
    """A feature event that needs a decision: checked and parsed, not decided yet."""

    feature: FeatureEvent
    signature: Any
    seq: int


class Decider:
    def __init__(
        self,
        method: DedupMethod,
        posts: MutableMapping[str, bytes],
        stored: MutableMapping[str, bytes],
        refs: MutableMapping[str, int],
        base: Callable[[], DedupMethod | None] | None = None,
    ) -> None:
        """``base``: where a restore may start from instead of an empty engine (a snapshot of
        the engine at some earlier position over the same store, or None when there is none)."""
        self._method = method
        self._posts = posts
        self._stored = stored
        self._refs = refs
        self._base = base
        self._restored = False

    @property
    def position(self) -> int:
        """The index-log position of the commit's engine."""
        return self._method.position

    def restore(self) -> int:
        """Rebuild the engine from the tables: re-apply every stored image and alias in decision
        order, or, from a base engine at position P, drop what it holds that the tables no longer
        do and re-apply only the records after P. Returns how many records were re-applied."""
        base = self._base() if self._base is not None else None
        after = NO_POSITION
        if base is not None:
            self._method, after = base, base.position
            gone = [e for e in base.entry_ids() if e not in self._stored]
            for entry in gone:  # a deleted post's alias leaves before its image
                base.remove_alias(entry, after)
            for entry in gone:
                base.remove(entry, after)
        records = sorted(
            (r for raw in self._stored.values()
             if (r := StoredImageRecord.from_record(raw)).seq > after),
            key=lambda r: r.seq,
        )
        for record in records:
            decision = decision_from_info(record.upload_id, record.decision)
            signature = self._method.state_from_bytes(record.upload_id, record.signature)
            self._method.apply(decision, signature, record.seq)
        position = self._refs.get(INDEX_POSITION_KEY)
        if position is not None and position > self._method.position:
            self._method.advance_to(position)  # removals after the last surviving entry
        self._restored = True
        return len(records)

    def invalidate(self, method: DedupMethod) -> None:
        """The decide partition left this worker: another may change the tables before it
        comes back, so the engine built from them is dropped; ``method`` (empty) is rebuilt
        from the tables before the next decision."""
        self._method = method
        self._restored = False

    def handle(
        self, event: FeatureEvent | PostUpdateEvent | PostDeleteEvent, seq: int
    ) -> DecideOutcome:
        """begin, evaluate and commit in one call (tests, tools)."""
        step = self.begin(event, seq)
        if isinstance(step, Pending):
            return self.commit(step, self.evaluate(step))
        return step

    def begin(
        self, event: FeatureEvent | PostUpdateEvent | PostDeleteEvent, seq: int
    ) -> Pending | DecideOutcome:
        """Everything but the decision itself: updates, deletions and re-deliveries are answered
        here; an upload to decide comes back as Pending for ``evaluate`` and ``commit``."""
        if not self._restored:
            self.restore()
        if isinstance(event, FeatureEvent):
            return self._begin_decide(event, seq)
        if isinstance(event, PostUpdateEvent):
            return self._update(event, seq)
        return self._delete(event, seq)

    def evaluate(self, pending: Pending) -> Decision:
        """The decision for a pending upload. It only reads state, so the worker runs it off the
        event loop; nothing may change the state between it and ``commit``."""
        return self._method.evaluate(pending.feature.upload_id, pending.signature)

    def settle(self, pending: Pending, match: MatchEvent) -> Settled:
        """The decision for a pending upload from its match on a replica (``match``, made at
        an earlier position of the index log): exactly what ``evaluate`` would say, usually
        without evaluating again. Like ``evaluate`` it only reads state."""
        if match.decision is None:
            raise ValueError(f"upload {match.upload_id} was not matched: nothing to settle")
        matched = decision_from_info(match.upload_id, match.decision)
        return self._method.settle(
            pending.feature.upload_id, pending.signature, matched, match.position,
            checks_from_info(match.checks, match.queries),
        )

    def search(self, signature: Any) -> SearchResult:
        """Evaluate a picture against the current state and keep nothing: the same engine call a
        decision makes, with no ``commit``. Like ``evaluate`` it only reads, so the caller must
        keep decisions from committing while it runs."""
        if not self._restored:
            self.restore()
        decision = self._method.evaluate(SEARCH_PROBE_ID, signature)
        stored = len(self._stored)
        if decision.kind is DecisionKind.DUPLICATE_REFERENCE:
            match = SearchMatch(
                decision.image_id, self._sha256_of_image(decision.image_id), decision.method,
                decision.distance, decision.region, decision.reason,
            )
            return SearchResult(match, decision.cluster_id, None, stored)
        if decision.kind is DecisionKind.MERGE_CENTER:
            return SearchResult(None, decision.cluster_id, decision.distance, stored)
        return SearchResult(None, None, None, stored)

    def _latest(self, post_id: str) -> Event | None:
        raw = self._posts.get(post_id)
        return None if raw is None else parse_event(raw, DECISION_TOPIC_EVENTS)

    def _begin_decide(self, feature: FeatureEvent, seq: int) -> Pending | DecideOutcome:
        latest = self._latest(feature.upload_id)
        if latest is not None:
            return Emit(latest, redelivered=True, index=self._entry_again(feature.upload_id))
        if feature.method != self._method.name:
            return Refuse(
                REASON_METHOD_MISMATCH,
                f"upload {feature.upload_id} was extracted with {feature.method!r}, "
                f"decide runs {self._method.name!r}",
            )
        return Pending(feature, self._method.signature_from_bytes(feature.signature), seq)

    def commit(self, pending: Pending, decision: Decision) -> Emit:
        """Apply a decision to the engine and the tables, and make its event."""
        feature, signature, seq = pending.feature, pending.signature, pending.seq
        if not self._restored:  # invalidated while the decision was being evaluated
            self.restore()
        retained = self._method.apply(decision, signature, seq)
        info = decision_to_info(decision)
        event = DecisionEvent(
            upload_id=decision.upload_id, decision=info, post=feature.post, image=feature.image,
            upload_ref=feature.upload_ref, seq=seq,
        )
        index: tuple[IndexRecord, ...] = ()
        if retained:
            self._stored[decision.upload_id] = StoredImageRecord(
                seq=seq, upload_id=decision.upload_id, decision=info,
                signature=self._method.state_to_bytes(signature),
            ).to_record()
            self._refs[INDEX_POSITION_KEY] = self._method.position
            index = (self._entry_record(seq, decision.upload_id, info, signature),)
        self._refs[decision.image_id] = self._refs.get(decision.image_id, 0) + 1
        self._posts[feature.upload_id] = event.to_record()
        return Emit(event, redelivered=False, index=index)

    def _entry_record(
        self, seq: int, upload_id: str, info: DecisionInfo, signature: Any
    ) -> IndexEntryRecord:
        return IndexEntryRecord(
            seq=seq, upload_id=upload_id, decision=info,
            entry=self._method.replica_to_bytes(signature),
        )

    def _entry_again(self, upload_id: str) -> tuple[IndexRecord, ...]:
        """The index record of an upload decided before, if the engine holds its signature."""
        raw = self._stored.get(upload_id)
        if raw is None:
            return ()
        record = StoredImageRecord.from_record(raw)
        signature = self._method.state_from_bytes(upload_id, record.signature)
        return (self._entry_record(record.seq, upload_id, record.decision, signature),)

    def _update(self, update: PostUpdateEvent, seq: int) -> DecideOutcome:
        latest = self._latest(update.post_id)
        if latest is None or isinstance(latest, PostDeletedEvent):
            state = "was deleted" if latest else "does not exist"
            return Refuse(REASON_UNKNOWN_POST, f"update of post {update.post_id}: it {state}")
        # Updates change no engine state: the Postgres sink applies them in log order, so a
        # re-delivered update writes the same text again.
        return Emit(
            PostUpdatedEvent(
                post_id=update.post_id, title=update.title, description=update.description,
                updated_at=update.updated_at, seq=seq,
            ),
            redelivered=False,
        )

    def _delete(self, delete: PostDeleteEvent, seq: int) -> DecideOutcome:
        latest = self._latest(delete.post_id)
        if isinstance(latest, PostDeletedEvent):
            return Emit(latest, redelivered=True, index=_removals(latest))
        if not isinstance(latest, DecisionEvent):
            return Refuse(REASON_UNKNOWN_POST, f"delete of post {delete.post_id}: no such post")
        image_id = latest.decision.image_id
        before = self._method.position
        if image_id != delete.post_id and self._stored.pop(delete.post_id, None) is not None:
            self._method.remove_alias(delete.post_id, seq)
        remaining = self._refs.get(image_id, 0) - 1
        orphaned = remaining <= 0
        if orphaned:
            self._method.remove(image_id, seq)
            self._stored.pop(image_id, None)
            self._refs.pop(image_id, None)
        else:
            self._refs[image_id] = remaining
        if self._method.position != before:
            self._refs[INDEX_POSITION_KEY] = self._method.position
        event = PostDeletedEvent(
            post_id=delete.post_id,
            image_id=image_id,
            cluster_id=latest.decision.cluster_id,
            sha256=self._image_sha256(latest),
            orphaned=orphaned,
            deleted_at=delete.deleted_at,
            seq=seq,
            own_sha256=latest.image.sha256 if latest.decision.keeps_own_bytes else None,
        )
        self._posts[delete.post_id] = event.to_record()
        return Emit(event, redelivered=False, index=_removals(event))

    def _image_sha256(self, decision: DecisionEvent) -> str:
        """The stored image's content hash: the post's own for a new image, else its original's."""
        image_id = decision.decision.image_id
        if image_id == decision.upload_id:
            return decision.image.sha256
        return self._sha256_of_image(image_id, f"post {decision.upload_id}")

    def _sha256_of_image(self, image_id: str, wanted_by: str = "a search") -> str:
        original = self._latest(image_id)
        if isinstance(original, DecisionEvent):
            return original.image.sha256
        if isinstance(original, PostDeletedEvent):
            return original.sha256
        raise LookupError(f"{wanted_by} references unknown image {image_id}")


def _removals(deleted: PostDeletedEvent) -> tuple[IndexRecord, ...]:
    """The index records of a deletion: the post's alias (a replica holding none ignores it) and,
    when it was the last post showing it, the image."""
    out: list[IndexRecord] = []
    if deleted.post_id != deleted.image_id:
        out.append(IndexRemovalRecord(seq=deleted.seq, upload_id=deleted.post_id))
    if deleted.orphaned:
        out.append(IndexRemovalRecord(seq=deleted.seq, upload_id=deleted.image_id))
    return tuple(out)


def _refusals_to_info(refusals: tuple[RuleRefusal, ...]) -> tuple[RefusalInfo, ...]:
    return tuple(RefusalInfo(r.rule, r.finding, r.why) for r in refusals)


def _refusals_from_info(infos: tuple[RefusalInfo, ...]) -> tuple[RuleRefusal, ...]:
    return tuple(RuleRefusal(r.rule, r.finding, r.why) for r in infos)


def decision_to_info(decision: Decision) -> DecisionInfo:
    return DecisionInfo(
        kind=str(decision.kind),
        image_id=decision.image_id,
        cluster_id=decision.cluster_id,
        distance=decision.distance,
        method=decision.method,
        region=(
            None if decision.region is None else RegionInfo(**dataclasses.asdict(decision.region))
        ),
        reason=decision.reason,
        via=decision.via,
        reason_refusals=_refusals_to_info(decision.reason_refusals),
        refused=tuple(
            RefusedCandidateInfo(c.entry_id, c.image_id, c.check, _refusals_to_info(c.refusals))
            for c in decision.refused
        ),
        unexplained_share=decision.unexplained_share,
        keeps_own_bytes=decision.keeps_own_bytes,
    )


def checks_to_info(checks: CheckMemo) -> tuple[CheckInfo, ...]:
    """The memo's outcomes as the match event carries them, refusals included: a commit that
    reuses them records the same evidence as an evaluation that ran them."""
    out = []
    for key, outcome in checks.outcomes():
        refusals = _refusals_to_info(outcome.refusals)
        if isinstance(outcome, Refused):
            out.append(CheckInfo(key.entry_id, key.check, None, None, refusals))
            continue
        region = (
            None if outcome.region is None else RegionInfo(**dataclasses.asdict(outcome.region))
        )
        out.append(
            CheckInfo(
                key.entry_id, key.check, outcome.reason, region, refusals,
                outcome.unexplained_share,
            )
        )
    return tuple(out)


def queries_to_info(checks: CheckMemo) -> tuple[QueryInfo, ...]:
    """The memo's index answers as the match event carries them (entry ids, not keys)."""
    return tuple(
        QueryInfo(name, tuple(e for e, _ in answer), tuple(v for _, v in answer))
        for name, answer in checks.queries.items()
    )


def checks_from_info(
    infos: tuple[CheckInfo, ...], queries: tuple[QueryInfo, ...] = ()
) -> CheckMemo:
    def outcome(info: CheckInfo) -> Outcome:
        refusals = _refusals_from_info(info.refusals)
        if info.reason is None:
            return Refused(refusals)
        region = None if info.region is None else Region(**dataclasses.asdict(info.region))
        return Verified(info.reason, region, refusals, info.unexplained_share)

    record = QueryRecord(
        (q.name, tuple(zip(q.entries, q.values, strict=True))) for q in queries
    )
    return CheckMemo(
        ((CheckKey(info.entry_id, info.check), outcome(info)) for info in infos), record
    )


def decision_from_info(upload_id: str, info: DecisionInfo) -> Decision:
    return Decision(
        upload_id=upload_id,
        kind=DecisionKind(info.kind),
        image_id=info.image_id,
        cluster_id=info.cluster_id,
        distance=info.distance,
        method=info.method,
        region=None if info.region is None else Region(**dataclasses.asdict(info.region)),
        via=info.via,
        reason=info.reason,
        reason_refusals=_refusals_from_info(info.reason_refusals),
        refused=tuple(
            RefusedCandidate(c.entry_id, c.image_id, c.check, _refusals_from_info(c.refusals))
            for c in info.refused
        ),
        unexplained_share=info.unexplained_share,
    )
