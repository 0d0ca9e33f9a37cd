"""Private stand-in for hamming_index.HammingIndex until that module lands (same API, linear)."""

from __future__ import annotations

import numpy as np


class BruteHammingIndex:
    """Linear-scan Hamming index; to be deleted when hamming_index.HammingIndex is committed."""

    def __init__(self, n_bits: int = 256) -> None:
        self._n_bytes = n_bits // 8
        self._codes: dict[int, np.ndarray] = {}
        self._keys = np.zeros(0, np.int64)
        self._mat = np.zeros((0, self._n_bytes), np.uint8)
        self._dirty = False

    def __len__(self) -> int:
        return len(self._codes)

    def __contains__(self, key: object) -> bool:
        return key in self._codes

    def add(self, key: int, code: np.ndarray) -> None:
        self._codes[key] = np.asarray(code, np.uint8).reshape(self._n_bytes).copy()
        self._dirty = True

    def remove(self, key: int) -> None:
        self._codes.pop(key, None)
        self._dirty = True

    def _refresh(self) -> None:
        if self._dirty:
            keys = sorted(self._codes)
            self._keys = np.asarray(keys, np.int64)
            self._mat = (
                np.stack([self._codes[k] for k in keys])
                if keys
                else np.zeros((0, self._n_bytes), np.uint8)
            )
            self._dirty = False

    def search(self, code: np.ndarray, max_distance: int, limit: int = 10) -> list[tuple[int, int]]:
        self._refresh()
        d = np.bitwise_count(self._mat ^ np.asarray(code, np.uint8)[None, :]).sum(axis=1)
        idx = np.flatnonzero(d <= max_distance)
        order = idx[np.lexsort((self._keys[idx], d[idx]))][:limit]
        return [(int(self._keys[i]), int(d[i])) for i in order]

    def knn(self, code: np.ndarray, k: int) -> list[tuple[int, int]]:
        return self.search(code, 10**9, k)

    def nbytes(self) -> int:
        return int(len(self._codes) * (self._n_bytes + 8))
