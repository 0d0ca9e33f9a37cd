"""Inverted index of binary visual words: the crop/rotation-robust shortlist.

Why bit-sampling words instead of a trained vocabulary: ORB's 256 tests were learned to be
uncorrelated and balanced, so a fixed group of WORD_BITS descriptor bits is already a
locality-sensitive hash with 2^WORD_BITS roughly even buckets, and it needs no training data
shipped with the product. A matching keypoint pair (distance ~10-30 bits) shares a word with
probability ~0.1-0.4 per table; random pairs with 2^-WORD_BITS. Each stored image posts only its
WORDS_PER_IMAGE strongest keypoints (memory), a query votes with all of its keypoints, each
distinct word weighted by its rarity.

Scale (the reason for this layout): a query reads every posting of its ~1,000 distinct words, so
the words must be rare enough that a posting list stays short at millions of images. With 22-bit
words in 2 tables (2^23 words) and 80 posted keypoints (160 postings) per image, a list holds ~19
images at 1M stored instead of ~3,000 with 16-bit words and 96 keypoints, and a query of an image
and its mirror (~6,000 words with the probes, ~120k postings) costs ~4-5 ms at 1M on a 2-core
box; lists longer than MAX_POSTINGS are stop words and skipped. Dev-set recall
(scripts.evaluate, same verify.py, precision unchanged at 0.9939): 16-bit x 2 tables x 96
keypoints 0.8456; 22-bit x 2 x 80 0.8430; 22-bit x 2 x 64 0.8391. (Earlier verify.py: 16-bit x 2
x 96 0.8391 = 22-bit x 2 x 96; 22-bit x 2 x 48 0.8263; 24-bit x 1 x 96 0.8211.) Longer words
match less often, so a stored image needs few shared words (``ShortlistParams.word_min_words`` =
4). A query view looks up ~3,000 words (~1,000 exact plus the multi-probe neighbours, see
PROBE_KEYPOINTS), so a uniformly random stored image shares ~0.06 of them: at 1M stored ~30
random images per query reach 3 shared words but ~0.4 reach 4 (without probes, ~1 reached 3).

Memory: postings are compressed-sparse-row arrays, not Python lists. The word space is split
into 2^b buckets (b grows with the number of postings so the offsets array stays under ~0.5 byte
per posting); a posting is the image key shifted left by r = word bits - b with the word's
low r bits below it (to reject bucket-mates), stored in as few bytes as the largest key needs:
3 bytes up to ~1M images at r <= 4 (4 bytes up to ~16M/2^r). So a posting costs ~3.5 bytes.
New images go to a small *delta*, merged into the CSR arrays when it holds DELTA_IMAGES images
(one O(postings) insert): one sorted int64 array of (word << DELTA_KEY_BITS) | key, so a word's
postings are one binary search away and a posting costs 8 bytes. (It was a dict of Python
lists: ~150 bytes a posting, 12 KiB an image, 30 MiB of a worker's RAM at DELTA_IMAGES.)
Removal is a tombstone (a per-key liveness bit), compacted at the next full rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WORD_TABLES = 2
WORD_BITS = 22
WORDS_PER_IMAGE = 80
STOP_WORD_FRACTION = 0.05
STOP_WORD_MIN_DF = 20
MAX_POSTINGS = 2000  # a word posted by more images than this says nothing and costs the most
# Multi-probe: the query's strongest PROBE_KEYPOINTS keypoints also look up every word one bit
# away from theirs (WORD_BITS probes per table). A blurred, noisy or re-encoded copy flips ~10-20%
# of a descriptor's bits, so an exact 22-bit word survives with probability ~0.85^22 = 3% while
# "at most one flip" survives with ~14%. Only the strongest keypoints probe: they are the most
# repeatable, and each probe is one more posting list read (50 keypoints x 2 tables x 22 bits
# = 2,200 extra lists, ~3x the exact words). Dev set (rank of the true copy among word
# candidates): in the top 6 for 706 -> 736 of 777 true duplicates; 25 probing keypoints 732,
# 100 734, 500 716 (more probes also lift unrelated images).
PROBE_KEYPOINTS = 50
DELTA_IMAGES = 2048
PENDING_MIN = 4096  # postings the pending buffer holds at least (~25 images' worth)
_SPACE_BITS = WORD_BITS + (WORD_TABLES - 1).bit_length()
# a delta posting is (word << DELTA_KEY_BITS) | key; a query bounds a word's run by
# (word + 1) << DELTA_KEY_BITS, and the largest bound, 2^_SPACE_BITS << DELTA_KEY_BITS, must fit
# an int64: 39 key bits, 5e11 images
DELTA_KEY_BITS = 62 - _SPACE_BITS
_DELTA_KEY_MASK = (1 << DELTA_KEY_BITS) - 1
_PREFILTER_MASK = (1 << 17) - 1  # 128k counters: ~1 chance posting each at 1M stored


@dataclass(frozen=True)
class WordVotes:
    """A stored image's key and the idf-weighted vote of the query's words."""

    key: int
    votes: float


def words_of(descriptors: np.ndarray) -> np.ndarray:
    """(N, WORD_TABLES) int64 words; table t uses the WORD_BITS descriptor bits starting at bit
    WORD_BITS * t (big-endian within the descriptor), tagged with t in the top bits."""
    n = descriptors.shape[0]
    out = np.empty((n, WORD_TABLES), np.int64)
    if n == 0:
        return out
    n_bytes = (WORD_BITS * WORD_TABLES + 7) // 8 + 1
    head = descriptors[:, :n_bytes].astype(np.int64)
    acc = np.zeros(n, np.int64)
    for j in range(n_bytes):
        acc = (acc << 8) | head[:, j]
    total = 8 * n_bytes
    mask = (1 << WORD_BITS) - 1
    for t in range(WORD_TABLES):
        out[:, t] = ((acc >> (total - WORD_BITS * (t + 1))) & mask) | (t << WORD_BITS)
    return out


def _query_word_list(descriptors: np.ndarray) -> np.ndarray:
    """``query_words`` unsorted and with repeats."""
    words = words_of(descriptors)
    head = words[:PROBE_KEYPOINTS].reshape(-1)
    flips = np.int64(1) << np.arange(WORD_BITS, dtype=np.int64)
    probes = (head[:, None] ^ flips[None, :]).reshape(-1)
    return np.concatenate([words.reshape(-1), probes])


def _distinct(words: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 words, by a sort: numpy's hash table is ~3x slower on the few
    thousand words of one image or query."""
    words = np.sort(words)
    return words[np.concatenate(([True], words[1:] != words[:-1]))] if words.size else words


def query_words(descriptors: np.ndarray) -> np.ndarray:
    """The distinct words a query looks up: every keypoint's words, plus the one-bit neighbours
    of the words of the PROBE_KEYPOINTS strongest (see PROBE_KEYPOINTS)."""
    return _distinct(_query_word_list(descriptors))


class QueryWordSet:
    """Membership in ``query_words(descriptors)``: the words a query of these descriptors looks
    up. Why a class: the commit asks it of every entry stored since a match (engine.delta,
    engine.index_queries), so the set is built once per upload (a sort of ~3,000 words a view)
    and each question is a binary search (~5 us for an entry's words, where ``np.isin`` took
    ~0.1 ms)."""

    def __init__(self, descriptors: np.ndarray) -> None:
        self._words = np.sort(_query_word_list(descriptors))  # repeats do not alter membership

    def contains(self, words: np.ndarray) -> np.ndarray:
        if self._words.size == 0:
            return np.zeros(words.shape, bool)
        at = np.searchsorted(self._words, words)
        at[at == self._words.size] = 0
        return np.asarray(self._words[at] == words)


def posted_words(descriptors: np.ndarray) -> np.ndarray:
    """The distinct words a stored image posts (its WORDS_PER_IMAGE strongest keypoints)."""
    return _distinct(words_of(descriptors[:WORDS_PER_IMAGE]).reshape(-1))


def _width(max_key: int, r: int) -> int:
    """Bytes per posting for keys up to max_key shifted left by r bits."""
    return max(1, (max_key.bit_length() + r + 7) // 8)


def _encode(values: np.ndarray, width: int) -> np.ndarray:
    """(n,) non-negative int64 -> (n, width) uint8, little-endian."""
    raw = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(raw[:, :width])


def _decode(packed: np.ndarray) -> np.ndarray:
    """(n, width) uint8 little-endian -> (n,) int64 (a shift-or per byte: ~3x faster than
    widening to 8 bytes and viewing, at the ~100k postings of one query)."""
    out = packed[:, 0].astype(np.int64)
    for j in range(1, packed.shape[1]):
        out |= packed[:, j].astype(np.int64) << (8 * j)
    return out


def _take_rows(packed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``packed[rows]`` for (n, width) uint8: rows gathered as opaque width-byte items, ~5x
    faster than numpy's 2-D fancy indexing, the largest cost of a query at 1M stored."""
    width = packed.shape[1]
    items = np.ascontiguousarray(packed).view(f"V{width}").ravel()
    return items.take(rows).view(np.uint8).reshape(-1, width)


def _expand_runs(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(run number, position) of every element of the runs ``starts[i] .. starts[i] +
    lengths[i]``, without a Python loop: how a query reads its words' posting lists."""
    nz = np.flatnonzero(lengths)
    starts, lengths = starts[nz], lengths[nz]
    cum = np.cumsum(lengths)
    total = int(cum[-1]) if cum.size else 0
    idx = np.arange(total, dtype=np.int64) + np.repeat(starts - (cum - lengths), lengths)
    return np.repeat(nz, lengths), idx


def word_rows(descriptor_sets: list[np.ndarray]) -> np.ndarray:
    """(n, WORDS_PER_IMAGE * WORD_TABLES) int64: each image's posted words, padded with -1
    (the input of ``VisualWordIndex.add_many``)."""
    out = np.full((len(descriptor_sets), WORDS_PER_IMAGE * WORD_TABLES), -1, np.int64)
    for i, d in enumerate(descriptor_sets):
        w = posted_words(d)
        out[i, : w.size] = w
    return out


class VisualWordIndex:
    """word -> image keys, as CSR arrays plus a small sorted delta (see module docstring)."""

    def __init__(self) -> None:
        self._bucket_bits = 0
        self._offsets = np.zeros(2, np.uint32)
        # one posting = (image key << r) | the word's low r bits, r = word bits - bucket bits
        self._post: np.ndarray = np.zeros((0, 4), np.uint8)  # (n, width) little-endian
        self._delta = np.zeros(0, np.int64)  # sorted (word << DELTA_KEY_BITS) | key
        # postings added since the delta was last read, unsorted: the first _n_pending. A
        # replica catching up applies thousands of entries before its first query; inserting
        # each into the sorted delta copied the delta every time (~0.25 ms an entry at 1k
        # images in it), now one insert places them all when the delta is next read
        self._pending = np.zeros(0, np.int64)
        self._n_pending = 0
        self._delta_images = 0
        self._alive = np.zeros(0, bool)
        self._n_postings = 0
        self._n_dead_postings = 0
        self._n_images = 0

    # ----------------------------------------------------------------- updates
    def _mark(self, key: int, alive: bool) -> None:
        if key >= len(self._alive):
            grown = np.zeros(max(key + 1, 2 * len(self._alive), 1024), bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[key] = alive

    def add(self, key: int, descriptors: np.ndarray) -> None:
        self.add_words(key, posted_words(descriptors))

    def add_words(self, key: int, words: np.ndarray) -> None:
        """``add`` of an image whose ``posted_words`` the caller has (the engine keeps them
        for the commit's change log too)."""
        if key >> DELTA_KEY_BITS:
            raise ValueError(f"image key {key} does not fit the delta's {DELTA_KEY_BITS} bits")
        packed = (words << DELTA_KEY_BITS) | key
        end = self._n_pending + packed.size
        if end > self._pending.size:
            grown = np.zeros(max(end, 2 * self._pending.size, PENDING_MIN), np.int64)
            grown[: self._n_pending] = self._pending[: self._n_pending]
            self._pending = grown
        self._pending[self._n_pending : end] = packed
        self._n_pending = end
        self._mark(key, True)
        self._n_postings += int(words.size)
        self._n_images += 1
        self._delta_images += 1
        if self._delta_images >= DELTA_IMAGES:
            self._merge_delta()

    def add_many(self, keys: np.ndarray, words: np.ndarray) -> None:
        """Bulk-load: row i of ``words`` holds image ``keys[i]``'s posted words (``word_rows``:
        distinct, padded with -1); one rebuild. The path for loading a snapshot or a benchmark
        store, where a million ``add`` calls would cost minutes of Python."""
        keys = np.asarray(keys, np.int64).ravel()
        words = np.asarray(words).reshape(len(keys), -1)
        real = words >= 0
        post_w = words[real].astype(np.int64)
        post_k = np.repeat(keys, real.sum(axis=1).astype(np.int64))
        if len(keys):
            self._mark(int(keys.max()), True)
            self._alive[keys] = True
        self._n_postings += int(post_w.size)
        self._n_images += len(keys)
        if len(self._sorted_delta()):
            dw, dk = self._delta_postings()
            self._delta, self._delta_images = np.zeros(0, np.int64), 0
            post_w, post_k = np.concatenate([post_w, dw]), np.concatenate([post_k, dk])
        if len(self._post):
            cw, ck = self._all_postings()
            post_w, post_k = np.concatenate([cw, post_w]), np.concatenate([ck, post_k])
        self._rebuild(post_w, post_k)

    def remove(self, key: int, descriptors: np.ndarray) -> None:
        words = posted_words(descriptors)
        if key >= len(self._alive) or not self._alive[key]:
            return
        self._alive[key] = False
        self._n_images -= 1
        self._n_postings -= int(words.size)
        in_delta = (self._sorted_delta() & _DELTA_KEY_MASK) == key
        if in_delta.any():
            self._delta = self._delta[~in_delta]
            self._delta_images -= 1
        else:
            self._n_dead_postings += int(words.size)

    def remove_key(self, key: int) -> None:
        """``remove`` without the image's words (its record is gone): the same liveness and
        counts, the compacted postings' number taken as a full image's (WORDS_PER_IMAGE words
        in each table), which only steers when the arrays are rebuilt."""
        if key >= len(self._alive) or not self._alive[key]:
            return
        self._alive[key] = False
        self._n_images -= 1
        in_delta = (self._sorted_delta() & _DELTA_KEY_MASK) == key
        if in_delta.any():
            self._n_postings -= int(in_delta.sum())
            self._delta = self._delta[~in_delta]
            self._delta_images -= 1
        else:
            posted = WORDS_PER_IMAGE * WORD_TABLES
            self._n_postings -= posted
            self._n_dead_postings += posted

    # ----------------------------------------------------------------- CSR internals
    def _all_postings(self) -> tuple[np.ndarray, np.ndarray]:
        """(words, keys) of every CSR posting (dead ones included)."""
        r = _SPACE_BITS - self._bucket_bits
        counts: np.ndarray = np.diff(self._offsets.astype(np.int64))
        buckets = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        post = _decode(self._post)
        return (buckets << r) | (post & ((1 << r) - 1)), post >> r

    def _sorted_delta(self) -> np.ndarray:
        """The delta with the pending postings in place (each (word, key) is distinct, so the
        result is the delta one insert per add made)."""
        if self._n_pending:
            new = np.sort(self._pending[: self._n_pending])
            self._delta = np.insert(self._delta, np.searchsorted(self._delta, new), new)
            self._pending, self._n_pending = np.zeros(0, np.int64), 0
        return self._delta

    def _delta_postings(self) -> tuple[np.ndarray, np.ndarray]:
        delta = self._sorted_delta()
        return delta >> DELTA_KEY_BITS, delta & _DELTA_KEY_MASK

    @staticmethod
    def _bits_for(n_postings: int) -> int:
        return int(np.clip(int(np.log2(max(n_postings, 2))) - 3, 1, _SPACE_BITS))

    def _merge_delta(self) -> None:
        dw, dk = self._delta_postings()
        self._delta = np.zeros(0, np.int64)
        self._delta_images = 0
        n_csr = len(self._post)
        bits = self._bits_for(n_csr + len(dw))
        if bits != self._bucket_bits or self._n_dead_postings * 4 > max(n_csr, 1):
            cw, ck = self._all_postings()
            self._rebuild(np.concatenate([cw, dw]), np.concatenate([ck, dk]))
            return
        r = _SPACE_BITS - bits
        order = np.argsort(dw, kind="stable")
        dw, dk = dw[order], dk[order]
        buckets = dw >> r
        at = self._offsets[buckets + 1].astype(np.int64)
        if len(dk) and _width(int(dk.max()), r) > self._post.shape[1]:
            cw, ck = self._all_postings()  # keys outgrew the posting width
            self._rebuild(np.concatenate([cw, dw]), np.concatenate([ck, dk]))
            return
        packed = _encode((dk << r) | (dw & ((1 << r) - 1)), self._post.shape[1])
        self._post = np.insert(self._post, at, packed, axis=0)
        added = np.bincount(buckets, minlength=len(self._offsets) - 1)
        self._offsets[1:] += np.cumsum(added).astype(np.uint32)

    def _rebuild(self, words: np.ndarray, keys: np.ndarray) -> None:
        """CSR arrays from all (word, key) postings, dropping dead keys."""
        live = self._alive[keys]
        words, keys = words[live], keys[live]
        bits = self._bits_for(len(words))
        r = _SPACE_BITS - bits
        order = np.argsort(words.astype(np.uint32))  # order within a word is irrelevant
        words = words[order]
        keys = keys[order]
        width = _width(int(keys.max()) if len(keys) else 0, r)
        self._post = _encode((keys << r) | (words & ((1 << r) - 1)), width)
        self._offsets = np.zeros((1 << bits) + 1, np.uint32)
        np.cumsum(np.bincount(words >> r, minlength=1 << bits), out=self._offsets[1:])
        self._bucket_bits = bits
        self._n_dead_postings = 0

    # ----------------------------------------------------------------- query
    def _lookup(self, qwords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query-word index, key) of every posting of the given distinct words."""
        out_w: list[np.ndarray] = []
        out_k: list[np.ndarray] = []
        if len(self._post):
            r = _SPACE_BITS - self._bucket_bits
            buckets = qwords >> r
            starts = self._offsets[buckets].astype(np.int64)
            lengths = self._offsets[buckets + 1].astype(np.int64) - starts
            # a bucket longer than the cutoff can only hold words too common to matter
            lengths[lengths > 2 * MAX_POSTINGS] = 0
            widx, idx = _expand_runs(starts, lengths)
            if idx.size:
                post = _decode(_take_rows(self._post, idx))
                if r:
                    ok = (post & ((1 << r) - 1)) == (qwords[widx] & ((1 << r) - 1))
                    widx, post = widx[ok], post[ok]
                out_w.append(widx)
                out_k.append(post >> r)
        delta = self._sorted_delta()
        if len(delta):
            # each query word's postings are one run of the sorted delta
            starts = np.searchsorted(delta, qwords << DELTA_KEY_BITS)
            lengths = np.searchsorted(delta, (qwords + 1) << DELTA_KEY_BITS) - starts
            widx, idx = _expand_runs(starts, lengths)
            if idx.size:
                out_w.append(widx)
                out_k.append(delta[idx] & _DELTA_KEY_MASK)
        if not out_w:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        w_all, k_all = np.concatenate(out_w), np.concatenate(out_k)
        if not self._n_dead_postings:
            return w_all, k_all  # removal takes a key out of the delta; only CSR holds the dead
        live = self._alive[k_all]
        return w_all[live], k_all[live]

    def query(
        self, descriptors: np.ndarray, limit: int, min_words: int, counted_keys: int | None = None
    ) -> list[WordVotes]:
        """The ``limit`` images with the highest idf-weighted vote (ties: earlier key first)
        among those sharing at least ``min_words`` distinct words with the query.

        Each query word that an image posted adds log(N / df) + 1 to that image's score: common
        words (flat patches, noise grain) are posted by many images and say almost nothing, so
        raw counts let unrelated textured images outvote a true copy. Words posted by more than
        STOP_WORD_FRACTION of the images (or MAX_POSTINGS) are skipped outright.

        ``counted_keys``: only images with a key below it count in N and df (all get votes).
        The caller fixes the statistics for a stretch of stored images, so that images stored
        while a query was answered elsewhere change no other image's score (engine.delta).
        """
        return self.query_views([descriptors], limit, min_words, counted_keys)[0]

    def _max_df(self, counted: int) -> int:
        n = max(1, counted)
        return min(MAX_POSTINGS, max(STOP_WORD_MIN_DF, int(STOP_WORD_FRACTION * n)))

    def _counted(self, counted_keys: int | None) -> int:
        if counted_keys is None:
            return self._n_images
        return int(np.count_nonzero(self._alive[:counted_keys]))

    def stop_words(self, words: np.ndarray, counted_keys: int | None = None) -> np.ndarray:
        """Which of the distinct ``words`` a query skips as too common (``query``'s cutoff,
        under the same statistics)."""
        if words.size == 0:
            return np.zeros(0, bool)
        widx, keys = self._lookup(words)
        if counted_keys is not None:
            widx = widx[keys < counted_keys]
        df = np.bincount(widx, minlength=len(words))
        return np.asarray(df > self._max_df(self._counted(counted_keys)))

    def query_views(
        self,
        views: list[np.ndarray],
        limit: int,
        min_words: int,
        counted_keys: int | None = None,
    ) -> list[list[WordVotes]]:
        """``query`` for several descriptor sets (e.g. an image and its mirror) with one read of
        the postings of all their words."""
        out: list[list[WordVotes]] = [[] for _ in views]
        if self._n_images <= 0:
            return out
        qwords = [query_words(d) for d in views]
        all_words = np.unique(np.concatenate(qwords))
        if all_words.size == 0:
            return out
        counted = self._counted(counted_keys)
        n = max(1, counted)
        max_df = self._max_df(counted)
        widx, keys = self._lookup(all_words)
        if keys.size == 0:
            return out
        if counted_keys is None:
            df = np.bincount(widx, minlength=len(all_words))
        else:
            df = np.bincount(widx[keys < counted_keys], minlength=len(all_words))
        weight = np.log(n / np.maximum(df, 1)) + 1.0
        # an image with min_words postings in a view has a hash bucket with at least as many
        # postings: keep only the postings of such buckets (most keys hold one chance posting)
        # and of words under the stop-word cutoff, before the sort that groups postings by image
        # (exact; ~50x less to group at 1M stored)
        bucket = keys & _PREFILTER_MASK
        keep = np.bincount(bucket, minlength=_PREFILTER_MASK + 1)[bucket] >= min_words
        keep &= df[widx] <= max_df
        widx, keys = widx[keep], keys[keep]
        for v, qw in enumerate(qwords):
            in_view = np.zeros(len(all_words), bool)
            in_view[np.searchsorted(all_words, qw)] = True
            sel = in_view[widx]
            vw_idx, v_keys = widx[sel], keys[sel]
            if v_keys.size == 0:
                continue
            img, inverse = np.unique(v_keys, return_inverse=True)
            score = np.bincount(inverse, weights=weight[vw_idx])
            count = np.bincount(inverse)
            eligible = np.flatnonzero(count >= min_words)
            order = eligible[np.lexsort((img[eligible], -score[eligible]))]
            out[v] = [WordVotes(int(img[j]), float(score[j])) for j in order[:limit]]
        return out

    def votes_of(
        self,
        views: Sequence[QueryWordSet],
        key: int,
        words: np.ndarray,
        min_words: int,
        counted_keys: int | None = None,
    ) -> list[float | None]:
        """The vote ``query_views`` gives the image under ``key`` (which posted the sorted,
        distinct ``words``) in each view (``views``: their query words), None where it is not
        eligible; its place in the ranking is then (-vote, key). Exactly the same float: the
        same postings, looked up for only the words it shares with the query, summed in the
        same order. Reads the postings of a few words where the query reads those of
        thousands (the commit ranks an image stored after a match into the match's answer this
        way: engine.index_queries)."""
        out: list[float | None] = [None] * len(views)
        if self._n_images <= 0 or words.size < min_words:
            return out
        in_view = [view.contains(words) for view in views]
        shared = np.logical_or.reduce(in_view)
        if int(shared.sum()) < min_words:
            return out
        qwords = words[shared]
        counted = self._counted(counted_keys)
        widx, keys = self._lookup(qwords)
        if counted_keys is None:
            df = np.bincount(widx, minlength=len(qwords))
        else:
            df = np.bincount(widx[keys < counted_keys], minlength=len(qwords))
        weight = np.log(max(1, counted) / np.maximum(df, 1)) + 1.0
        mine = widx[(keys == key) & (df[widx] <= self._max_df(counted))]
        for v, contained in enumerate(in_view):
            vw_idx = mine[contained[shared][mine]]
            if vw_idx.size >= min_words:
                votes = np.bincount(np.zeros(vw_idx.size, np.intp), weights=weight[vw_idx])
                out[v] = float(votes[0])
        return out

    def nbytes(self) -> int:
        """Bytes of the CSR arrays, the delta and the liveness bits."""
        arrays = (self._offsets, self._post, self._delta, self._pending, self._alive)
        return int(sum(a.nbytes for a in arrays))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every attribute, for the engine snapshot: the walk in array_state saves an array or
        scalar added to this class later as well, and refuses any other type by name."""
        from stream_processors.engine.array_state import plain_attributes

        self._sorted_delta()  # saves no pending buffer
        return plain_attributes(self, ())

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray]) -> VisualWordIndex:
        """The index ``to_arrays`` saved, as it was (CSR arrays, delta and statistics alike);
        array_state.StateMismatch if another version of the class saved it."""
        from stream_processors.engine.array_state import check_names, restore_plain

        index = cls()
        check_names(index, state, ())
        restore_plain(index, state, ())
        return index
