"""A decide worker's table state for N stored images, as the records of its tables' changelogs.

``bench_restart`` needs a worker that holds N stored images without deciding N uploads first
(100k real decisions take hours on this box), so it writes the state itself, in the worker's own
format: the four tables of ``stream_processors.app`` (``posts``, ``stored-images``,
``image-refs``, ``local-features``), each changelog-backed by ``<app id>-<table>-changelog``.
Faust writes a table's changelog record with the table's serializers: ``key_type=str`` selects
the JSON codec for keys (``"upload-id"``), ``value_type=bytes`` the raw codec (our own frames,
as is), ``int`` JSON (``1``). ``verify_round_trip`` checks that on the records a real worker
wrote before a run trusts this encoding.

The N images are:

* real: dev-set uploads (originals, then variants) decided in this process by the worker's own
  ``Decider`` over plain dicts, starting from the state the worker already holds, so their
  records are byte for byte what the worker would have written deciding them;
* synthetic, up to N: copies of real stored images with a new upload id, a random SHA-256,
  64-100 flipped bits in each dihedral hash, a random layout hash and uniformly random ORB
  keypoints under the template's thumbnail (``bench_decide.synthetic_records``, so visual words
  and candidate lists look like distinct images), decided as new clusters at the dev set's
  clusters-per-image ratio, else as members of an earlier cluster.

Every record has a ``seq``: the offset its feature event would have on the features topic. The
fill does not write those feature events (they would be the size of the local features again);
``bench_restart`` puts one empty record per filled upload there and commits the workers' group
past them, as after a worker decided them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.events import (
    DECISION_TOPIC_EVENTS,
    DecisionEvent,
    DecisionInfo,
    FeatureEvent,
    IndexEntryRecord,
    StoredImageRecord,
    parse_event,
)
from scripts.bench_decide import synthetic_records
from stream_processors.decider import INDEX_POSITION_KEY, Decider, Refuse
from stream_processors.engine.decision import DecisionKind
from stream_processors.engine.default_method import (
    DefaultSignature,
    state_from_bytes,
    state_to_bytes,
)
from stream_processors.engine.feature_store import MappingFeatureStore
from stream_processors.engine.local_features import record_keypoints
from stream_processors.engine.method import build_method

POSTS, STORED, REFS, LOCAL = "posts", "stored-images", "image-refs", "local-features"
TABLES = (POSTS, STORED, REFS, LOCAL)
FILL_METHOD = "default"  # the synthetic records are the default method's state form
FLIP_BITS = (64, 101)  # bits flipped per synthetic hash row: farther than any duplicate radius
SYNTHETIC_PREFIX = "synthetic-"

ChangelogRecord = tuple[str, bytes, bytes]  # (table, key, value) as the changelog holds them


class FillError(RuntimeError):
    """The worker's changelog is not in the format this fill writes, or the state is unusable."""


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


def encode_key(key: str) -> bytes:
    return json.dumps(key).encode()


def decode_key(raw: bytes) -> str:
    key = json.loads(raw)
    if not isinstance(key, str):
        raise FillError(f"changelog key {raw[:60]!r} is not a JSON string")
    return key


def encode_value(table: str, value: bytes | int) -> bytes:
    if table == REFS:
        return json.dumps(int(value)).encode()
    assert isinstance(value, bytes)
    return value


@dataclass
class TableState:
    """The decide tables' contents, keyed as the worker's Decider sees them."""

    posts: dict[str, bytes] = dataclasses.field(default_factory=dict)
    stored: dict[str, bytes] = dataclasses.field(default_factory=dict)
    refs: dict[str, int] = dataclasses.field(default_factory=dict)
    local: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def table(self, name: str) -> MutableMapping[str, Any]:
        tables: dict[str, MutableMapping[str, Any]] = {
            POSTS: self.posts, STORED: self.stored, REFS: self.refs, LOCAL: self.local,
        }
        return tables[name]

    def copy(self) -> TableState:
        return TableState(dict(self.posts), dict(self.stored), dict(self.refs), dict(self.local))


def state_from_changelogs(records: Mapping[str, list[tuple[bytes, bytes | None]]]) -> TableState:
    """The tables a worker's changelogs describe (``records``: table -> (key, value) in log
    order; a None value is a deletion), checked record by record by ``verify_round_trip``."""
    state = TableState()
    for table in TABLES:
        target = state.table(table)
        for raw_key, raw_value in records.get(table, []):
            key = decode_key(raw_key)
            if raw_value is None:
                target.pop(key, None)
                continue
            target[key] = int(json.loads(raw_value)) if table == REFS else raw_value
            verify_round_trip(table, raw_key, raw_value, target[key])
    return state


def verify_round_trip(table: str, raw_key: bytes, raw_value: bytes, value: bytes | int) -> None:
    """The worker's record must be exactly what this module would write for the same entry, and
    parse as the frame the table holds: otherwise the fill would hand the worker garbage."""
    key = decode_key(raw_key)
    if encode_key(key) != raw_key or encode_value(table, value) != raw_value:
        raise FillError(
            f"{table} changelog record {raw_key!r} is not encoded as this fill encodes it "
            f"(key {encode_key(key)!r}, value {encode_value(table, value)[:40]!r}...)"
        )
    if table == STORED:
        assert isinstance(value, bytes)
        StoredImageRecord.from_record(value)
    elif table == POSTS:
        assert isinstance(value, bytes)
        parse_event(value, DECISION_TOPIC_EVENTS)
    elif table == LOCAL:
        assert isinstance(value, bytes)
        record_keypoints(value)


def decide_real(state: TableState, features: list[FeatureEvent], first_seq: int) -> TableState:
    """``state`` after the worker's Decider has decided ``features`` in order, their seqs from
    ``first_seq`` (a new TableState; ``state`` is left as it was)."""
    out = state.copy()
    method = build_method(FILL_METHOD, MappingFeatureStore(out.local))
    decider = Decider(method, out.posts, out.stored, out.refs)
    for i, feature in enumerate(features):
        outcome = decider.handle(feature, first_seq + i)
        if isinstance(outcome, Refuse):
            raise FillError(f"decide refused dev upload {feature.upload_id}: {outcome.reason}: "
                            f"{outcome.detail}")
    return out


def changed_records(before: TableState, after: TableState) -> list[ChangelogRecord]:
    """The changelog records that take the tables from ``before`` to ``after`` (no deletions:
    deciding new uploads only adds and updates)."""
    out: list[ChangelogRecord] = []
    for table in TABLES:
        old, new = before.table(table), after.table(table)
        missing = set(old) - set(new)
        if missing:
            raise FillError(f"{table} lost {len(missing)} keys while deciding new uploads")
        out.extend(
            (table, encode_key(k), encode_value(table, v))
            for k, v in new.items() if old.get(k) != v
        )
    return out


@dataclass(frozen=True)
class _Template:
    """A real stored image a synthetic one is made from."""

    signature: DefaultSignature
    event: DecisionEvent
    keypoints: int


class SyntheticImages:
    """Distinct stored images made from the real ones (module docstring), as changelog records."""

    def __init__(self, real: TableState, rng: np.random.Generator) -> None:
        self._rng = rng
        templates: list[_Template] = []
        founders: list[str] = []
        infos: dict[str, DecisionInfo] = {}
        for raw in real.stored.values():
            rec = StoredImageRecord.from_record(raw)
            if rec.decision.kind == DecisionKind.DUPLICATE_REFERENCE:
                continue  # an alias: synthetic images are images
            local = real.local[rec.upload_id]
            event = parse_event(real.posts[rec.upload_id], DECISION_TOPIC_EVENTS)
            assert isinstance(event, DecisionEvent)
            templates.append(_Template(state_from_bytes(rec.signature, local), event,
                                       len(record_keypoints(local))))
            infos.setdefault(rec.decision.kind, rec.decision)
            if rec.decision.kind == DecisionKind.NEW_CLUSTER:
                founders.append(rec.upload_id)
        if not templates or DecisionKind.NEW_CLUSTER not in infos:
            raise FillError("the real part stored no new-cluster image to make synthetic ones of")
        self._templates = templates
        self._infos = infos
        self._clusters = founders
        self._cluster_ratio = len(founders) / len(templates)
        self._counts = np.array([t.keypoints for t in templates])

    def records(self, start: int, count: int, first_seq: int) -> list[ChangelogRecord]:
        """Synthetic images ``start`` .. ``start + count - 1``, seqs from ``first_seq``."""
        out: list[ChangelogRecord] = []
        for i in range(count):
            out.extend(self._one(start + i, first_seq + i))
        return out

    def upload_id(self, index: int) -> str:
        return f"{SYNTHETIC_PREFIX}{index:08d}"

    def _one(self, index: int, seq: int) -> list[ChangelogRecord]:
        rng = self._rng
        template = self._templates[int(rng.integers(len(self._templates)))]
        upload_id = self.upload_id(index)
        sig = template.signature
        sha = rng.bytes(32)
        bits = np.unpackbits(sig.hashes, axis=1)
        flips = rng.random(bits.shape).argsort(axis=1) < rng.integers(*FLIP_BITS)
        hashes = np.packbits(bits ^ flips, axis=1)
        coarse = rng.integers(0, 256, sig.coarse.shape, dtype=np.uint8)
        state = state_to_bytes(dataclasses.replace(sig, sha256=sha, hashes=hashes, coarse=coarse))
        local = synthetic_records([sig.local_record], self._counts, 1, rng)[0]
        merge = self._infos.get(DecisionKind.MERGE_CENTER)
        if merge is not None and rng.random() >= self._cluster_ratio:
            cluster = self._clusters[int(rng.integers(len(self._clusters)))]
            info = dataclasses.replace(merge, image_id=upload_id, cluster_id=cluster)
        else:
            info = dataclasses.replace(
                self._infos[DecisionKind.NEW_CLUSTER], image_id=upload_id, cluster_id=upload_id
            )
            self._clusters.append(upload_id)
        event = template.event
        post = dataclasses.replace(event.post, title=f"synthetic image {index}")
        image = dataclasses.replace(event.image, sha256=sha.hex())
        decision = DecisionEvent(upload_id=upload_id, decision=info, post=post, image=image,
                                 upload_ref=event.upload_ref, seq=seq)
        stored = StoredImageRecord(seq=seq, upload_id=upload_id, decision=info, signature=state)
        key = encode_key(upload_id)
        return [
            (POSTS, key, decision.to_record()),
            (STORED, key, stored.to_record()),
            (REFS, key, encode_value(REFS, 1)),
            (LOCAL, key, local),
        ]


def index_records(records: list[ChangelogRecord]) -> list[tuple[bytes, bytes]]:
    """The ``picnix.index`` records (key, value) of the entries a batch of changelog records
    stores: what the commit sends the workers' replicas for each (its stored-image record and
    its local features, as ``DefaultMethod.replica_to_bytes`` joins them)."""
    local = {key: value for table, key, value in records if table == LOCAL}
    out: list[tuple[bytes, bytes]] = []
    for table, key, value in records:
        if table != STORED:
            continue
        stored = StoredImageRecord.from_record(value)
        entry = IndexEntryRecord(
            seq=stored.seq, upload_id=stored.upload_id, decision=stored.decision,
            entry=stored.signature + local[key],
        )
        out.append((stored.upload_id.encode(), entry.to_record()))
    return out


def position_record(seq: int) -> ChangelogRecord:
    """The image-refs record of the index log's position after the fill (Decider.restore)."""
    return (REFS, encode_key(INDEX_POSITION_KEY), encode_value(REFS, seq))


def synthetic_batches(
    real: TableState, count: int, first_seq: int, batch: int, rng: np.random.Generator
) -> Iterator[tuple[list[str], list[ChangelogRecord]]]:
    """``count`` synthetic images in batches: (their upload ids, their changelog records)."""
    images = SyntheticImages(real, rng)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        ids = [images.upload_id(start + i) for i in range(n)]
        yield ids, images.records(start, n, first_seq + start)
