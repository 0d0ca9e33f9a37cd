"""Inverted index of binary visual words: the crop/rotation-robust shortlist.

Why bit-sampling words instead of a trained vocabulary: ORB's 256 tests were learned to be
uncorrelated and balanced, so a fixed group of 16 descriptor bits is already a locality-sensitive
hash with 65,536 roughly even buckets, and it needs no training data shipped with the product.
A matching keypoint pair (distance ~10-30 bits) shares a word with probability 0.2-0.5 per table;
random pairs with 1/65,536. Each stored image posts only its WORDS_PER_IMAGE strongest keypoints
(memory), a query votes with all of its keypoints, each distinct word weighted by its rarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_TABLES = 2
WORD_BYTES = 2
WORDS_PER_IMAGE = 96
STOP_WORD_FRACTION = 0.05
STOP_WORD_MIN_DF = 20


@dataclass(frozen=True)
class WordVotes:
    """A stored image's key and the number of query keypoints that voted for it."""

    key: int
    votes: float


def words_of(descriptors: np.ndarray) -> np.ndarray:
    """(N, WORD_TABLES) int64 words; table t uses descriptor bytes [2t, 2t+2)."""
    n = descriptors.shape[0]
    out = np.empty((n, WORD_TABLES), np.int64)
    for t in range(WORD_TABLES):
        b = descriptors[:, WORD_BYTES * t : WORD_BYTES * (t + 1)].astype(np.int64)
        out[:, t] = (b[:, 0] << 8) | b[:, 1]
    return out + (np.arange(WORD_TABLES, dtype=np.int64) << 16)[None, :]


class VisualWordIndex:
    """word -> posting list of image keys (numpy int64 arrays, rebuilt lazily after changes)."""

    def __init__(self) -> None:
        self._lists: dict[int, list[int]] = {}
        self._arrays: dict[int, np.ndarray] = {}
        self._dirty: set[int] = set()
        self._n_postings = 0
        self._n_images = 0

    def add(self, key: int, descriptors: np.ndarray) -> None:
        words = np.unique(words_of(descriptors[:WORDS_PER_IMAGE]).reshape(-1))
        for w in words.tolist():
            self._lists.setdefault(w, []).append(key)
            self._dirty.add(w)
        self._n_postings += int(words.size)
        self._n_images += 1

    def remove(self, key: int, descriptors: np.ndarray) -> None:
        words = np.unique(words_of(descriptors[:WORDS_PER_IMAGE]).reshape(-1))
        self._n_images -= 1
        for w in words.tolist():
            lst = self._lists.get(w)
            if lst is not None and key in lst:
                lst.remove(key)
                self._n_postings -= 1
                self._dirty.add(w)
                if not lst:
                    del self._lists[w]

    def _postings(self, w: int) -> np.ndarray | None:
        if w in self._dirty:
            self._dirty.discard(w)
            lst = self._lists.get(w)
            if lst is None:
                self._arrays.pop(w, None)
            else:
                self._arrays[w] = np.asarray(lst, dtype=np.int64)
        return self._arrays.get(w)

    def query(self, descriptors: np.ndarray, limit: int, min_words: int) -> list[WordVotes]:
        """The ``limit`` images with the highest idf-weighted vote (ties: earlier key first)
        among those sharing at least ``min_words`` distinct words with the query.

        Each query word that an image posted adds log(N / df) to that image's score: common
        words (flat patches, noise grain) are posted by many images and say almost nothing, so
        raw counts let unrelated textured images outvote a true copy. Words posted by more than
        STOP_WORD_FRACTION of the images are skipped outright (they cost the most to read).
        """
        if descriptors.shape[0] == 0 or not self._lists:
            return []
        n = max(1, self._n_images)
        max_df = max(STOP_WORD_MIN_DF, int(STOP_WORD_FRACTION * n))
        keys: list[np.ndarray] = []
        weights: list[float] = []
        for w in np.unique(words_of(descriptors)).tolist():
            arr = self._postings(w)
            if arr is not None and arr.size <= max_df:
                keys.append(arr)
                weights.append(float(np.log(n / arr.size)) + 1.0)
        if not keys:
            return []
        lengths = np.fromiter((a.size for a in keys), np.int64, len(keys))
        img, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        score = np.bincount(inverse, weights=np.repeat(np.asarray(weights), lengths))
        count = np.bincount(inverse)
        eligible = np.flatnonzero(count >= min_words)
        order = eligible[np.lexsort((img[eligible], -score[eligible]))]
        return [WordVotes(int(img[j]), float(score[j])) for j in order[:limit]]

    def nbytes(self) -> int:
        """Approximate memory of the postings (8 bytes per posting as stored in arrays)."""
        return 8 * self._n_postings
