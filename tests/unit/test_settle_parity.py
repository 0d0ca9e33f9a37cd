"""A match on a lagging replica, settled by the commit, decides exactly as one sequential engine.

The stream mixes scikit-image pictures, their edited copies (some arriving while their original
is still in flight), distinct pictures and deletions; each upload is matched on one of two
replicas that have applied the index log only up to a random earlier position.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.decider import checks_from_info, checks_to_info, queries_to_info
from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.decode import decode_image
from stream_processors.engine.default_method import DefaultMethod, DefaultSignature
from stream_processors.engine.delta import epoch_start
from tests.imagegen import distinct_png, encode

pytestmark = pytest.mark.slow


def _bgr(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _edits(img: np.ndarray) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [
        np.ascontiguousarray(img[h // 8 : h - h // 8, w // 8 : w - w // 8]),
        cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        np.ascontiguousarray(img[:, ::-1]),
    ]


@dataclass(frozen=True)
class Upload:
    upload_id: str
    sig: DefaultSignature | None  # None: delete the post ``upload_id``


@pytest.fixture(scope="module")
def stream() -> list[Upload]:
    probe = DefaultMethod()

    def sig(payload: bytes) -> DefaultSignature:
        return probe.extract(decode_image(payload))

    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.camera()]
    out: list[Upload] = []
    for i, rgb in enumerate(pictures):
        bgr = _bgr(rgb)
        out.append(Upload(f"p{i}", sig(encode(bgr, ".png"))))
        # copies right behind their original: in flight together, on different replicas
        out.extend(
            Upload(f"p{i}-e{j}", sig(encode(e, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 85])))
            for j, e in enumerate(_edits(bgr))
        )
        out.extend(Upload(f"d{i}-{k}", sig(distinct_png(100 * i + k))) for k in range(4))
    rng = random.Random(7)
    rng.shuffle(out[5:])  # the first picture's copies stay behind it, the rest arrive in any order
    # an exact copy of bytes, and deletions of a copy and of an original with copies
    out.append(Upload("p0-again", out[0].sig))
    out.insert(30, Upload("p1-e0", None))
    out.insert(40, Upload("d2-1", None))
    return out


def _sequential(stream: list[Upload]) -> list[Decision]:
    engine = DefaultMethod()
    decisions: list[Decision] = []
    for seq, up in enumerate(stream):
        if up.sig is None:
            _delete(engine, decisions, up.upload_id, seq)
            continue
        d = engine.evaluate(up.upload_id, up.sig)
        engine.apply(d, up.sig, seq)
        decisions.append(d)
    return decisions


Removal = tuple[str, str]  # ("alias" | "image", id)


def _delete(engine: DefaultMethod, decisions: list[Decision], post: str, seq: int) -> list[Removal]:
    """What Decider._delete does to the engine (refs counted from the decisions so far)."""
    d = next(x for x in decisions if x.upload_id == post)
    removed: list[Removal] = []
    if d.image_id != post:
        removed.append(("alias", post))
    if not any(x.image_id == d.image_id for x in decisions if x.upload_id != post):
        removed.append(("image", d.image_id))
    _remove(engine, removed, seq)
    return removed


def _remove(engine: DefaultMethod, removed: list[Removal], seq: int) -> None:
    for what, entry in removed:
        if what == "alias":
            engine.remove_alias(entry, seq)
        else:
            engine.remove(entry, seq)


def _catch_up(replica: DefaultMethod, log: list[LogEntry], start: int, end: int) -> None:
    for s, d, sig, removed in log[start:end]:
        if d is None:
            _remove(replica, removed, s)
        else:
            assert sig is not None
            replica.apply(d, sig, s)


# (seq, decision and signature applied, or the entries removed)
LogEntry = tuple[int, Decision | None, DefaultSignature | None, list[Removal]]


@pytest.mark.parametrize(("max_lag", "catch_up"), [(0, False), (2, False), (6, False), (6, True)])
def test_lagging_replicas_settle_to_the_sequential_decisions(
    stream: list[Upload], max_lag: int, catch_up: bool
) -> None:
    """``catch_up``: after its match, the replica applies some more of the log and settles
    its own match at that newer position before the commit settles it (IndexReplica.catch_up)."""
    expected = _sequential(stream)
    commit = DefaultMethod()
    replicas = [DefaultMethod(), DefaultMethod()]
    applied = [0, 0]  # how many log entries each replica has applied
    log: list[LogEntry] = []
    rng = random.Random(max_lag)
    decisions: list[Decision] = []
    reevaluated = merged = caught_up = 0
    for seq, up in enumerate(stream):
        if up.sig is None:
            removed = _delete(commit, decisions, up.upload_id, seq)
            if removed:
                log.append((seq, None, None, removed))
            continue
        r = rng.randrange(2)
        # the replica catches up to a random point at most max_lag entries behind the log
        target = max(applied[r], len(log) - rng.randint(0, max_lag))
        _catch_up(replicas[r], log, applied[r], target)
        applied[r] = target
        checks = CheckMemo()
        matched = replicas[r].evaluate(up.upload_id, up.sig, checks)
        if catch_up and target < len(log):
            at_match = replicas[r].position
            newer = rng.randint(target, len(log))
            _catch_up(replicas[r], log, target, newer)
            applied[r] = newer
            matched = replicas[r].settle(up.upload_id, up.sig, matched, at_match, checks).decision
            caught_up += newer > target
        # the verifications and index answers travel to the commit as the match event carries
        # them
        carried = checks_from_info(checks_to_info(checks), queries_to_info(checks))
        settled = commit.settle(up.upload_id, up.sig, matched, replicas[r].position, carried)
        reevaluated += settled.reevaluated
        merged += settled.reevaluated and not settled.index_queried
        if commit.apply(settled.decision, up.sig, seq):
            log.append((seq, settled.decision, up.sig, []))
        decisions.append(settled.decision)
    assert decisions == expected
    assert sum(d.kind is DecisionKind.DUPLICATE_REFERENCE for d in decisions) >= 12
    if catch_up:
        assert caught_up >= 10
    if max_lag == 0:
        assert reevaluated == 0
    else:
        # most evaluations again merged the match's index answers with the entries added since
        assert merged > reevaluated / 2


def test_a_copy_of_an_image_still_in_flight_is_settled_against_it(stream: list[Upload]) -> None:
    """The hard case: the original is committed after the replica matched its copy."""
    original, copy = stream[0], stream[1]
    assert original.sig is not None and copy.sig is not None
    commit, replica = DefaultMethod(), DefaultMethod()
    first = replica.evaluate(original.upload_id, original.sig)
    commit.apply(commit.settle(original.upload_id, original.sig, first, -1).decision, original.sig)
    matched = replica.evaluate(copy.upload_id, copy.sig)  # the replica has not seen the original
    assert matched.kind is DecisionKind.NEW_CLUSTER
    settled = commit.settle(copy.upload_id, copy.sig, matched, replica.position)
    assert settled.reevaluated
    assert settled.decision.kind is DecisionKind.DUPLICATE_REFERENCE
    assert settled.decision.image_id == original.upload_id


def test_epochs_are_powers_of_two_spans_that_grow_with_the_position() -> None:
    assert epoch_start(-1) == epoch_start(15) == -1
    assert epoch_start(16) == epoch_start(31) == 16
    assert epoch_start(1000) == 992  # span 32 from 512 on
    assert epoch_start(5_000_000) == 5_000_000 // 1024 * 1024
    starts = [epoch_start(p) for p in range(20_000)]
    assert starts == sorted(starts)
    assert all(s <= p for p, s in enumerate(starts))
