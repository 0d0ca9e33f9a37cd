"""The engine snapshot: a DefaultMethod saved and loaded decides and evolves exactly as the one
that was saved, and a torn, corrupt or foreign snapshot is refused, not loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine import snapshot
from stream_processors.engine.array_state import (
    StateMismatch,
    UnsavableAttribute,
    decode_strings,
    encode_strings,
)
from stream_processors.engine.clusters import ClusterIndex
from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import (
    SHA256_INDEX_BYTES,
    DefaultMethod,
    DefaultSignature,
    Evidence,
)
from stream_processors.engine.feature_store import MappingFeatureStore
from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.snapshot import SnapshotRefused, load_snapshot, save_snapshot
from stream_processors.engine.visual_words import WORD_BITS, WORDS_PER_IMAGE, VisualWordIndex
from tests.imagegen import distinct_png

SYNTHETIC = 3000  # bulk-loaded images: enough that every index has compressed tables
SYNTHETIC_CLUSTERS = 400


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _encode(bgr: np.ndarray, ext: str = ".png", params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, bgr, params or [])
    assert ok
    return buf.tobytes()


def _jpeg(bgr: np.ndarray, quality: int) -> bytes:
    return _encode(bgr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


def _badge(img: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    out = img.copy()
    cv2.circle(out, centre, 45, (0, 0, 200), -1, cv2.LINE_AA)
    cv2.circle(out, centre, 30, (255, 255, 255), 6, cv2.LINE_AA)
    return out


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def _sig(payload: bytes) -> DefaultSignature:
    return DefaultMethod().extract(decode_image(payload))


def _decide(method: DefaultMethod, upload_id: str, payload: bytes) -> Decision:
    sig = _sig(payload)
    decision = method.evaluate(upload_id, sig)
    method.apply(decision, sig)
    return decision


def _bulk(method: DefaultMethod, template: DefaultSignature, rng: np.random.Generator) -> None:
    """SYNTHETIC random images in SYNTHETIC_CLUSTERS clusters (so most clusters have several
    members and per-bit counts), their records the template's."""
    ids = [f"syn-{i:05d}" for i in range(SYNTHETIC)]
    founders = ids[:SYNTHETIC_CLUSTERS]
    clusters = founders + [founders[j] for j in rng.integers(0, SYNTHETIC_CLUSTERS, SYNTHETIC)]
    words = rng.integers(0, 1 << (WORD_BITS + 1), (SYNTHETIC, 2 * WORDS_PER_IMAGE))
    method.bulk_load(
        ids,
        clusters[:SYNTHETIC],
        [rng.bytes(32) for _ in ids],
        rng.integers(0, 256, (SYNTHETIC, 32), dtype=np.uint8),
        rng.integers(0, 256, (SYNTHETIC, 8), dtype=np.uint8),
        words,
        [template.local_record] * SYNTHETIC,
    )


@pytest.fixture(scope="module")
def pictures() -> dict[str, np.ndarray]:
    return {
        "astronaut": _bgr(data.astronaut()),
        "chelsea": _bgr(data.chelsea()),
        "coffee": _bgr(data.coffee()),
        "rocket": _bgr(data.rocket()),
    }


def _build(pictures: dict[str, np.ndarray], store: dict[str, bytes]) -> DefaultMethod:
    """An engine with every kind of state: images before and after a bulk load (so both the
    compressed tables and the deltas hold entries), aliases, a removed image (a tombstone in
    the compressed part) and a removed alias (in the delta), clusters joined by real images."""
    m = DefaultMethod(MappingFeatureStore(store))
    ast, chel = pictures["astronaut"], pictures["chelsea"]
    for i in range(4):
        _decide(m, f"early-{i}", distinct_png(100 + i))
    assert _decide(m, "ast", _encode(ast)).kind is DecisionKind.NEW_CLUSTER
    assert _decide(m, "ast-jpeg", _jpeg(ast, 40)).kind is DecisionKind.DUPLICATE_REFERENCE
    _bulk(m, _sig(distinct_png(99)), np.random.default_rng(0))
    assert _decide(m, "chel-badge", _encode(_badge(chel, (70, 70)))).kind is (
        DecisionKind.NEW_CLUSTER
    )
    alias = _decide(m, "chel", _encode(chel))
    assert alias.kind is DecisionKind.DUPLICATE_REFERENCE and alias.image_id == "chel-badge"
    gone = _decide(m, "chel-gone", _jpeg(chel, 60))
    assert gone.kind is DecisionKind.DUPLICATE_REFERENCE
    for i in range(3):  # real images joining one cluster (the seed's rule, applied as decided)
        sig = _sig(distinct_png(200 + i))
        m.apply(Decision(f"member-{i}", DecisionKind.MERGE_CENTER, f"member-{i}", "early-0",
                         50.0, Evidence.CLUSTER), sig)
    m.remove("early-1")
    m.remove_alias("chel-gone")
    assert _decide(m, "late", distinct_png(300)).kind is DecisionKind.NEW_CLUSTER
    return m


@pytest.fixture(scope="module")
def built(pictures: dict[str, np.ndarray]) -> tuple[DefaultMethod, dict[str, bytes]]:
    store: dict[str, bytes] = {}
    return _build(pictures, store), store


def _queries(pictures: dict[str, np.ndarray]) -> list[tuple[str, DefaultSignature]]:
    ast, chel, cof = pictures["astronaut"], pictures["chelsea"], pictures["coffee"]
    h, w = chel.shape[:2]
    payloads = {
        "q-ast-rot": _encode(_rotate(ast, 3.0)),
        "q-ast-flip": _encode(np.ascontiguousarray(ast[:, ::-1])),
        "q-ast-same": _encode(ast),
        "q-chel-badge2": _encode(_badge(chel, (w - 70, h - 70))),  # verifies through the alias
        "q-chel-jpeg": _jpeg(chel, 60),
        "q-coffee": _encode(cof),
        "q-removed": distinct_png(101),
        "q-new": distinct_png(400),
        "q-member": _jpeg(decode_image(distinct_png(201)).pixels, 70),
    }
    return [(name, _sig(p)) for name, p in payloads.items()]


def _assert_same_state(a: DefaultMethod, b: DefaultMethod) -> None:
    sa, sb = a.to_arrays(), b.to_arrays()
    assert sorted(sa) == sorted(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert np.array_equal(sa[name], sb[name]), name
    assert a._images == b._images and list(a._images) == list(b._images)
    assert a._aliases == b._aliases and a._id_of_key == b._id_of_key
    assert a._entry_of_key == b._entry_of_key and a._next_key == b._next_key


def test_a_loaded_snapshot_decides_as_the_saved_engine(
    built: tuple[DefaultMethod, dict[str, bytes]],
    pictures: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    live, store = built
    path = save_snapshot(live, 1234, tmp_path)
    loaded = load_snapshot(tmp_path, MappingFeatureStore(store))
    assert loaded is not None and loaded.position == 1234 and loaded.path == path
    _assert_same_state(live, loaded.method)
    assert len(loaded.method) == len(live) and loaded.method.cluster_count() == live.cluster_count()
    decisions = []
    for name, sig in _queries(pictures):
        expected = live.evaluate(name, sig)
        assert loaded.method.evaluate(name, sig) == expected, name
        decisions.append(expected)
        # a match a replica made a few changes ago settles the same way (the change log)
        for back in (1, 3):
            before = live.position - back
            assert loaded.method.settle(name, sig, expected, before) == live.settle(
                name, sig, expected, before
            ), (name, back)
    kinds = [d.kind for d in decisions]
    # the queries cover copies (one through the alias) and non-copies
    assert kinds.count(DecisionKind.DUPLICATE_REFERENCE) >= 4
    assert DecisionKind.NEW_CLUSTER in kinds
    assert any(d.via == "chel" for d in decisions)


def test_a_loaded_snapshot_evolves_as_the_saved_engine(
    pictures: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The same further decisions, removals included, give the same keys and state."""
    live_store: dict[str, bytes] = {}
    live = _build(pictures, live_store)
    save_snapshot(live, 7, tmp_path)
    loaded = load_snapshot(tmp_path, MappingFeatureStore(dict(live_store)))
    assert loaded is not None
    twin = loaded.method
    further = [
        ("f-new", distinct_png(500)),
        ("f-copy", _jpeg(pictures["rocket"], 50)),
        ("f-rocket", _encode(pictures["rocket"])),
        ("f-rocket-copy", _jpeg(pictures["rocket"], 45)),
        ("f-chel-copy", _encode(np.ascontiguousarray(pictures["chelsea"][:, ::-1]))),
    ]
    for upload_id, payload in further:
        sig = _sig(payload)
        decision = live.evaluate(upload_id, sig)
        assert twin.evaluate(upload_id, sig) == decision, upload_id
        assert live.apply(decision, sig) == twin.apply(decision, sig)
    for m in (live, twin):
        m.remove("syn-00007")
        m.remove_alias("f-rocket-copy")
        m.remove("early-0")  # a cluster founder with members
    _assert_same_state(live, twin)
    for name, sig in _queries(pictures):
        assert live.evaluate(name, sig) == twin.evaluate(name, sig), name


def test_an_empty_engine_round_trips(tmp_path: Path) -> None:
    assert load_snapshot(tmp_path, MappingFeatureStore()) is None
    assert load_snapshot(tmp_path / "absent", MappingFeatureStore()) is None
    save_snapshot(DefaultMethod(), 0, tmp_path)
    loaded = load_snapshot(tmp_path, MappingFeatureStore())
    assert loaded is not None and len(loaded.method) == 0 and loaded.position == 0
    _assert_same_state(DefaultMethod(), loaded.method)


def _corrupt_byte(path: Path, at: Callable[[int], int]) -> None:
    raw = bytearray(path.read_bytes())
    raw[at(len(raw))] ^= 0x40
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("target", "damage"),
    [
        ("_hashes._codes.npy", "flip"),
        ("_words._post.npy", "truncate"),
        ("_clusters._sizes.npy", "delete"),
        ("header.json", "flip"),
        ("header.json", "edit"),
    ],
)
def test_a_corrupt_or_torn_snapshot_is_refused_naming_the_file(
    built: tuple[DefaultMethod, dict[str, bytes]], tmp_path: Path, target: str, damage: str
) -> None:
    live, store = built
    path = save_snapshot(live, 5, tmp_path)
    victim = path / target
    if damage == "flip":
        _corrupt_byte(victim, lambda n: n // 2)
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-10])
    elif damage == "delete":
        victim.unlink()
    else:  # still valid JSON, another position: only the header's checksum tells
        victim.write_text(victim.read_text().replace('"position": 5', '"position": 6'))
    with pytest.raises(SnapshotRefused, match=target.replace(".", r"\.")):
        load_snapshot(tmp_path, MappingFeatureStore(store))


def test_a_failed_write_keeps_the_previous_snapshot(
    built: tuple[DefaultMethod, dict[str, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live, store = built
    first = save_snapshot(live, 10, tmp_path)
    real_write = snapshot._write_array
    written: list[str] = []

    def failing_write(path: Path, array: np.ndarray) -> dict[str, object]:
        if len(written) == 5:
            raise OSError(28, "No space left on device")
        written.append(path.name)
        return real_write(path, array)

    monkeypatch.setattr(snapshot, "_write_array", failing_write)
    with pytest.raises(OSError, match="No space left"):
        save_snapshot(live, 20, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind
    loaded = load_snapshot(tmp_path, MappingFeatureStore(store))
    assert loaded is not None and loaded.position == 10 and loaded.path == first

    monkeypatch.setattr(snapshot, "_write_array", real_write)
    tmp_path.joinpath(f"{snapshot.TEMP_PREFIX}99999999-1").mkdir()  # a crashed writer's
    second = save_snapshot(live, 30, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [second.name] and second != first
    loaded = load_snapshot(tmp_path, MappingFeatureStore(store))
    assert loaded is not None and loaded.position == 30


def test_state_the_snapshot_cannot_write_is_refused_before_writing(tmp_path: Path) -> None:
    m = DefaultMethod()
    m.__dict__["_pending"] = {"a": 1}  # an attribute added later, of a type with no form
    with pytest.raises(UnsavableAttribute, match=r"DefaultMethod\._pending.*dict"):
        save_snapshot(m, 1, tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_field_added_to_the_word_index_is_saved_and_a_missing_one_refused(
    pictures: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scalar or array the word index gains (e.g. a statistics epoch) is saved and restored
    without touching the snapshot code; a snapshot of a class that lacks it is refused."""
    plain_init = VisualWordIndex.__init__

    def init_with_epoch(self: VisualWordIndex) -> None:
        plain_init(self)
        vars(self).update(_epoch=0, _stats_df=np.zeros(4, np.int32))

    monkeypatch.setattr(VisualWordIndex, "__init__", init_with_epoch)
    m = DefaultMethod()
    _decide(m, "a", _encode(pictures["coffee"]))
    vars(m._words).update(_epoch=3, _stats_df=np.array([1, 2, 3, 4], np.int32))
    save_snapshot(m, 1, tmp_path)
    loaded = load_snapshot(tmp_path, MappingFeatureStore())
    assert loaded is not None
    words = vars(loaded.method._words)
    assert words["_epoch"] == 3 and type(words["_epoch"]) is int
    assert words["_stats_df"].tolist() == [1, 2, 3, 4] and words["_stats_df"].dtype == np.int32
    monkeypatch.setattr(VisualWordIndex, "__init__", plain_init)
    with pytest.raises(SnapshotRefused, match=r"VisualWordIndex.*unknown: _epoch, _stats_df"):
        load_snapshot(tmp_path, MappingFeatureStore())


def test_each_index_round_trips_on_its_own() -> None:
    rng = np.random.default_rng(3)
    hashes = HammingIndex(256)
    hashes.add_many(np.arange(2000), rng.integers(0, 256, (2000, 32), dtype=np.uint8))
    for k in range(2000, 2100):
        hashes.add(k, rng.integers(0, 256, 32, dtype=np.uint8))
    hashes.remove(5)
    hashes.remove(2050)
    back = HammingIndex.from_arrays(hashes.to_arrays())
    q = rng.integers(0, 256, 32, dtype=np.uint8)
    assert back.search(q, 120, 50) == hashes.search(q, 120, 50)
    assert back.get(2099) is not None and 5 not in back and 2050 not in back
    assert back._delta_slots == hashes._delta_slots

    clusters = ClusterIndex(hashes)
    clusters.add_many([str(k % 300) for k in range(2000)], hashes._codes[:2000], np.arange(2000))
    clusters.leave("7", hashes.get(7), 7)  # type: ignore[arg-type]
    again = ClusterIndex.from_arrays(clusters.to_arrays(), hashes)
    assert again._key_of == clusters._key_of and again._id_of == clusters._id_of
    assert {k: v.dtype for k, v in again._counts.items()} == {
        k: v.dtype for k, v in clusters._counts.items()
    }
    assert all(np.array_equal(again._counts[k], v) for k, v in clusters._counts.items())
    assert again.nearest(q) == clusters.nearest(q)
    with pytest.raises(StateMismatch, match="HammingIndex"):
        HammingIndex.from_arrays({k: v for k, v in hashes.to_arrays().items() if k != "_live"})


def test_strings_round_trip_with_none_and_non_ascii() -> None:
    values = ["a", None, "", "été", "x" * 300, None]
    assert decode_strings(encode_strings(values)) == values
    assert decode_strings(encode_strings([])) == []


def test_sha_prefix_constant_matches_the_state() -> None:
    """The exact-bytes index's code size is part of the saved state (a change is refused)."""
    state = DefaultMethod().to_arrays()
    assert int(state["_sha.n_bits"]) == 8 * SHA256_INDEX_BYTES


def test_re_applying_a_stored_signature_decodes_no_thumbnail(
    pictures: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart re-applies each stored signature from its state form and record: the
    thumbnail is decoded only if something reads it, and then it is the record's."""
    from stream_processors.engine import local_features

    store: dict[str, bytes] = {}
    live = DefaultMethod(MappingFeatureStore(store))
    sig = _sig(_encode(pictures["coffee"]))
    decision = live.evaluate("a", sig)
    live.apply(decision, sig)
    decoded: list[int] = []
    real_decode = local_features._thumb_of_record

    def counting_decode(*args: object) -> np.ndarray:
        decoded.append(1)
        return real_decode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(local_features, "_thumb_of_record", counting_decode)
    replayed = DefaultMethod(MappingFeatureStore(store))
    again = replayed.state_from_bytes("a", live.state_to_bytes(sig))
    replayed.apply(decision, again)
    assert decoded == []
    assert np.array_equal(again.local.thumb, sig.local.thumb) and decoded == [1]
    assert again.local.thumb is again.local.thumb and decoded == [1]  # decoded once, kept
    assert np.array_equal(again.local.keypoints.descriptors, sig.local.keypoints.descriptors)
    probe = _sig(_jpeg(pictures["coffee"], 50))
    assert replayed.evaluate("p", probe) == live.evaluate("p", probe)
