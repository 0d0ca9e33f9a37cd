"""VisualWordIndex (CSR postings + delta + tombstones) answers like a plain inverted index."""

from __future__ import annotations

import numpy as np
import pytest

from stream_processors.engine import visual_words as vw


def _reference(
    descs: dict[int, np.ndarray], query: np.ndarray, limit: int, min_words: int
) -> list[tuple[int, float]]:
    n = len(descs)
    post: dict[int, list[int]] = {}
    for key, d in descs.items():
        for w in vw.posted_words(d).tolist():
            post.setdefault(w, []).append(key)
    max_df = min(vw.MAX_POSTINGS, max(vw.STOP_WORD_MIN_DF, int(vw.STOP_WORD_FRACTION * n)))
    score: dict[int, float] = {}
    count: dict[int, int] = {}
    for w in vw.query_words(query).tolist():
        keys = post.get(w)
        if not keys or len(keys) > max_df:
            continue
        for key in keys:
            score[key] = score.get(key, 0.0) + float(np.log(n / len(keys))) + 1.0
            count[key] = count.get(key, 0) + 1
    ok = sorted((k for k in score if count[k] >= min_words), key=lambda k: (-score[k], k))
    return [(k, score[k]) for k in ok[:limit]]


def test_index_matches_a_plain_inverted_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vw, "DELTA_IMAGES", 50)
    rng = np.random.default_rng(0)
    idx = vw.VisualWordIndex()
    base = rng.integers(0, 256, (30, 200, 32), dtype=np.uint8)
    first = base[rng.integers(0, 30, 100)].copy()
    first[rng.random(first.shape) < 0.01] ^= 1
    idx.add_many(np.arange(100), vw.word_rows(list(first)))
    live = {k: first[k] for k in range(100)}
    checked = 0
    for key in range(100, 400):
        d = base[rng.integers(0, 30)].copy()
        d[rng.random(d.shape) < 0.01] ^= 1
        idx.add(key, d)
        live[key] = d
        if rng.random() < 0.1:
            gone = int(rng.choice(list(live)))
            idx.remove(gone, live.pop(gone))
        if key % 23 == 0:
            q = base[rng.integers(0, 30)]
            got = [(v.key, v.votes) for v in idx.query(q, 1000, 3)]
            want = _reference(live, q, 1000, 3)
            # equal scores may differ in the last float bits (summation order): compare rounded
            assert sorted((-round(s, 6), k) for k, s in got) == sorted(
                (-round(s, 6), k) for k, s in want
            )
            checked += bool(got)
    assert checked > 5


def test_keys_sharing_a_prefilter_counter_are_counted_on_their_own() -> None:
    """The query keeps only postings whose counter (key mod 2^17) reaches min_words, then
    counts per key: a key with exactly min_words shared words is found, keys that reach it only
    together on one counter are not."""
    rng = np.random.default_rng(1)
    q = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    shared = vw.query_words(q)
    step = vw._PREFILTER_MASK + 1
    # key -> how many of the query's words it posts
    planted = {5: 3, 9: 2, 9 + step: 2, 11: 0, 11 + step: 4, 13 + 2 * step: 5}
    keys = [*planted, *range(100, 400)]  # the rest post only chance words
    rows = np.full((len(keys), 20), -1, np.int64)
    taken = 0
    for i, key in enumerate(keys):
        n = planted.get(key, 0)
        words = set(shared[taken : taken + n].tolist())
        taken += n
        while len(words) < 20:
            words.add(int(rng.integers(0, 1 << vw._SPACE_BITS)))
        rows[i] = sorted(words)
    idx = vw.VisualWordIndex()
    idx.add_many(np.array(keys), rows)
    got = {v.key for v in idx.query(q, 1000, 3)}
    assert got == {5, 11 + step, 13 + 2 * step}


def test_words_differ_per_table_and_fit_the_word_space() -> None:
    d = np.random.default_rng(1).integers(0, 256, (50, 32), dtype=np.uint8)
    w = vw.words_of(d)
    assert w.shape == (50, vw.WORD_TABLES)
    for t in range(vw.WORD_TABLES):
        assert ((w[:, t] >> vw.WORD_BITS) == t).all()


def test_query_views_equals_separate_queries() -> None:
    rng = np.random.default_rng(2)
    idx = vw.VisualWordIndex()
    base = rng.integers(0, 256, (10, 200, 32), dtype=np.uint8)
    idx.add_many(np.arange(60), vw.word_rows([base[i % 10] for i in range(60)]))
    for k in range(60, 80):
        idx.add(k, base[k % 10])
    views = [base[3], base[7], np.zeros((0, 32), np.uint8)]
    together = idx.query_views(views, 6, 3)
    assert together == [idx.query(v, 6, 3) for v in views]
    assert together[0] and together[1] and not together[2]


def test_query_words_probe_one_bit_neighbours_of_the_strongest_keypoints() -> None:
    d = np.random.default_rng(3).integers(0, 256, (vw.PROBE_KEYPOINTS + 20, 32), dtype=np.uint8)
    got = set(vw.query_words(d).tolist())
    exact = vw.words_of(d)
    assert set(exact.reshape(-1).tolist()) <= got
    for i in (0, vw.PROBE_KEYPOINTS - 1):
        for t in range(vw.WORD_TABLES):
            assert all(int(exact[i, t]) ^ (1 << b) in got for b in range(vw.WORD_BITS))
    assert len(got) <= exact.size + vw.PROBE_KEYPOINTS * vw.WORD_TABLES * vw.WORD_BITS


def test_a_one_bit_change_in_a_strong_keypoint_still_finds_the_image() -> None:
    rng = np.random.default_rng(4)
    idx = vw.VisualWordIndex()
    stored = rng.integers(0, 256, (40, 200, 32), dtype=np.uint8)
    idx.add_many(np.arange(40), vw.word_rows(list(stored)))
    query = stored[7, :10].copy()
    query[:, 0] ^= 0x80  # the first word bit of every keypoint: no exact word survives in table 0
    query[:, 3] ^= 0x01  # and bit 32 (table 1's word): no exact word survives at all
    assert not set(vw.words_of(query).reshape(-1).tolist()) & set(
        vw.posted_words(stored[7]).tolist()
    )
    assert [v.key for v in idx.query(query, 1, 3)] == [7]


def test_delta_finds_the_highest_words() -> None:
    """All-ones descriptor bytes give the top word of each table (2^23 - 1 for the last): the
    delta's packed (word, key) runs must still bound it, on the first add as after many."""
    idx = vw.VisualWordIndex()
    rng = np.random.default_rng(1)
    for key in range(5):
        idx.add(key, rng.integers(0, 256, (100, 32), dtype=np.uint8))
    top = np.full((3, 32), 0xFF, np.uint8)
    idx.add(7, top)
    assert (1 << vw.WORD_BITS) * vw.WORD_TABLES - 1 in vw.posted_words(top).tolist()
    assert [v.key for v in idx.query(top, 10, 2)] == [7]


def test_the_query_word_set_holds_exactly_the_words_a_query_looks_up() -> None:
    rng = np.random.default_rng(5)
    descriptors = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    looked_up = vw.query_words(descriptors)
    probe = vw.QueryWordSet(descriptors)
    # the looked-up words, their one-bit neighbours (some in, most out) and random words
    flips = np.int64(1) << rng.integers(0, vw.WORD_BITS + 1, looked_up.size)
    candidates = np.unique(np.concatenate([
        looked_up, looked_up ^ flips, rng.integers(0, 1 << (vw.WORD_BITS + 1), 5000),
    ]))
    assert np.array_equal(probe.contains(candidates), np.isin(candidates, looked_up))


def test_adds_answered_late_equal_adds_answered_at_once() -> None:
    """The pending postings (a replica catching up) are placed exactly where one insert per
    add put them: the same answers and the same saved state either way."""
    rng = np.random.default_rng(11)
    descs = [rng.integers(0, 256, (120, 32), dtype=np.uint8) for _ in range(40)]
    eager, lazy = vw.VisualWordIndex(), vw.VisualWordIndex()
    for key, d in enumerate(descs):
        eager.add(key, d)
        eager.query(d, 5, 2)  # every add read at once
        lazy.add(key, d)
    lazy.remove(3, descs[3])
    eager.remove(3, descs[3])
    for d in descs[:10]:
        assert eager.query(d, 5, 2) == lazy.query(d, 5, 2)
    saved_eager, saved_lazy = eager.to_arrays(), lazy.to_arrays()
    assert saved_eager.keys() == saved_lazy.keys()
    for name, value in saved_eager.items():
        assert np.array_equal(value, saved_lazy[name]), name
