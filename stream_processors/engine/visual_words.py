"""Inverted index of binary visual words: the crop/rotation-robust shortlist.

Why bit-sampling words instead of a trained vocabulary: ORB's 256 tests were learned to be
uncorrelated and balanced, so a fixed group of 16 descriptor bits is already a locality-sensitive
hash with 65,536 roughly even buckets, and it needs no training data shipped with the product.
A matching keypoint pair (distance ~10-30 bits) shares a word with probability 0.2-0.5 per table;
random pairs with 1/65,536. Each stored image posts only its WORDS_PER_IMAGE strongest keypoints
(memory), a query votes with all of its keypoints, each query keypoint voting at most once per
image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_TABLES = 2
WORD_BYTES = 2
WORDS_PER_IMAGE = 96


@dataclass(frozen=True)
class WordVotes:
    """A stored image's key and the number of query keypoints that voted for it."""

    key: int
    votes: int


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

    def add(self, key: int, descriptors: np.ndarray) -> None:
        words = np.unique(words_of(descriptors[:WORDS_PER_IMAGE]).reshape(-1))
        for w in words.tolist():
            self._lists.setdefault(w, []).append(key)
            self._dirty.add(w)
        self._n_postings += int(words.size)

    def remove(self, key: int, descriptors: np.ndarray) -> None:
        words = np.unique(words_of(descriptors[:WORDS_PER_IMAGE]).reshape(-1))
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

    def query(self, descriptors: np.ndarray, limit: int, min_votes: int) -> list[WordVotes]:
        """The ``limit`` images with most votes (ties: earlier key first), at least min_votes."""
        if descriptors.shape[0] == 0 or not self._lists:
            return []
        words = words_of(descriptors)
        keys: list[np.ndarray] = []
        owners: list[int] = []
        for i, row in enumerate(words.tolist()):
            for w in row:
                arr = self._postings(w)
                if arr is not None:
                    keys.append(arr)
                    owners.append(i)
        if not keys:
            return []
        lengths = np.fromiter((a.size for a in keys), np.int64, len(keys))
        qidx = np.repeat(np.asarray(owners, np.int64), lengths)
        # each query keypoint votes at most once per image (its words in several tables agree)
        pairs = np.unique(qidx * (1 << 40) + np.concatenate(keys))
        img, votes = np.unique(pairs % (1 << 40), return_counts=True)
        order = np.lexsort((img, -votes))
        out = []
        for j in order[:limit]:
            if votes[j] < min_votes:
                break
            out.append(WordVotes(int(img[j]), int(votes[j])))
        return out

    def nbytes(self) -> int:
        """Approximate memory of the postings (8 bytes per posting as stored in arrays)."""
        return 8 * self._n_postings
