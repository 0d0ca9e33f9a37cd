"""The index queries of one evaluation: answered by the index, or by a match's answers merged
with the entries stored since.

Why this exists: when the commit must evaluate an upload again (an entry stored after the
match's position could be one of its candidates, engine.delta), most of a full evaluation is
index queries whose cost grows with the store: the hash searches and the visual-word query
(~16 ms of a re-evaluation at a million stored; the verifications are in engine.checks). Their
answers now are the match's answers plus the few entries stored since, when nothing was
removed since and the word statistics stayed in one epoch: each hash search is exact and ranked
by (distance, key); a word score counts only images stored up to the epoch's start, so the
score of every image the match ranked is the same now. The match records each answer by entry
id (a replica's keys are its own), and the commit ranks the added entries into it. An
evaluation that needs a query the match never made (it stopped at an earlier stage) raises
NotRecorded, and the commit queries the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from stream_processors.engine.delta import AddedEntry
from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.visual_words import QueryWordSet, VisualWordIndex, WordVotes

# One query's ranked answer: (entry id, distance or score), best first
Answer = tuple[tuple[str, float], ...]


class NotRecorded(LookupError):
    """The evaluation needs an answer the match did not record."""


class QueryRecord:
    """The answers of the queries one evaluation made, by query name."""

    def __init__(self, known: Iterable[tuple[str, Answer]] = ()) -> None:
        self._answers: dict[str, Answer] = dict(known)

    def put(self, name: str, answer: Answer) -> None:
        self._answers[name] = answer

    def get(self, name: str) -> Answer:
        try:
            return self._answers[name]
        except KeyError:
            raise NotRecorded(f"the match did not make the query {name!r}") from None

    def items(self) -> list[tuple[str, Answer]]:
        return list(self._answers.items())

    def __len__(self) -> int:
        return len(self._answers)


EXACT = "sha"  # the name of the exact-bytes lookup's answer


def _hash_name(table: str, variant: int, radius: int, limit: int) -> str:
    return f"{table} v{variant} r{radius} l{limit}"


def _words_name(view: int, limit: int, min_words: int) -> str:
    return f"words view{view} l{limit} m{min_words}"


@dataclass(frozen=True)
class UploadQuery:
    """The upload's side of every query: its SHA-256 prefix (as the index stores it), its
    256-bit and 64-bit hashes (one row per dihedral variant) and the keypoint descriptors of
    each view (as uploaded, mirrored)."""

    sha_code: np.ndarray
    hashes: np.ndarray
    coarse: np.ndarray
    views: tuple[np.ndarray, ...]

    @cached_property
    def word_sets(self) -> tuple[QueryWordSet, ...]:
        """Each view's query words, built once for every entry a commit tests against them."""
        return tuple(QueryWordSet(d) for d in self.views)


class _Recording:
    """Keeps each answer given, by entry id (a replica's keys are its own), in ``record``."""

    def __init__(self, entry_id: Callable[[int], str], record: QueryRecord | None) -> None:
        self._entry_id = entry_id
        self._record = record

    def _keep(self, name: str, ranked: list[tuple[int, float]]) -> None:
        if self._record is not None:
            self._record.put(name, tuple((self._entry_id(k), float(v)) for k, v in ranked))


class LiveQueries(_Recording):
    """The queries answered by the index, each answer recorded (by entry id) when ``record``
    is given, for the commit."""

    def __init__(
        self,
        upload: UploadQuery,
        sha: HammingIndex,
        hashes: HammingIndex,
        coarse: HammingIndex,
        words: VisualWordIndex,
        entry_id: Callable[[int], str],
        record: QueryRecord | None = None,
    ) -> None:
        super().__init__(entry_id, record)
        self._upload = upload
        self._indexes = {"sha": sha, "hash": hashes, "coarse": coarse}
        self._words = words

    def exact(self) -> list[int]:
        """Keys whose SHA-256 prefix is the upload's, ascending."""
        keys = self._indexes["sha"].find(self._upload.sha_code)
        self._keep(EXACT, [(k, 0.0) for k in keys])
        return keys

    def search(self, table: str, variant: int, radius: int, limit: int) -> list[tuple[int, int]]:
        """The ``limit`` nearest keys within ``radius`` in ``table`` ("hash": 256-bit, "coarse":
        64-bit) of the upload's dihedral ``variant``, nearest first (ties: earlier key)."""
        query = (self._upload.hashes if table == "hash" else self._upload.coarse)[variant]
        hits = self._indexes[table].search(query, radius, limit)
        self._keep(_hash_name(table, variant, radius, limit), [(k, d) for k, d in hits])
        return hits

    def word_hits(self, limit: int, min_words: int, counted_keys: int) -> list[list[WordVotes]]:
        """VisualWordIndex.query_views of the upload's views."""
        hits = self._words.query_views(list(self._upload.views), limit, min_words, counted_keys)
        for view, votes in enumerate(hits):
            self._keep(_words_name(view, limit, min_words), [(w.key, w.votes) for w in votes])
        return hits


class MergedQueries(_Recording):
    """The queries answered from a match's ``record`` and the entries ``added`` since its
    position (key, entry; in key order), exactly as the index would answer them now, given
    that nothing was removed since and the word-statistics epoch is the match's (the caller
    checks both). ``key_of``: the key of an entry id in this index; ``record_into``: where
    each answer given is recorded (``entry_id``: a key's entry id), so that a replica that
    settles its own match passes on answers as of its newer position."""

    def __init__(
        self,
        upload: UploadQuery,
        record: QueryRecord,
        added: list[tuple[int, AddedEntry]],
        key_of: Callable[[str], int],
        words: VisualWordIndex,
        entry_id: Callable[[int], str],
        record_into: QueryRecord | None = None,
    ) -> None:
        super().__init__(entry_id, record_into)
        self._upload = upload
        self._recorded_answers = record
        self._added = added
        self._key_of = key_of
        self._words = words

    def _recorded(self, name: str) -> list[tuple[int, float]]:
        return [(self._key_of(entry), value) for entry, value in self._recorded_answers.get(name)]

    def exact(self) -> list[int]:
        keys = [k for k, _ in self._recorded(EXACT)]
        mine = self._upload.sha_code.tobytes()
        keys += [k for k, entry in self._added if entry.sha16 == mine]
        self._keep(EXACT, [(k, 0.0) for k in keys])
        return keys

    def search(self, table: str, variant: int, radius: int, limit: int) -> list[tuple[int, int]]:
        name = _hash_name(table, variant, radius, limit)
        hits = [(k, int(d)) for k, d in self._recorded(name)]
        query = (self._upload.hashes if table == "hash" else self._upload.coarse)[variant]
        for key, entry in self._added:
            code = entry.code if table == "hash" else entry.coarse
            dist = int(np.bitwise_count(query ^ code).sum())
            if dist <= radius:
                hits.append((key, dist))
        ranked = sorted(hits, key=lambda kd: (kd[1], kd[0]))[:limit]
        self._keep(name, [(k, d) for k, d in ranked])
        return ranked

    def word_hits(self, limit: int, min_words: int, counted_keys: int) -> list[list[WordVotes]]:
        views = self._upload.word_sets
        ranked = [
            [WordVotes(k, v) for k, v in self._recorded(_words_name(view, limit, min_words))]
            for view in range(len(views))
        ]
        for key, entry in self._added:
            votes = self._words.votes_of(views, key, entry.words, min_words, counted_keys)
            for view, vote in enumerate(votes):
                if vote is not None:
                    ranked[view].append(WordVotes(key, vote))
        hits = [sorted(r, key=lambda w: (-w.votes, w.key))[:limit] for r in ranked]
        for view, best in enumerate(hits):
            self._keep(_words_name(view, limit, min_words), [(w.key, w.votes) for w in best])
        return hits


IndexQueries = LiveQueries | MergedQueries
