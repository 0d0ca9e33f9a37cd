"""The decide stage: idempotent on re-delivery, restorable from its tables, post lifecycle."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from schemas.events import (
    DecisionEvent,
    FeatureEvent,
    ImageInfo,
    IndexEntryRecord,
    IndexRemovalRecord,
    PostDeletedEvent,
    PostDeleteEvent,
    PostInfo,
    PostUpdatedEvent,
    PostUpdateEvent,
    UploadRef,
)
from stream_processors.decider import INDEX_POSITION_KEY, Decider, Emit, Pending, Refuse
from stream_processors.engine.decision import DecisionKind
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import DefaultMethod
from stream_processors.engine.feature_store import MappingFeatureStore
from stream_processors.engine.method import build_method
from stream_processors.engine.snapshot import load_snapshot, save_snapshot
from stream_processors.replica import IndexReplica


def _png(seed: int, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (size, size),
                     interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _feature(upload_id: str, data: bytes, offset: int) -> FeatureEvent:
    method = build_method("default")
    image = decode_image(data)
    return FeatureEvent(
        upload_id=upload_id,
        post=PostInfo("alice", upload_id, "", "now"),
        image=ImageInfo(hashlib.sha256(data).hexdigest(), len(data), image.width, image.height,
                        image.format),
        method=method.name,
        upload_ref=UploadRef("picnix.uploads", 0, offset),
        extract_seconds=0.0, signature=method.signature_to_bytes(method.extract(image)),
    )


class Tables:
    """The worker's four tables as dicts: posts, stored images, refs, and the engine's store."""

    def __init__(self) -> None:
        self.posts: dict[str, bytes] = {}
        self.stored: dict[str, bytes] = {}
        self.refs: dict[str, int] = {}
        self.local: dict[str, bytes] = {}

    def image_refs(self) -> dict[str, int]:
        """The reference counts of images (``refs`` also holds the index log's position)."""
        return {k: v for k, v in self.refs.items() if k != INDEX_POSITION_KEY}

    def decider(self) -> Decider:
        return self.decider_with(None)

    def decider_with(self, base: Callable[[], DefaultMethod | None] | None) -> Decider:
        method = build_method("default", MappingFeatureStore(self.local))
        return Decider(method, self.posts, self.stored, self.refs, base)

    def copy(self) -> Tables:
        other = Tables()
        other.posts, other.stored, other.refs = dict(self.posts), dict(self.stored), dict(self.refs)
        other.local = dict(self.local)
        return other

    def snapshot(
        self,
    ) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, int], dict[str, bytes]]:
        return dict(self.posts), dict(self.stored), dict(self.refs), dict(self.local)


def _emitted(outcome: Emit | Refuse) -> Emit:
    assert isinstance(outcome, Emit), outcome
    return outcome


def test_exact_copy_references_the_first_upload_and_redelivery_changes_nothing() -> None:
    tables = Tables()
    decider = tables.decider()
    a = _emitted(decider.handle(_feature("u1", _png(1), 0), seq=0)).event
    b = _emitted(decider.handle(_feature("u2", _png(1), 1), seq=1)).event
    c = _emitted(decider.handle(_feature("u3", _png(2), 2), seq=2)).event
    assert isinstance(a, DecisionEvent) and a.decision.kind == "new-cluster"
    assert isinstance(b, DecisionEvent) and b.decision.kind == "duplicate-reference"
    assert b.decision.image_id == "u1"
    assert isinstance(c, DecisionEvent) and c.decision.image_id == "u3"
    assert tables.image_refs() == {"u1": 2, "u3": 1}
    before = tables.snapshot()

    again = _emitted(decider.handle(_feature("u2", _png(1), 1), seq=7))
    assert again.redelivered and again.event == b
    assert tables.snapshot() == before


def test_a_restarted_decider_rebuilds_the_same_state_from_its_tables() -> None:
    tables = Tables()
    features = [_feature(f"u{i}", _png(i % 3), i) for i in range(6)]
    live = tables.decider()
    for i, feature in enumerate(features[:4]):
        live.handle(feature, seq=i)

    restarted = tables.copy().decider()
    for i, feature in enumerate(features[4:], start=4):
        assert restarted.handle(feature, seq=i) == live.handle(feature, seq=i)


def test_delete_keeps_a_referenced_image_and_drops_an_orphan() -> None:
    tables = Tables()
    decider = tables.decider()
    decider.handle(_feature("u1", _png(1), 0), seq=0)
    decider.handle(_feature("u2", _png(1), 1), seq=1)

    first = _emitted(decider.handle(PostDeleteEvent(post_id="u1", deleted_at="t"), seq=2)).event
    assert isinstance(first, PostDeletedEvent)
    assert not first.orphaned and first.image_id == "u1"
    assert tables.image_refs() == {"u1": 1}

    last = _emitted(decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=3)).event
    assert isinstance(last, PostDeletedEvent)
    assert last.orphaned and last.sha256 == hashlib.sha256(_png(1)).hexdigest()
    assert tables.image_refs() == {} and tables.stored == {}

    # the image left the index: the same bytes uploaded again make a new image
    again = _emitted(decider.handle(_feature("u9", _png(1), 4), seq=4)).event
    assert isinstance(again, DecisionEvent) and again.decision.image_id == "u9"
    # a re-delivered deletion re-emits itself; a re-delivered upload of a deleted post too
    redelivered = _emitted(decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=5))
    assert redelivered.redelivered and redelivered.event == last
    assert _emitted(decider.handle(_feature("u2", _png(1), 1), seq=6)).event == last


def _photo_png(captioned: bool = False) -> bytes:
    """scikit-image's astronaut, or the same with a caption box pasted on (a copy that adds
    content of its own, as in test_unexplained)."""
    img = np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    if captioned:
        cv2.rectangle(img, (102, 25), (408, 76), (255, 255, 255), -1)
        cv2.putText(img, "SO MUCH WOW", (132, 63), cv2.FONT_HERSHEY_DUPLEX, 1.25, (0, 0, 0), 3,
                    cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def test_a_copy_that_keeps_its_own_bytes_names_them_when_deleted() -> None:
    decider = Tables().decider()
    decider.handle(_feature("u1", _photo_png(), 0), seq=0)
    copy = _emitted(decider.handle(_feature("u2", _photo_png(captioned=True), 1), seq=1)).event
    assert isinstance(copy, DecisionEvent)
    assert copy.decision.kind == "duplicate-reference" and copy.decision.image_id == "u1"
    assert copy.decision.keeps_own_bytes and copy.decision.unexplained_share is not None
    deleted = _emitted(decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=2)).event
    assert isinstance(deleted, PostDeletedEvent) and not deleted.orphaned
    assert deleted.own_sha256 == copy.image.sha256
    plain = _emitted(decider.handle(PostDeleteEvent(post_id="u1", deleted_at="t"), seq=3)).event
    assert isinstance(plain, PostDeletedEvent) and plain.own_sha256 is None


def test_updates_apply_to_live_posts_only() -> None:
    decider = Tables().decider()
    decider.handle(_feature("u1", _png(1), 0), seq=0)
    update = PostUpdateEvent(post_id="u1", title="new", description="d", updated_at="t")
    emitted = _emitted(decider.handle(update, seq=1)).event
    assert isinstance(emitted, PostUpdatedEvent) and emitted.title == "new"

    unknown = decider.handle(PostUpdateEvent("nope", "x", "", "t"), seq=2)
    assert isinstance(unknown, Refuse) and unknown.reason == "unknown-post"
    decider.handle(PostDeleteEvent(post_id="u1", deleted_at="t"), seq=3)
    assert isinstance(decider.handle(update, seq=4), Refuse)


def test_a_near_duplicate_is_kept_as_an_alias_for_its_post_s_lifetime() -> None:
    tables = Tables()
    decider = tables.decider()
    decider.handle(_feature("u1", _png(1), 0), seq=0)
    near = _emitted(decider.handle(_feature("u2", _png(1, size=128), 1), seq=1)).event
    assert isinstance(near, DecisionEvent) and near.decision.kind == "duplicate-reference"
    exact = _emitted(decider.handle(_feature("u3", _png(1), 2), seq=2)).event
    assert isinstance(exact, DecisionEvent) and exact.decision.image_id == "u1"
    # the near copy's signature is engine state (an alias of u1); the exact copy's is not
    assert set(tables.stored) == {"u1", "u2"}

    # a restarted decider re-applies the alias too
    probe = _feature("p", _png(1, size=112), 3)
    restarted = tables.copy().decider()
    assert restarted.handle(probe, seq=3) == decider.handle(probe, seq=3)
    assert set(tables.stored) == {"u1", "u2", "p"}

    decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=4)
    assert set(tables.stored) == {"u1", "p"} and tables.image_refs() == {"u1": 3}
    for i, post in enumerate(("u1", "u3", "p"), start=5):
        decider.handle(PostDeleteEvent(post_id=post, deleted_at="t"), seq=i)
    assert tables.stored == {} and tables.image_refs() == {}


def test_an_invalidated_decider_rebuilds_from_its_tables() -> None:
    """The decide partition moved away and back: what another worker wrote to the tables
    meanwhile is in the engine again before the next decision."""
    tables = Tables()
    here = tables.decider()
    here.handle(_feature("u0", _png(0), 0), seq=0)
    there = tables.decider()  # another worker, sharing the tables (as through the changelog)
    there.handle(_feature("u1", _png(1), 1), seq=1)
    here.invalidate(build_method("default", MappingFeatureStore(tables.local)))
    again = _emitted(here.handle(_feature("u2", _png(1), 2), seq=2)).event
    assert isinstance(again, DecisionEvent)
    assert again.decision.kind == "duplicate-reference" and again.decision.image_id == "u1"


def _probe(data: bytes) -> object:
    return build_method("default").extract(decode_image(data))


def test_search_finds_the_stored_original_of_a_copy_and_changes_nothing() -> None:
    tables = Tables()
    decider = tables.decider()
    decider.handle(_feature("u1", _png(1), 0), seq=0)
    decider.handle(_feature("u2", _png(2), 1), seq=1)
    before = tables.snapshot()

    exact = decider.search(_probe(_png(1)))
    assert exact.match is not None and exact.match.image_id == "u1"
    assert exact.match.sha256 == hashlib.sha256(_png(1)).hexdigest()
    assert exact.match.method == "default:sha256" and exact.stored_images == 2
    resized = decider.search(_probe(_png(2, size=128)))
    assert resized.match is not None and resized.match.image_id == "u2"
    assert resized.match.sha256 == hashlib.sha256(_png(2)).hexdigest()
    unseen = decider.search(_probe(_png(3)))
    assert unseen.match is None
    assert tables.snapshot() == before

    # searching left the engine as it was: the next upload decides as if no search happened
    fresh = Tables()
    control = fresh.decider()
    control.handle(_feature("u1", _png(1), 0), seq=0)
    control.handle(_feature("u2", _png(2), 1), seq=1)
    nxt = _feature("u3", _png(3), 2)
    assert decider.handle(nxt, seq=2) == control.handle(nxt, seq=2)


def test_a_fresh_decider_restores_its_tables_before_it_searches() -> None:
    tables = Tables()
    tables.decider().handle(_feature("u1", _png(1), 0), seq=0)
    restarted = tables.copy().decider()
    found = restarted.search(_probe(_png(1, size=128)))
    assert found.match is not None and found.match.image_id == "u1"


def _replica() -> IndexReplica:
    return IndexReplica(build_method("default", MappingFeatureStore({})))


def _commit_via(decider: Decider, replica: IndexReplica, feature: FeatureEvent, seq: int) -> Emit:
    """The split path: match on the replica, settle and commit on the decider."""
    match = replica.match(feature, feature.to_record())
    pending = decider.begin(feature, seq)
    if not isinstance(pending, Pending):
        return _emitted(pending)
    return decider.commit(pending, decider.settle(pending, match).decision)


def test_index_records_keep_a_replica_in_step_and_settle_its_stale_matches() -> None:
    tables = Tables()
    decider = tables.decider()
    replica = _replica()
    first = _commit_via(decider, replica, _feature("u1", _png(1), 0), seq=0)
    assert [type(r) for r in first.index] == [IndexEntryRecord]
    # the replica has not applied u1 yet: its match of a copy finds nothing, the commit settles
    # it against u1 all the same
    near = _commit_via(decider, replica, _feature("u2", _png(1, size=128), 1), seq=1)
    assert isinstance(near.event, DecisionEvent) and near.event.decision.image_id == "u1"
    exact = _commit_via(decider, replica, _feature("u3", _png(1), 2), seq=2)
    assert exact.index == ()  # identical bytes add nothing to the index
    for emit in (first, near):
        for record in emit.index:
            assert replica.apply(record.to_record())
    assert replica.position == decider_position(tables) == 1
    assert not replica.apply(first.index[0].to_record())  # a re-sent record changes nothing

    deleted = _emitted(decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=3))
    assert [(type(r), r.upload_id) for r in deleted.index] == [(IndexRemovalRecord, "u2")]
    for record in deleted.index:
        assert replica.apply(record.to_record())
    assert not replica.method.holds("u2") and replica.method.holds("u1")
    assert replica.position == decider_position(tables) == 3

    # a re-delivered upload sends its index record again, for a replica that lost it
    again = _emitted(decider.handle(_feature("u1", _png(1), 0), seq=9))
    assert again.redelivered and [r.upload_id for r in again.index] == ["u1"]


def test_a_replica_catches_its_match_up_with_the_records_applied_since() -> None:
    tables = Tables()
    decider = tables.decider()
    replica = _replica()
    first = _commit_via(decider, replica, _feature("u1", _png(1), 0), seq=0)
    copy = _feature("u2", _png(1, size=128), 1)
    started = replica.start_match(copy, copy.to_record())  # before the replica has u1
    assert started.decision is not None and started.decision.kind is DecisionKind.NEW_CLUSTER
    for record in first.index:
        assert replica.apply(record.to_record())
    caught_up = replica.catch_up(started)
    assert caught_up.positions == 1 and caught_up.event.position == replica.position == 0
    assert caught_up.event.decision is not None
    assert caught_up.event.decision.image_id == "u1"
    # the commit, in step with the replica now, takes the caught-up match as it is
    pending = decider.begin(copy, seq=1)
    assert isinstance(pending, Pending)
    settled = decider.settle(pending, caught_up.event)
    assert not settled.reevaluated and settled.decision.image_id == "u1"
    assert replica.catch_up(replica.start_match(copy, b"")).positions == 0  # nothing since


def decider_position(tables: Tables) -> int:
    return tables.refs[INDEX_POSITION_KEY]


def test_a_restored_decider_resumes_at_the_position_of_a_removal_after_its_last_entry() -> None:
    tables = Tables()
    decider = tables.decider()
    decider.handle(_feature("u1", _png(1), 0), seq=0)
    decider.handle(_feature("u2", _png(2), 1), seq=1)
    decider.handle(PostDeleteEvent(post_id="u2", deleted_at="t"), seq=5)
    restarted = tables.copy().decider()
    restarted.restore()
    replica = _replica()
    match = replica.match(_feature("u7", _png(7), 7), b"")
    pending = restarted.begin(_feature("u7", _png(7), 7), seq=7)
    assert isinstance(pending, Pending)
    # settling a match made at position -1 against a restored state at 5: evaluated again
    assert restarted.settle(pending, match).reevaluated
    assert restarted.search(_probe(_png(2))).match is None


def test_a_restore_from_an_engine_snapshot_equals_the_full_restore(tmp_path: Path) -> None:
    """The commit engine starts from a snapshot taken at some position, drops what was deleted
    since and re-applies only the later records: then it decides as a full restore does."""
    tables = Tables()
    live = tables.decider()
    features = [_feature(f"u{i}", _png(i % 4, size=96 + 8 * (i % 3)), i) for i in range(8)]
    for i, feature in enumerate(features[:5]):
        live.handle(feature, seq=i)
    method = live._method  # the engine as a replica would hold it at this position
    assert isinstance(method, DefaultMethod)
    save_snapshot(method, method.position, tmp_path)
    live.handle(features[5], seq=5)
    live.handle(PostDeleteEvent(post_id="u1", deleted_at="t"), seq=6)  # after the snapshot
    live.handle(features[6], seq=7)
    orphan = _emitted(live.handle(PostDeleteEvent(post_id="u3", deleted_at="t"), seq=8)).event
    # the snapshot indexes an image whose record the tables have dropped since
    assert isinstance(orphan, PostDeletedEvent) and orphan.orphaned and "u3" not in tables.local

    def base() -> DefaultMethod | None:
        loaded = load_snapshot(tmp_path, MappingFeatureStore(tables.local))
        return None if loaded is None else loaded.method

    from_snapshot = tables.copy().decider_with(base)
    full = tables.copy().decider()
    probe = features[7]
    assert from_snapshot.handle(probe, seq=9) == full.handle(probe, seq=9)
    for i in range(4):
        assert from_snapshot.search(_probe(_png(i))) == full.search(_probe(_png(i)))
