"""An index object's in-memory state as named numpy arrays and scalars, for the engine snapshot.

Why a generic walk over ``vars(obj)`` instead of a hand-written field list per class: the
indexes gain fields as the engine evolves (word statistics, epochs), and a field list that is
not updated drops the new field silently, so a restored engine decides differently from the
one that was saved. Walking the instance's attributes means a new array or scalar is saved
without anyone touching the snapshot code, and a new attribute of a type the snapshot cannot
write (a dict, a deque, an object) is refused when saving, naming the attribute. Loading is as
strict: the saved attribute names must be exactly those a fresh instance has, each of the same
kind, so a snapshot written by another version of a class is refused, not half-applied.

Names are attribute names, nested with ``.`` (``_hashes._codes``). A state is a plain
``dict[str, np.ndarray]``: a scalar attribute is a 0-d array (bool, int64 or float64) and comes
back as the Python scalar its fresh instance holds; the snapshot writes each array of one or
more dimensions as ``<name>.npy`` and each 0-d one in its JSON header. Only Python ``bool``/
``int``/``float`` scalars are accepted (exact types: a numpy scalar would come back as another
type), and only arrays of fixed-size dtypes (an object array would need pickle).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

import numpy as np

StateArrays = dict[str, np.ndarray]
NAME_SEPARATOR = "."
# attribute names as files: letters, digits, underscores, nested by the separator
_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
# the 0-d dtype of each scalar type, and the dtype kinds a saved scalar may have to be one
_SCALAR_DTYPES: dict[type, np.dtype] = {
    bool: np.dtype(bool),
    int: np.dtype(np.int64),
    float: np.dtype(np.float64),
}
_SCALAR_KINDS = {bool: "b", int: "i", float: "f"}
_STRING_BLOB = "utf8"
_STRING_ENDS = "ends"
_STRING_PRESENT = "present"


class UnsavableAttribute(TypeError):
    """An attribute the snapshot has no form for: saving it would need pickle or code that
    knows its type, and leaving it out would restore a different engine."""


class StateMismatch(ValueError):
    """A saved state does not fit the class it is loaded into: an attribute is missing, extra
    or of another kind, i.e. the class changed since the state was saved."""


def names(state: Mapping[str, np.ndarray]) -> set[str]:
    """The top-level names (the attributes of the object ``state`` is of)."""
    return {n.split(NAME_SEPARATOR, 1)[0] for n in state}


def sub(state: Mapping[str, np.ndarray], name: str) -> StateArrays:
    """The state nested under ``name``, with the prefix removed."""
    prefix = name + NAME_SEPARATOR
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def nest(name: str, state: Mapping[str, np.ndarray]) -> StateArrays:
    """``state`` under ``name`` (the inverse of ``sub``)."""
    return {f"{name}{NAME_SEPARATOR}{k}": v for k, v in state.items()}


def item(state: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """``state[name]``, or StateMismatch naming what is missing."""
    try:
        return state[name]
    except KeyError:
        raise StateMismatch(f"saved state has no {name!r}") from None


def check_name(name: str) -> str:
    """``name`` if it can be a file name of the snapshot, else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"state name {name!r} is not a dotted attribute name")
    return name


def plain_attributes(obj: object, handled: Collection[str]) -> StateArrays:
    """Every attribute of ``obj`` not in ``handled`` (the ones its class saves itself or does
    not save): arrays as they are, scalars as 0-d arrays; any other type raises
    UnsavableAttribute."""
    out: StateArrays = {}
    owner = type(obj).__name__
    for name, value in vars(obj).items():
        if name in handled:
            continue
        check_name(name)
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise UnsavableAttribute(
                    f"{owner}.{name}: an array of Python objects ({value.dtype}) would need "
                    f"pickle; give it a fixed-size dtype"
                )
            out[name] = value
        elif type(value) in _SCALAR_DTYPES:
            try:
                out[name] = np.array(value, _SCALAR_DTYPES[type(value)])
            except OverflowError as exc:
                raise UnsavableAttribute(f"{owner}.{name}: {value} does not fit 64 bits") from exc
        else:
            raise UnsavableAttribute(
                f"{owner}.{name}: the snapshot has no form for {type(value).__qualname__} "
                f"(it writes numpy arrays and bool/int/float); give {owner}.to_arrays a way "
                f"to save it"
            )
    return out


def check_names(obj: object, state: Mapping[str, np.ndarray], unsaved: Collection[str]) -> None:
    """The saved top-level names must be ``obj``'s attributes (a fresh instance's) less
    ``unsaved``, exactly."""
    expected = set(vars(obj)) - set(unsaved)
    got = names(state)
    if got != expected:
        owner = type(obj).__name__
        missing = ", ".join(sorted(expected - got)) or "none"
        extra = ", ".join(sorted(got - expected)) or "none"
        raise StateMismatch(
            f"saved {owner} does not match this version of the class "
            f"(missing: {missing}; unknown: {extra})"
        )


def restore_plain(obj: object, state: Mapping[str, np.ndarray], handled: Collection[str]) -> None:
    """Set ``obj``'s attributes not in ``handled`` from ``state``. ``obj`` is a fresh instance:
    each saved value must be of the kind its fresh value is (an array of the same dtype and
    number of dimensions, or a 0-d array of the fresh scalar's kind, restored as that type)."""
    owner = type(obj).__name__
    for name, fresh in list(vars(obj).items()):
        if name in handled:
            continue
        saved = item(state, name)
        if isinstance(fresh, np.ndarray):
            if saved.dtype != fresh.dtype or saved.ndim != fresh.ndim:
                raise StateMismatch(
                    f"saved {owner}.{name} is {saved.dtype} {saved.ndim}-d, this version "
                    f"holds {fresh.dtype} {fresh.ndim}-d"
                )
            setattr(obj, name, saved)
            continue
        kind = _SCALAR_KINDS.get(type(fresh))
        if kind is None or saved.ndim != 0 or saved.dtype.kind != kind:
            raise StateMismatch(
                f"saved {owner}.{name} is {saved.dtype} {saved.ndim}-d, this version holds "
                f"a {type(fresh).__name__}"
            )
        setattr(obj, name, type(fresh)(saved.item()))


def encode_strings(values: Sequence[str | None]) -> StateArrays:
    """A list of strings (None allowed) as a UTF-8 blob, end offsets and a presence mask."""
    present = np.fromiter((v is not None for v in values), bool, len(values))
    texts = [v if v is not None else "" for v in values]
    joined = "".join(texts)
    if joined.isascii():
        blob = joined.encode("ascii")
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    else:
        encoded = [t.encode() for t in texts]
        blob = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    return {
        _STRING_BLOB: np.frombuffer(blob, np.uint8).copy(),
        _STRING_ENDS: np.cumsum(lengths),
        _STRING_PRESENT: present,
    }


def decode_strings(state: Mapping[str, np.ndarray]) -> list[str | None]:
    """The list ``encode_strings`` wrote."""
    blob = item(state, _STRING_BLOB).tobytes()
    ends = item(state, _STRING_ENDS)
    present = item(state, _STRING_PRESENT)
    if len(ends) != len(present) or (len(ends) and int(ends[-1]) != len(blob)):
        raise StateMismatch(
            f"saved strings disagree: {len(ends)} ends, {len(present)} flags, "
            f"{len(blob)} bytes (last end {int(ends[-1]) if len(ends) else 0})"
        )
    stops = ends.tolist()
    starts = [0, *stops[:-1]] if stops else []
    if blob.isascii():
        text = blob.decode("ascii")
        return [
            text[a:b] if p else None
            for a, b, p in zip(starts, stops, present.tolist(), strict=True)
        ]
    return [
        blob[a:b].decode() if p else None
        for a, b, p in zip(starts, stops, present.tolist(), strict=True)
    ]
