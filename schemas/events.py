"""Every event PicNix puts on Kafka, each with a schema name and version.

Producers build these objects and call ``to_record``; consumers call ``from_record``, which
rejects a wrong schema, an unknown version, a missing field or a field of the wrong type with a
:class:`SchemaError` naming the field, so a malformed event is dead-lettered with a precise reason.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from schemas.envelope import Frame, SchemaError, pack, unpack

_RESERVED = ("schema", "version")


@dataclass(frozen=True)
class UploadRef:
    """Where an upload's bytes live in the log, so later stages need not carry them."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class PostInfo:
    """What the platform said about a post; carried unchanged from upload to sinks."""

    author: str
    title: str
    description: str
    uploaded_at: str


@dataclass(frozen=True)
class ImageInfo:
    """What decoding learned about the uploaded bytes."""

    sha256: str
    byte_size: int
    width: int
    height: int
    image_format: str


@dataclass(frozen=True)
class RegionInfo:
    """Where a duplicate lies in its original, as fractions of the original's width and height
    (see engine.decision.Region)."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class RefusalInfo:
    """A verifier rule that refused a pair (see engine.decision.RuleRefusal)."""

    rule: str
    finding: str
    why: str


@dataclass(frozen=True)
class RefusedCandidateInfo:
    """A stored entry the verifier refused on the way to a decision (see
    engine.decision.RefusedCandidate)."""

    entry_id: str
    image_id: str
    check: str
    refusals: tuple[RefusalInfo, ...] = ()


@dataclass(frozen=True)
class DecisionInfo:
    """The engine's decision as it travels and is stored (see engine.decision.Decision).
    ``region``, ``reason``, ``reason_refusals``, ``refused``, ``unexplained_share`` and
    ``keeps_own_bytes`` were added later: older records parse without them."""

    kind: str
    image_id: str
    cluster_id: str
    distance: float | None
    method: str
    region: RegionInfo | None = None
    reason: str = ""  # the rule that accepted a duplicate (engine.decision.Decision.reason)
    via: str | None = None  # the alias a duplicate matched through (engine.decision.Decision.via)
    # the rules that refused the accepted pair before ``reason`` accepted it
    reason_refusals: tuple[RefusalInfo, ...] = ()
    refused: tuple[RefusedCandidateInfo, ...] = ()  # the candidates refused on the way
    # of a duplicate: the share of the upload its original does not explain, and whether the
    # upload's own bytes are stored beside the reference for it (engine.decision.Decision)
    unexplained_share: float | None = None
    keeps_own_bytes: bool = False


@dataclass(frozen=True)
class CheckInfo:
    """One verification a match ran (see engine.checks): of stored entry ``entry_id`` by
    ``check``; ``reason`` the rule that accepted the pair (None: refused), ``region`` where
    the upload lies in the entry's picture, ``refusals`` the rules that refused it (of an
    accepted pair: before ``reason`` accepted it) and ``unexplained_share`` the share of the
    upload the entry does not explain (engine.checks.Verified); the last two were added
    later, older records parse without them."""

    entry_id: str
    check: str
    reason: str | None
    region: RegionInfo | None = None
    refusals: tuple[RefusalInfo, ...] = ()
    unexplained_share: float = 0.0


@dataclass(frozen=True)
class QueryInfo:
    """One index query a match made (see engine.index_queries): its ``name`` (the query and
    its parameters) and its ranked answer, the ``entries`` (stored images' or aliases' upload
    ids) with their ``values`` (distance or score)."""

    name: str
    entries: tuple[str, ...]
    values: tuple[float, ...]


class Event:
    """Base of all events: the payload field (if any) travels as raw bytes after the header."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]
    PAYLOAD_FIELD: ClassVar[str | None] = None

    def to_record(self) -> bytes:
        header: dict[str, Any] = {"schema": self.SCHEMA, "version": self.VERSION}
        payload = b""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == self.PAYLOAD_FIELD:
                payload = value
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                header[f.name] = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                header[f.name] = [
                    dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v  # type: ignore[arg-type]
                    for v in value
                ]
            else:
                header[f.name] = value
        return pack(header, payload)

    @classmethod
    def from_record(cls, record: bytes | None) -> Self:
        return cls.from_frame(unpack(record))

    @classmethod
    def from_frame(cls, frame: Frame) -> Self:
        schema = frame.header.get("schema")
        if schema != cls.SCHEMA:
            raise SchemaError("wrong-schema", f"expected {cls.SCHEMA!r}, got {schema!r}")
        version = frame.header.get("version")
        if version != cls.VERSION:
            raise SchemaError(
                "unknown-version", f"{cls.SCHEMA} version {version!r}, supported {cls.VERSION}"
            )
        hints = _type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == cls.PAYLOAD_FIELD:
                values[f.name] = frame.payload
                continue
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            if f.name not in frame.header:
                if has_default:
                    continue
                raise SchemaError("missing-field", f"{cls.SCHEMA}.{f.name} is required")
            values[f.name] = _check(f"{cls.SCHEMA}.{f.name}", hints[f.name], frame.header[f.name])
        return cls(**values)


_HINTS: dict[Any, dict[str, Any]] = {}


def _type_hints(cls: Any) -> dict[str, Any]:
    """A schema class's field types, resolved once: resolving them evaluates every annotation
    again, which was 9/10 of parsing a record (310 -> 35 us for a stored-image record; a
    restarted worker parses one per stored image)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


_SHAPES: dict[Any, tuple[Any, tuple[Any, ...]]] = {}
_FIELDS: dict[Any, tuple[tuple[str, Any, bool], ...]] = {}


def _shape(expected: Any) -> tuple[Any, tuple[Any, ...]]:
    """A schema type's origin and arguments, resolved once per type: ``typing.get_origin`` and
    ``get_args`` on every value were a third of parsing (a replica catching up parses one index
    record per stored image)."""
    shape = _SHAPES.get(expected)
    if shape is None:
        shape = _SHAPES[expected] = (typing.get_origin(expected), typing.get_args(expected))
    return shape


def _fields_of(cls: Any) -> tuple[tuple[str, Any, bool], ...]:
    """A nested dataclass's (field name, type, has a default), resolved once per class."""
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = _type_hints(cls)
        fields = _FIELDS[cls] = tuple(
            (f.name, hints[f.name], f.default is not dataclasses.MISSING)
            for f in dataclasses.fields(cls)
        )
    return fields


def _check(where: str, expected: Any, value: Any) -> Any:
    if expected in _SCALARS:
        return _check_scalar(where, expected, value)
    origin, args = _shape(expected)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            try:
                return _check(where, option, value)
            except SchemaError as exc:
                errors.append(exc.detail)
        raise SchemaError("wrong-type", f"{where}: {value!r} matches none of {expected}")
    if origin is tuple:
        item, *rest = args
        if rest != [Ellipsis]:
            raise TypeError(f"schema type {expected!r} of {where}: only tuple[X, ...] is supported")
        if not isinstance(value, list):
            raise SchemaError("wrong-type", f"{where} must be an array")
        return tuple(_check(f"{where}[{i}]", item, v) for i, v in enumerate(value))
    if expected is type(None):
        if value is None:
            return None
        raise SchemaError("wrong-type", f"{where} must be null")
    if dataclasses.is_dataclass(expected):
        if not isinstance(value, dict):
            raise SchemaError("wrong-type", f"{where} must be an object")
        kwargs = {}
        for name, hint, has_default in _fields_of(expected):
            if name not in value:
                if has_default:
                    continue  # a field added later, absent from older records
                raise SchemaError("missing-field", f"{where}.{name} is required")
            kwargs[name] = _check(f"{where}.{name}", hint, value[name])
        return expected(**kwargs)  # type: ignore[operator]
    raise TypeError(f"schema type {expected!r} of {where} is not supported")


def _check_scalar(where: str, expected: Any, value: Any) -> Any:
    if expected is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise SchemaError("wrong-type", f"{where} must be a number, got {type(value).__name__}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SchemaError("wrong-type", f"{where} must be an integer, got {type(value).__name__}")
    if expected is str:
        if not isinstance(value, str):
            raise SchemaError("wrong-type", f"{where} must be a string, got {type(value).__name__}")
        if "\x00" in value:
            # no PostgreSQL text can hold it: let through, it would stop the Postgres sink at
            # this record on every retry, and every decision behind it
            raise SchemaError("invalid-text", f"{where} contains a NUL character")
        return value
    if isinstance(value, bool):  # expected is bool, the last of _SCALARS
        return value
    raise SchemaError("wrong-type", f"{where} must be a boolean")


_SCALARS = frozenset({float, int, str, bool})


@dataclass(frozen=True)
class UploadEvent(Event):
    """A platform's upload: who posted which image, with the image bytes inline."""

    SCHEMA: ClassVar[str] = "picnix.UploadEvent"
    VERSION: ClassVar[int] = 1
    PAYLOAD_FIELD: ClassVar[str | None] = "image"

    upload_id: str
    author: str
    title: str
    uploaded_at: str
    image: bytes
    description: str = ""
    filename: str = ""
    tenant: str = "default"

    def __post_init__(self) -> None:
        for name in ("upload_id", "author"):
            if not getattr(self, name).strip():
                raise SchemaError("empty-field", f"{self.SCHEMA}.{name} must not be empty")


@dataclass(frozen=True)
class FeatureEvent(Event):
    """The extract stage's output: a compact signature and a pointer to the image bytes."""

    SCHEMA: ClassVar[str] = "picnix.FeatureEvent"
    VERSION: ClassVar[int] = 1
    PAYLOAD_FIELD: ClassVar[str | None] = "signature"

    upload_id: str
    post: PostInfo
    image: ImageInfo
    method: str
    upload_ref: UploadRef
    extract_seconds: float
    signature: bytes


@dataclass(frozen=True)
class DecisionEvent(Event):
    """One decision per upload, emitted by ``decide`` and consumed by the sinks.

    ``seq`` is the offset of the feature event that produced the decision: a total order that
    is the same on every replay, used to restore engine state and to order sink writes.
    """

    SCHEMA: ClassVar[str] = "picnix.DecisionEvent"
    VERSION: ClassVar[int] = 1

    upload_id: str
    decision: DecisionInfo
    post: PostInfo
    image: ImageInfo
    upload_ref: UploadRef
    seq: int


@dataclass(frozen=True)
class DeadLetterEvent(Event):
    """An input that could not be processed, with the reason and the original record."""

    SCHEMA: ClassVar[str] = "picnix.DeadLetterEvent"
    VERSION: ClassVar[int] = 1
    PAYLOAD_FIELD: ClassVar[str | None] = "original"

    reason: str
    detail: str
    stage: str
    source: UploadRef
    upload_id: str | None
    failed_at: str
    original: bytes


@dataclass(frozen=True)
class StoredImageRecord(Event):
    """Engine state for one stored image or alias (a duplicate kept as another view of its
    image), kept in the decide agent's changelog-backed table.

    Re-applying these records in ``seq`` order rebuilds the engine exactly after a restart.
    ``signature`` is the method's state form of the signature (``DedupMethod.state_to_bytes``):
    the local features it leaves out live in the method's own store.
    """

    SCHEMA: ClassVar[str] = "picnix.StoredImageRecord"
    VERSION: ClassVar[int] = 2  # 2: the signature's state form (was the whole signature)
    PAYLOAD_FIELD: ClassVar[str | None] = "signature"

    seq: int
    upload_id: str
    decision: DecisionInfo
    signature: bytes


@dataclass(frozen=True)
class IndexEntryRecord(Event):
    """An entry added to the index (a stored image or an alias), on ``picnix.index``: what every
    worker's replica applies to match uploads against the same index as the commit.

    ``seq`` is the entry's position in the index log (the commit's input offset), ``entry`` the
    method's replica form of the signature (``DedupMethod.replica_to_bytes``: its state form and
    its local features), so a replica needs nothing but this topic.
    """

    SCHEMA: ClassVar[str] = "picnix.IndexEntryRecord"
    VERSION: ClassVar[int] = 1
    PAYLOAD_FIELD: ClassVar[str | None] = "entry"

    seq: int
    upload_id: str
    decision: DecisionInfo
    entry: bytes


@dataclass(frozen=True)
class IndexRemovalRecord(Event):
    """An entry that left the index at ``seq`` (its post, or its image's last post, deleted)."""

    SCHEMA: ClassVar[str] = "picnix.IndexRemovalRecord"
    VERSION: ClassVar[int] = 1

    seq: int
    upload_id: str


@dataclass(frozen=True)
class MatchEvent(Event):
    """``match``'s output for one upload, on ``picnix.matches``: what the upload's evaluation on a
    replica found, and the index-log ``position`` that replica had applied, so the commit can
    settle it against the changes since (engine.delta). ``feature`` is the upload's feature
    event record, passed through whole."""

    SCHEMA: ClassVar[str] = "picnix.MatchEvent"
    VERSION: ClassVar[int] = 1
    PAYLOAD_FIELD: ClassVar[str | None] = "feature"

    upload_id: str
    decision: DecisionInfo | None  # None: not evaluated (extracted by another method)
    position: int
    match_seconds: float
    feature: bytes
    checks: tuple[CheckInfo, ...] = ()  # what the evaluation verified, refusals too
    queries: tuple[QueryInfo, ...] = ()  # what its index queries answered


@dataclass(frozen=True)
class PostUpdateEvent(Event):
    """A platform edits a post's text. Keyed by post id, so it follows its upload in order."""

    SCHEMA: ClassVar[str] = "picnix.PostUpdateEvent"
    VERSION: ClassVar[int] = 1

    post_id: str
    title: str
    description: str
    updated_at: str


@dataclass(frozen=True)
class PostDeleteEvent(Event):
    """A platform deletes a post. Keyed by post id, so it follows its upload in order."""

    SCHEMA: ClassVar[str] = "picnix.PostDeleteEvent"
    VERSION: ClassVar[int] = 1

    post_id: str
    deleted_at: str


@dataclass(frozen=True)
class PostUpdatedEvent(Event):
    """``decide`` accepted an update of a live post; the Postgres sink applies it."""

    SCHEMA: ClassVar[str] = "picnix.PostUpdatedEvent"
    VERSION: ClassVar[int] = 1

    post_id: str
    title: str
    description: str
    updated_at: str
    seq: int


@dataclass(frozen=True)
class PostDeletedEvent(Event):
    """``decide`` removed a post; ``orphaned`` says its image lost its last post and is gone too.

    An orphaned image has left the engine's index and its cluster; the sinks delete its row and
    its object. ``own_sha256``: the post's own bytes, stored beside its reference because it
    added content of its own (``DecisionInfo.keeps_own_bytes``), whose object goes with it
    (added later: None in older records and for every other post).
    """

    SCHEMA: ClassVar[str] = "picnix.PostDeletedEvent"
    VERSION: ClassVar[int] = 1

    post_id: str
    image_id: str
    cluster_id: str
    sha256: str
    orphaned: bool
    deleted_at: str
    seq: int
    own_sha256: str | None = None


UPLOAD_TOPIC_EVENTS: tuple[type[Event], ...] = (UploadEvent, PostUpdateEvent, PostDeleteEvent)
FEATURE_TOPIC_EVENTS: tuple[type[Event], ...] = (FeatureEvent, PostUpdateEvent, PostDeleteEvent)
MATCH_TOPIC_EVENTS: tuple[type[Event], ...] = (MatchEvent, PostUpdateEvent, PostDeleteEvent)
INDEX_TOPIC_EVENTS: tuple[type[Event], ...] = (IndexEntryRecord, IndexRemovalRecord)
DECISION_TOPIC_EVENTS: tuple[type[Event], ...] = (
    DecisionEvent, PostUpdatedEvent, PostDeletedEvent,
)


def parse_event(record: bytes | None, allowed: tuple[type[Event], ...]) -> Event:
    """Parse a record of a topic that carries several event types, chosen by schema name."""
    frame = unpack(record)
    schema = frame.header.get("schema")
    for cls in allowed:
        if schema == cls.SCHEMA:
            return cls.from_frame(frame)
    names = ", ".join(c.SCHEMA for c in allowed)
    raise SchemaError("wrong-schema", f"{schema!r} is not one of {names}")
