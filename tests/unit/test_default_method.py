"""The default method's decisions on generated edits of scikit-image's bundled pictures."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.checks import Refused
from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import (
    REASON_IDENTICAL_BYTES,
    DefaultMethod,
    DefaultSignature,
    Evidence,
)
from stream_processors.engine.feature_store import MappingFeatureStore
from stream_processors.engine.method import build_method
from stream_processors.engine.verify import PixelRule

Edit = Callable[[np.ndarray], np.ndarray]


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _encode(bgr: np.ndarray, ext: str = ".png", params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, bgr, params or [])
    assert ok
    return buf.tobytes()


def _sig(method: DefaultMethod, payload: bytes) -> DefaultSignature:
    return method.extract(decode_image(payload))


def _crop(frac: float) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        dy, dx = int(h * frac / 2), int(w * frac / 2)
        return np.ascontiguousarray(img[dy : h - dy, dx : w - dx])

    return f


def _rotate(deg: float) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    return f


def _jpeg(q: int) -> Edit:
    def f(img: np.ndarray) -> np.ndarray:
        buf = np.frombuffer(_encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q]), np.uint8)
        return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)

    return f


EDITS: dict[str, Edit] = {
    "hflip": lambda img: np.ascontiguousarray(img[:, ::-1]),
    "crop20": _crop(0.20),
    "jpeg40": _jpeg(40),
    "resize0.5": lambda img: cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "rotate3": _rotate(3.0),
    "border": lambda img: cv2.copyMakeBorder(
        img, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    ),
    "gamma": lambda img: (255 * (img / 255.0) ** 0.75).astype(np.uint8),
}


@pytest.fixture(scope="module")
def originals() -> dict[str, np.ndarray]:
    return {"astronaut": _bgr(data.astronaut()), "chelsea": _bgr(data.chelsea())}


def _decide(method: DefaultMethod, upload_id: str, payload: bytes) -> Decision:
    sig = _sig(method, payload)
    d = method.evaluate(upload_id, sig)
    method.apply(d, sig)
    return d


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_edited_copy_references_the_original(
    originals: dict[str, np.ndarray], name: str, edit: str
) -> None:
    m = DefaultMethod()
    first = _decide(m, "u-orig", _encode(originals[name]))
    assert first.kind is DecisionKind.NEW_CLUSTER and first.image_id == "u-orig"
    copy = _decide(m, "u-copy", _encode(EDITS[edit](originals[name])))
    assert copy.kind is DecisionKind.DUPLICATE_REFERENCE, copy
    assert copy.image_id == "u-orig" and copy.cluster_id == "u-orig"


def test_exact_bytes_short_circuit(originals: dict[str, np.ndarray]) -> None:
    m = DefaultMethod()
    payload = _encode(originals["chelsea"])
    _decide(m, "a", payload)
    again = _decide(m, "b", payload)
    assert again.kind is DecisionKind.DUPLICATE_REFERENCE
    assert again.image_id == "a" and again.method.endswith("sha256")


def test_different_artworks_are_not_duplicates() -> None:
    m = DefaultMethod()
    kinds = [
        _decide(m, f"u{i}", _encode(_bgr(rgb))).kind
        for i, rgb in enumerate((data.astronaut(), data.coffee(), data.chelsea(), data.rocket()))
    ]
    assert DecisionKind.DUPLICATE_REFERENCE not in kinds


def _sprite(patch_colour: tuple[int, int, int]) -> np.ndarray:
    """A 24x24 pixel-art figure upscaled x16 nearest-neighbour, like a CryptoPunk."""
    art = np.zeros((24, 24, 3), np.uint8)
    art[:] = (150, 133, 99)
    art[4:22, 7:17] = (90, 150, 200)  # head
    art[9, 9] = art[9, 14] = (0, 0, 0)  # eyes
    art[15, 10:14] = (40, 40, 120)  # mouth
    art[12, 11] = patch_colour  # one central pixel: the differing "trait"
    return cv2.resize(art, (384, 384), interpolation=cv2.INTER_NEAREST)


def test_sprites_one_pixel_apart_are_not_duplicates() -> None:
    m = DefaultMethod()
    _decide(m, "a", _encode(_sprite((90, 150, 200))))
    other = _decide(m, "b", _encode(_sprite((20, 20, 20))))
    assert other.kind is not DecisionKind.DUPLICATE_REFERENCE
    # ...while the very same sprite re-encoded is one
    same = _decide(m, "c", _encode(_sprite((90, 150, 200)), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 60]))
    assert same.kind is DecisionKind.DUPLICATE_REFERENCE and same.image_id == "a"


def test_signature_bytes_round_trip(originals: dict[str, np.ndarray]) -> None:
    m = DefaultMethod()
    sig = _sig(m, _encode(originals["astronaut"]))
    blob = m.signature_to_bytes(sig)
    back = m.signature_from_bytes(blob)
    assert back.sha256 == sig.sha256 and (back.width, back.height) == (sig.width, sig.height)
    for a, b in (
        (back.hashes, sig.hashes),
        (back.coarse, sig.coarse),
        (back.local.thumb, sig.local.thumb),
        (back.local.keypoints.points, sig.local.keypoints.points),
        (back.local.keypoints.descriptors, sig.local.keypoints.descriptors),
        (back.mirror.descriptors, sig.mirror.descriptors),
    ):
        assert np.array_equal(a, b)
    assert back.local.frame_size == sig.local.frame_size
    assert m.signature_to_bytes(back) == blob
    with pytest.raises(ValueError):
        m.signature_from_bytes(b"XXX" + blob[3:])


def _stream() -> list[tuple[str, bytes]]:
    ast, chel, cof = _bgr(data.astronaut()), _bgr(data.chelsea()), _bgr(data.coffee())
    return [
        ("u1", _encode(ast)),
        ("u2", _encode(cof)),
        ("u3", _encode(EDITS["crop20"](ast))),
        ("u4", _encode(chel)),
        ("u5", _encode(EDITS["hflip"](chel))),
        ("u6", _encode(EDITS["jpeg40"](cof))),
    ]


def test_apply_replay_rebuilds_the_same_state() -> None:
    live = DefaultMethod()
    log: list[tuple[Decision, bytes]] = []
    for uid, payload in _stream():
        sig = _sig(live, payload)
        d = live.evaluate(uid, sig)
        live.apply(d, sig)
        log.append((d, live.signature_to_bytes(sig)))
    replayed = DefaultMethod()
    for d, blob in log:
        replayed.apply(d, replayed.signature_from_bytes(blob))
    assert len(replayed) == len(live) and replayed.cluster_count() == live.cluster_count()
    probe = _encode(EDITS["rotate3"](_bgr(data.astronaut())))
    assert live.evaluate("p", _sig(live, probe)) == replayed.evaluate("p", _sig(replayed, probe))


def test_state_form_and_store_rebuild_the_same_state() -> None:
    """A restart re-applies each retained signature from its small state form and the record
    its FeatureStore kept; the rebuilt engine decides as the live one, the records are written
    once, and the state form leaves the local features out."""
    store: dict[str, bytes] = {}
    live = DefaultMethod(MappingFeatureStore(store))
    log: list[tuple[Decision, bytes]] = []
    for uid, payload in _stream():
        sig = _sig(live, payload)
        d = live.evaluate(uid, sig)
        if live.apply(d, sig):
            state = live.state_to_bytes(sig)
            assert len(state) < 400 < len(sig.local_record)
            assert store[uid] == sig.local_record
            log.append((d, state))
    kept = dict(store)
    replayed = DefaultMethod(MappingFeatureStore(store))
    for d, state in log:
        replayed.apply(d, replayed.state_from_bytes(d.upload_id, state))
    assert store == kept
    assert len(replayed) == len(live) and replayed.cluster_count() == live.cluster_count()
    probe = _encode(EDITS["rotate3"](_bgr(data.astronaut())))
    assert live.evaluate("p", _sig(live, probe)) == replayed.evaluate("p", _sig(replayed, probe))


def test_decisions_are_deterministic_given_the_order() -> None:
    runs = []
    for _ in range(2):
        m = DefaultMethod()
        runs.append([_decide(m, uid, payload) for uid, payload in _stream()])
    assert runs[0] == runs[1]
    kinds = [d.kind for d in runs[0]]
    assert kinds.count(DecisionKind.DUPLICATE_REFERENCE) == 3


def test_remove_takes_the_image_out_of_index_and_cluster(originals: dict[str, np.ndarray]) -> None:
    m = DefaultMethod()
    _decide(m, "a", _encode(originals["chelsea"]))
    m.remove("a")
    assert len(m) == 0 and m.cluster_count() == 0
    again = _decide(m, "b", _encode(EDITS["jpeg40"](originals["chelsea"])))
    assert again.kind is DecisionKind.NEW_CLUSTER and again.cluster_id == "b"


def test_build_method() -> None:
    assert build_method("default").name == "default"
    assert build_method("seed").name == "seed"
    with pytest.raises(ValueError):
        build_method("nope")


@pytest.mark.parametrize("first", ["orig", "copy"])
def test_reference_goes_to_the_earliest_stored_copy(
    originals: dict[str, np.ndarray], first: str
) -> None:
    """When two stored images of one picture both verify, the earlier stored one is referenced."""
    m = DefaultMethod()
    payloads = {
        "orig": _encode(originals["astronaut"]),
        "copy": _encode(EDITS["gamma"](originals["astronaut"])),
    }
    order = [first, "copy" if first == "orig" else "orig"]
    for uid in order:  # store both, as if the second had been missed as a duplicate
        sig = _sig(m, payloads[uid])
        m.apply(Decision(uid, DecisionKind.NEW_CLUSTER, uid, uid), sig)
    probe = _decide(m, "probe", _encode(EDITS["jpeg40"](originals["astronaut"])))
    assert probe.kind is DecisionKind.DUPLICATE_REFERENCE and probe.image_id == first


def test_far_hash_neighbours_get_no_dihedral_pixel_check(
    originals: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layout-hash neighbour whose 256-bit hash is farther than fast_max_distance is verified by
    keypoints only: the dihedral alignment is not tried."""
    from stream_processors.engine import default_method as dm

    m = DefaultMethod()
    _decide(m, "u-orig", _encode(originals["astronaut"]))
    sig = _sig(m, _encode(originals["chelsea"]))
    far = dm.SHORTLIST.fast_max_distance + 1
    monkeypatch.setattr(dm, "hash_candidates", lambda *_: {0: (far, 0)})
    tried: list[int] = []

    def fast_check(s: DefaultSignature, key: int, variant: int) -> Refused:
        tried.append(key)
        return Refused()

    monkeypatch.setattr(m, "_fast_check", fast_check)
    m.evaluate("u-other", sig)
    assert tried == []
    monkeypatch.setattr(dm, "hash_candidates", lambda *_: {0: (far - 1, 0)})
    m.evaluate("u-other", sig)
    assert tried == [0]


def _badge(img: np.ndarray, centre: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """A round sticker pasted on the picture, like a marketplace's logo."""
    out = img.copy()
    cv2.circle(out, centre, 45, colour, -1, cv2.LINE_AA)
    cv2.circle(out, centre, 30, (255, 255, 255), 6, cv2.LINE_AA)
    return out


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_a_duplicate_is_kept_as_an_alias_that_verifies_later_copies(
    originals: dict[str, np.ndarray], name: str
) -> None:
    """The first upload carries a sticker; the clean original references it and is kept as its
    alias; a copy with a sticker elsewhere verifies against the alias (one overlay) and, once
    the alias is gone, against the first itself (two separate overlays)."""
    m = DefaultMethod()
    clean = originals[name]
    h, w = clean.shape[:2]
    _decide(m, "first", _encode(_badge(clean, (70, 70), (0, 0, 200))))
    original = _decide(m, "original", _encode(clean))
    assert original.kind is DecisionKind.DUPLICATE_REFERENCE and original.image_id == "first"
    assert len(m) == 1  # an alias is no stored image

    other = _sig(m, _encode(_badge(clean, (w - 70, h - 70), (200, 100, 0))))
    via_alias = m.evaluate("other", other)
    assert via_alias.kind is DecisionKind.DUPLICATE_REFERENCE, via_alias
    assert via_alias.image_id == "first" and via_alias.cluster_id == "first"
    assert via_alias.via == "original" and via_alias.region is None  # traceable to the alias
    assert original.via is None
    m.remove_alias("original")
    direct = m.evaluate("other", other)
    assert direct.kind is DecisionKind.DUPLICATE_REFERENCE and direct.image_id == "first"
    assert direct.via is None and direct.reason == PixelRule.OVERLAYS


def test_an_exact_copy_keeps_no_alias(originals: dict[str, np.ndarray]) -> None:
    m = DefaultMethod()
    payload = _encode(originals["chelsea"])
    first = _sig(m, payload)
    assert m.apply(m.evaluate("a", first), first)
    again = _sig(m, payload)
    exact = m.evaluate("b", again)
    assert exact.method.endswith("sha256") and not m.apply(exact, again)
    near = _sig(m, _encode(EDITS["jpeg40"](originals["chelsea"])))
    copy = m.evaluate("c", near)
    assert copy.kind is DecisionKind.DUPLICATE_REFERENCE and m.apply(copy, near)
    # an alias ranks as its image: a re-upload of the alias's bytes references the image
    repeat = m.evaluate("d", _sig(m, _encode(EDITS["jpeg40"](originals["chelsea"]))))
    assert repeat.image_id == "a" and repeat.method.endswith("sha256")


def test_clean_copies_end_at_the_quick_check_and_the_others_go_on(
    originals: dict[str, np.ndarray],
) -> None:
    """Re-encoded, mirrored and brightened copies are decided by the quick clean-copy check;
    a hue-filtered copy is left to the full pixel check, which still references it."""
    m = DefaultMethod()
    img = originals["astronaut"]
    _decide(m, "u-orig", _encode(img))
    for upload_id, edit in (("u-jpeg", EDITS["jpeg40"]), ("u-flip", EDITS["hflip"])):
        d = _decide(m, upload_id, _encode(edit(img)))
        assert d.kind is DecisionKind.DUPLICATE_REFERENCE and d.image_id == "u-orig", d
        assert d.method == Evidence.HASH_QUICK, d
    brighter = np.clip(img.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    d = _decide(m, "u-bright", _encode(brighter))
    assert d.method == Evidence.HASH_QUICK and d.image_id == "u-orig", d
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + 10) % 180).astype(np.uint8)
    d = _decide(m, "u-hue", _encode(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)))
    assert d.kind is DecisionKind.DUPLICATE_REFERENCE and d.image_id == "u-orig", d
    assert d.method == Evidence.HASH_PIXELS, d


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_a_crop_s_decision_says_where_it_lies_in_the_original(
    originals: dict[str, np.ndarray], name: str
) -> None:
    """The region a keypoint match records is the crop's box in the original (within 2% of a
    side), so a moderator sees which part was copied; a whole copy records none or all of it."""
    m = DefaultMethod()
    img = originals[name]
    h, w = img.shape[:2]
    _decide(m, "u-orig", _encode(img))
    box = (0.1, 0.2, 0.85, 0.9)  # x0, y0, x1, y1
    crop = img[int(h * box[1]) : int(h * box[3]), int(w * box[0]) : int(w * box[2])]
    d = _decide(m, "u-crop", _encode(crop, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 85]))
    assert d.is_duplicate and d.image_id == "u-orig" and d.region is not None
    got = (d.region.x0, d.region.y0, d.region.x1, d.region.y1)
    assert np.allclose(got, box, atol=0.02), got
    assert d.reason == PixelRule.CLEAN_COPY  # the rule that accepted it, for the evidence
    whole = _decide(m, "u-copy", _encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]))
    assert whole.is_duplicate and whole.reason
    assert whole.region is None or whole.region.area > 0.9
    assert _decide(m, "u-same", _encode(img)).reason == REASON_IDENTICAL_BYTES
