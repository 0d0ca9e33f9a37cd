"""A match's recorded index answers, merged with the entries added since, are the index's
answers now: the same keys, ranks and distances, and the same word scores to the last bit."""

from __future__ import annotations

import numpy as np
import pytest

from stream_processors.engine import visual_words as vw
from stream_processors.engine.delta import AddedEntry, added_entry
from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.index_queries import (
    LiveQueries,
    MergedQueries,
    NotRecorded,
    QueryRecord,
    UploadQuery,
)

SHA_BYTES = 8


class Store:
    """The four indexes an evaluation queries, filled the way DefaultMethod fills them."""

    def __init__(self) -> None:
        self.sha = HammingIndex(8 * SHA_BYTES)
        self.hashes = HammingIndex(256)
        self.coarse = HammingIndex(64)
        self.words = vw.VisualWordIndex()
        self.ids: list[str] = []

    def add(self, sha: np.ndarray, code: np.ndarray, coarse: np.ndarray, desc: np.ndarray) -> int:
        key = len(self.ids)
        self.ids.append(f"e{key}")
        self.sha.add(key, sha)
        self.hashes.add(key, code)
        self.coarse.add(key, coarse)
        self.words.add(key, desc)
        return key

    def queries(self, upload: UploadQuery, record: QueryRecord | None = None) -> LiveQueries:
        return LiveQueries(
            upload, self.sha, self.hashes, self.coarse, self.words, self.ids.__getitem__, record
        )


def _near(rng: np.random.Generator, code: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, flips, replace=False)] ^= 1
    return np.packbits(bits)


def _noisy(rng: np.random.Generator, desc: np.ndarray, p: float) -> np.ndarray:
    out = desc.copy()
    out[rng.random(out.shape) < p] ^= 1
    return out


def _ask(q: LiveQueries | MergedQueries, counted: int) -> list[object]:
    """Every query the cascade makes, with its answers."""
    answers: list[object] = [q.exact()]
    for table, radius in (("hash", 15), ("hash", 40), ("coarse", 6)):
        for variant in (0, 1):
            answers.append(q.search(table, variant, radius, 3))
    answers.append(q.word_hits(12, 4, counted))
    return answers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_answers_are_the_index_answers_now(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vw, "DELTA_IMAGES", 40)  # merges of the word delta inside the window
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (12, 200, 32), dtype=np.uint8)
    query_desc = base[0]
    mirror_desc = _noisy(rng, base[1], 0.01)
    q_code = rng.integers(0, 256, 32, dtype=np.uint8)
    q_coarse = rng.integers(0, 256, 8, dtype=np.uint8)
    upload = UploadQuery(
        rng.integers(0, 256, SHA_BYTES, dtype=np.uint8),
        np.stack([q_code, _near(rng, q_code, 60)]),
        np.stack([q_coarse, _near(rng, q_coarse, 20)]),
        (query_desc, mirror_desc),
    )

    def entry(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # some near the query's hashes, some sharing its words, some its exact bytes
        sha = upload.sha_code.copy() if i % 17 == 5 else rng.integers(0, 256, SHA_BYTES, np.uint8)
        code = _near(rng, q_code, int(rng.integers(5, 60))) if i % 3 == 0 else (
            rng.integers(0, 256, 32, dtype=np.uint8)
        )
        coarse = _near(rng, q_coarse, int(rng.integers(1, 10))) if i % 4 == 0 else (
            rng.integers(0, 256, 8, dtype=np.uint8)
        )
        desc = _noisy(rng, base[int(rng.integers(0, 12))], float(rng.uniform(0.002, 0.05)))
        return sha, code, coarse, desc

    store = Store()
    for i in range(150):
        store.add(*entry(i))
    counted = 100  # the word statistics' epoch: the first 100 keys count in N and df
    record = QueryRecord()
    at_match = _ask(store.queries(upload, record), counted)
    added: list[tuple[int, AddedEntry]] = []
    for i in range(150, 190):
        sha, code, coarse, desc = entry(i)
        key = store.add(sha, code, coarse, desc)
        added.append((key, added_entry(sha.tobytes(), code, coarse, desc)))
    now = _ask(store.queries(upload), counted)
    entry_id = store.ids.__getitem__
    recorded_now = QueryRecord()
    merged = MergedQueries(upload, record, added, store.ids.index, store.words, entry_id,
                           recorded_now)
    assert _ask(merged, counted) == now
    # the merged answers, recorded, are what the index now records: a replica that settles
    # its own match passes them on for the commit to merge with what is added after
    live_now = QueryRecord()
    _ask(store.queries(upload, live_now), counted)
    assert recorded_now.items() == live_now.items()
    assert now != at_match  # the added entries changed the answers
    exact_now, exact_then = now[0], at_match[0]
    assert isinstance(exact_now, list) and isinstance(exact_then, list)
    assert len(exact_now) > len(exact_then)  # an added exact copy among them


def test_votes_of_is_the_query_score_of_that_image() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (6, 200, 32), dtype=np.uint8)
    idx = vw.VisualWordIndex()
    descs = [_noisy(rng, base[i % 6], 0.02) for i in range(60)]
    for key, d in enumerate(descs):
        idx.add(key, d)
    views = [base[2], _noisy(rng, base[3], 0.01)]
    hits = idx.query_views(views, 100, 4, 40)
    word_sets = [vw.QueryWordSet(v) for v in views]
    for key, d in enumerate(descs):
        votes = idx.votes_of(word_sets, key, vw.posted_words(d), 4, 40)
        for view in range(2):
            want = next((w.votes for w in hits[view] if w.key == key), None)
            assert votes[view] == want


def test_a_query_the_match_did_not_make_is_not_answered() -> None:
    upload = UploadQuery(
        np.zeros(SHA_BYTES, np.uint8), np.zeros((2, 32), np.uint8), np.zeros((2, 8), np.uint8),
        (np.zeros((0, 32), np.uint8), np.zeros((0, 32), np.uint8)),
    )
    merged = MergedQueries(upload, QueryRecord(), [], int, vw.VisualWordIndex(), str)
    with pytest.raises(NotRecorded, match="hash v0 r15 l3"):
        merged.search("hash", 0, 15, 3)
