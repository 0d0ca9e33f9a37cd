"""What a decision made on an older copy of the index needs to be exact now: the changes since.

Why this exists: matching (candidate search and verification, tens of milliseconds) runs on any
worker, on that worker's replica of the index, which has applied the index log up to some
position P. The commit, the one sequential step, must decide exactly as one sequential decide
over the same upload order would, i.e. as if the upload were evaluated against the index *now*.
Between P and now the commit has applied a few more changes (usually none to a handful). This
module tells, for one upload, whether any of them could change what the evaluation at P said:

- an added entry (image or alias) whose SHA-256 equals the upload's, whose hash lies within the
  shortlist's hash radius of the upload (or its mirror), whose layout hash lies within the
  layout radius, or which shares at least ``word_min_words`` words with the upload (or its
  mirror): it would be a candidate now, so the match at P did not consider it;
- any removal: a candidate (or the image matched) may be gone;
- the word statistics moving to a new epoch (``epoch_start``): the visual-word votes of every
  other image would be weighed differently.

Nothing else in the index changes what an evaluation finds: hash searches are exact and ranked
by (distance, key), an image added outside every radius and sharing too few words appears in no
candidate list and changes no other candidate's score, because the word statistics (N and each
word's df) count only images stored up to the epoch's start. Clusters do change with every new
image; the commit applies the seed's cluster rule itself, against the clusters as they are now.
If a change could matter, the commit evaluates the upload again against the index now (two
near-copies in flight at once, an entry sharing words with the upload, an epoch boundary inside
the window), from the match's index answers merged with the entries added since where it can
(engine.index_queries).

One known limit: the visual-word index skips a hash bucket of its compressed part holding more
than twice MAX_POSTINGS postings (only stop words fill one), and which postings sit in that part
depends on when the index merged its delta: two replicas with different histories (one rebuilt
after removals) can differ there, on words too common to decide anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from stream_processors.engine.visual_words import QueryWordSet, posted_words

# The word statistics are fixed for a span of positions that grows with the store: 1/16 of the
# position, a power of two between 16 and 1024 (a span is where a copy stored inside it counts
# for df only from the next span on: a 6% lag at most, 1,024 images at a million stored). The
# commit re-evaluates an upload whose match crossed a span boundary: with ~4 decisions in flight
# that is ~0.4% of uploads at 1M stored.
MIN_EPOCH_SPAN = 16
MAX_EPOCH_SPAN = 1024
EPOCH_SPAN_FRACTION = 16
# Changes the commit keeps to settle matches made at older positions; a match older than all of
# them is evaluated again (a replica this far behind is catching up, not matching in step).
CHANGE_HISTORY = 4096
NO_POSITION = -1


def epoch_start(position: int) -> int:
    """The first position of the word-statistics epoch that ``position`` lies in: the index
    counts in N and df only the entries stored at or before it (NO_POSITION: none)."""
    if position < MIN_EPOCH_SPAN:
        return NO_POSITION
    span = 1 << (position // EPOCH_SPAN_FRACTION).bit_length() - 1
    span = min(MAX_EPOCH_SPAN, max(MIN_EPOCH_SPAN, span))
    return position // span * span


@dataclass(frozen=True)
class AddedEntry:
    """What the relevance test needs of an added entry: its exact-bytes key, its 256-bit and
    64-bit hashes (as stored: upright) and the visual words it posted (sorted, distinct)."""

    sha16: bytes
    code: np.ndarray
    coarse: np.ndarray
    words: np.ndarray


@dataclass(frozen=True)
class IndexChange:
    """One change to the index at log position ``seq``: ``added`` the entry, or (None) removed
    it; ``cluster_id``: the cluster an image's entry joined, founded or left (None: an alias)."""

    seq: int
    entry_id: str
    added: AddedEntry | None
    cluster_id: str | None = None


def added_entry(
    sha16: bytes, code: np.ndarray, coarse: np.ndarray, descriptors: np.ndarray
) -> AddedEntry:
    return AddedEntry(sha16, code.copy(), coarse.copy(), posted_words(descriptors))


@dataclass(frozen=True)
class Reach:
    """The radii within which an added entry becomes a candidate (the shortlist's)."""

    hash_radius: int
    coarse_radius: int
    min_words: int


# Which of some distinct words the index's word query skips as too common, now
StopWords = Callable[[np.ndarray], np.ndarray]


class UploadProbe:
    """An upload's side of the relevance test, computed once and only as far as needed: the
    query's word sets (``view_words``, asked only if some change passes the cheaper hash
    tests; the commit builds them once for this and for merging answers) and the stop words
    only for an entry that shares enough words before them."""

    def __init__(
        self,
        sha16: bytes,
        hashes: np.ndarray,
        coarse: np.ndarray,
        view_words: Callable[[], Sequence[QueryWordSet]],
        reach: Reach,
        stop_words: StopWords,
    ) -> None:
        self._sha16 = sha16
        self._hashes = hashes
        self._coarse = coarse
        self._view_words = view_words
        self._reach = reach
        self._stop_words = stop_words

    def affected_by(self, entry: AddedEntry, words_matter: bool = True) -> bool:
        """Whether ``entry`` would be one of the upload's candidates. ``words_matter``: the
        evaluation reached the visual-word stage (a copy found by the hash stages never looks
        at word candidates, so one sharing only words cannot alter it)."""
        if entry.sha16 == self._sha16:
            return True
        if int(np.bitwise_count(self._hashes ^ entry.code).sum(axis=1).min()) <= (
            self._reach.hash_radius
        ):
            return True
        if int(np.bitwise_count(self._coarse ^ entry.coarse).sum(axis=1).min()) <= (
            self._reach.coarse_radius
        ):
            return True
        if not words_matter:
            return False
        # the entry would be a word candidate of a view: as many shared words, counting only
        # those the query does not skip as stop words (the query's own eligibility test)
        for view in self._view_words():
            shared = entry.words[view.contains(entry.words)]
            if shared.size < self._reach.min_words:
                continue
            if int((~self._stop_words(shared)).sum()) >= self._reach.min_words:
                return True
        return False


class ChangeLog:
    """The last CHANGE_HISTORY index changes, to settle matches made at older positions."""

    def __init__(self, capacity: int = CHANGE_HISTORY) -> None:
        self._changes: deque[IndexChange] = deque()
        self._capacity = capacity
        # the newest position whose change was dropped: a match at or before it can't be settled
        self._forgotten = NO_POSITION

    def append(self, change: IndexChange) -> None:
        self._changes.append(change)
        if len(self._changes) > self._capacity:
            self._forgotten = self._changes.popleft().seq

    def forget_through(self, position: int) -> None:
        """Changes up to ``position`` were made without being logged (a bulk load)."""
        self._changes.clear()
        self._forgotten = position

    def reaches(self, position: int) -> bool:
        """Whether every change after ``position`` is still held."""
        return position >= self._forgotten

    def clusters_since(self, position: int) -> set[str]:
        """The clusters founded, joined or left after ``position``."""
        return {c.cluster_id for c in self.since(position) if c.cluster_id is not None}

    def since(self, position: int) -> Iterator[IndexChange]:
        """The changes after ``position``, newest first."""
        for change in reversed(self._changes):
            if change.seq <= position:
                return
            yield change

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every attribute, for the engine snapshot (array_state), so that a loaded engine
        settles a match made before the snapshot as the saved one would. The changes are saved
        as columns: position, entry id, whether added, and the added entries' SHA prefixes,
        hashes and words (one flat array with each entry's end)."""
        from stream_processors.engine.array_state import encode_strings, nest, plain_attributes

        changes = list(self._changes)
        added = [c.added for c in changes if c.added is not None]

        def rows(parts: list[np.ndarray]) -> np.ndarray:
            return np.stack(parts) if parts else np.zeros((0, 0), np.uint8)

        columns = {
            "seq": np.fromiter((c.seq for c in changes), np.int64, len(changes)),
            "added": np.fromiter((c.added is not None for c in changes), bool, len(changes)),
            "sha16": rows([np.frombuffer(a.sha16, np.uint8) for a in added]),
            "code": rows([a.code for a in added]),
            "coarse": rows([a.coarse for a in added]),
            "words": np.concatenate([np.zeros(0, np.int64), *(a.words for a in added)]),
            "word_ends": np.cumsum(np.fromiter((a.words.size for a in added), np.int64)),
        }
        return (
            plain_attributes(self, {"_changes"})
            | nest("_changes", columns)
            | nest("_changes", nest("entry_id", encode_strings([c.entry_id for c in changes])))
            | nest("_changes", nest("cluster_id", encode_strings([c.cluster_id for c in changes])))
        )

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray]) -> ChangeLog:
        """The change log ``to_arrays`` saved (array_state.StateMismatch if another version
        of the class saved it, or its columns disagree)."""
        from stream_processors.engine.array_state import (
            StateMismatch,
            check_names,
            decode_strings,
            item,
            restore_plain,
            sub,
        )

        log = cls()
        check_names(log, state, ())
        restore_plain(log, state, {"_changes"})
        columns = sub(state, "_changes")
        seqs, flags = item(columns, "seq").tolist(), item(columns, "added").tolist()
        ids = decode_strings(sub(columns, "entry_id"))
        clusters = decode_strings(sub(columns, "cluster_id"))
        sha16, code, coarse = item(columns, "sha16"), item(columns, "code"), item(columns, "coarse")
        words, ends = item(columns, "words"), item(columns, "word_ends").tolist()
        n_added = sum(flags)
        if not (len(seqs) == len(flags) == len(ids) == len(clusters)) or not (
            n_added == len(sha16) == len(code) == len(coarse) == len(ends)
        ):
            raise StateMismatch(f"saved change log columns disagree ({len(seqs)} changes)")
        start, j = 0, 0
        for seq, entry_id, flag, cluster_id in zip(seqs, ids, flags, clusters, strict=True):
            if entry_id is None:
                raise StateMismatch(f"saved change at position {seq} has no entry id")
            entry = None
            if flag:
                end = ends[j]
                entry = AddedEntry(
                    bytes(sha16[j]), code[j].copy(), coarse[j].copy(), words[start:end].copy()
                )
                start, j = end, j + 1
            log._changes.append(IndexChange(seq, entry_id, entry, cluster_id))
        return log


def settles_unchanged(
    probe: UploadProbe, changes: ChangeLog, position: int, head: int, words_matter: bool
) -> bool:
    """Whether an evaluation at ``position`` still holds at ``head`` for the probed upload (see
    the module docstring): no change since could make it find something else. ``words_matter``:
    the evaluation went as far as the visual-word stage (else neither the word statistics nor
    an entry sharing only words with the upload could change what it found)."""
    if position == head:
        return True
    if not changes.reaches(position):
        return False
    if words_matter and epoch_start(position) != epoch_start(head):
        return False
    for change in changes.since(position):
        if change.added is None or probe.affected_by(change.added, words_matter):
            return False
    return True
