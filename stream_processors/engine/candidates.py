"""Where an evaluation's candidates come from, and in which order they are verified.

Why a module of its own: the cost of a decision that grows with the number stored is here (hash
searches and the visual-word query), and so is the order that decides which of several stored
copies becomes the reference. Verification of one pair is engine.pair_checks; the seed's rule
for an upload that copies nothing is engine.cluster_rule; engine.delta says which index changes
could alter a candidate list, with the radii (REACH) this module searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stream_processors.engine.checks import Check, Outcome, Refused, Verified
from stream_processors.engine.delta import Reach
from stream_processors.engine.index_queries import IndexQueries
from stream_processors.engine.visual_words import WordVotes

# Dihedral variants of the query searched in the hash indexes: as uploaded and mirrored. The
# spec's edits include a horizontal flip but no 90-degree turns, and each variant is a full
# index probe (the 8 variants cost 8x at a million stored).
QUERY_VARIANTS = (0, 1)
# Hash distance up to which a neighbour gets the quick clean-copy check. Below the 16 substrings
# of the multi-index hash a neighbour shares a whole substring with the query, so the search
# probes one bucket per table (~0.15 ms at a million random codes on this 2-core box, where
# radius 40 costs ~2 ms). On the dev set 93% of the pairs the quick check accepts lie within 15
# bits.
QUICK_HASH_RADIUS = 15


class Evidence:
    """Method strings recorded in each Decision: which evidence decided."""

    SHA256 = "default:sha256"
    HASH_QUICK = "default:hash+quick-pixels"
    HASH_PIXELS = "default:hash+pixels"
    KEYPOINTS = "default:orb+ransac+pixels"
    CLUSTER = "default:hash-cluster"


# The decisions an evaluation makes only after the visual-word stage
WORD_STAGE_EVIDENCE = frozenset({Evidence.KEYPOINTS, Evidence.CLUSTER})


@dataclass(frozen=True)
class ShortlistParams:
    """How many candidates each source contributes and how many are verified.

    hash_radius / hash_limit: 256-bit neighbours (unrelated images sit near 128 bits; 40 keeps
    the dev recall of 48, at ~0.8 ms per index search at 1M stored instead of ~3);
    coarse_radius / coarse_limit: 64-bit layout neighbours (symmetric or flat images);
    fast_max_aspect_change: |log aspect ratio change| beyond which dihedral alignment is moot
    (the alignment scales each axis on its own, so a copy stretched 1.5x still aligns; stress
    set stretch recall 0.11 -> 0.50 at 0.4);
    fast_max_distance: 256-bit distance beyond which the dihedral alignment is not tried either
    (layout-hash neighbours reach ~150; on the dev set no pair beyond 89 bits passed it, and 219
    pixel checks, ~9 ms each, were spent above 90);
    word_limit / word_min_words: visual-word candidates per view and the shared words they need
    (4 with multi-probe queries: keeps chance candidates at ~0.4 per query at 1M stored, see
    visual_words; dev recall is the same at 3 and 4, 3 verified ~9% more candidates on dev and
    filled the shortlist with random images in the 1M benchmark);
    max_verified: keypoint verifications per upload (the decision's cost bound). Word limit and
    verifications 6/6 -> 12/12: stress set 663 -> 676 true positives (12/8: 668, 20/20: 678),
    dev 744 -> 745; only uploads that no hash neighbour verifies pay (dev p99 113 -> ~150 ms);
    close_hash_distance: hash neighbours this close are verified before word candidates.
    """

    hash_radius: int = 40
    hash_limit: int = 3
    coarse_radius: int = 6
    coarse_limit: int = 3
    fast_max_aspect_change: float = 0.4
    fast_max_distance: int = 96
    word_limit: int = 12
    word_min_words: int = 4
    max_verified: int = 12
    close_hash_distance: int = 40


SHORTLIST = ShortlistParams()
# An entry added this near an upload would be one of its candidates (engine.delta)
REACH = Reach(SHORTLIST.hash_radius, SHORTLIST.coarse_radius, SHORTLIST.word_min_words)
# Keypoint candidates from this rank on (0: the strongest evidence) are screened on their
# query's strongest keypoints before full matching (verify.PRESCREEN_KEYPOINTS): true copies at
# the first two ranks may show little there, none further down did on the dev or stress sets.
PRESCREEN_FROM_RANK = 2

# key -> (best 256-bit distance over the query's variants, that variant)
HashHits = dict[int, tuple[int, int]]


@dataclass(frozen=True)
class Candidate:
    """One verification an evaluation may run: of the entry under ``key``, giving evidence
    ``how``; ``params`` tells this check from another of the same entry (engine.checks)."""

    key: int
    how: str
    params: str
    check: Check


@dataclass(frozen=True)
class KeypointCandidate:
    """A candidate for keypoint verification: the views (False: as uploaded, True: mirrored)
    with evidence for it, and whether its geometry is screened first (its rank)."""

    key: int
    views: tuple[bool, ...]
    screen: bool

    @property
    def params(self) -> str:
        views = "views " + "".join("m" if m else "u" for m in self.views)
        return views + (" screened" if self.screen else "")


def earliest_passing(
    candidates: list[Candidate],
    image_key: Callable[[int], int],
    run: Callable[[Candidate], Outcome],
    refused: list[tuple[Candidate, Refused]] | None = None,
) -> tuple[int, str, Verified] | None:
    """Run checks in order until one passes, then only those of candidates whose image was
    stored earlier (``image_key``: an alias ranks as the image it shows), so the earliest stored
    image that verifies is the reference. ``refused`` gains every refused check, in order."""
    best: tuple[int, int, str, Verified] | None = None  # (image key, key, how, evidence)
    tried: set[tuple[int, str]] = set()
    for candidate in candidates:
        key, how = candidate.key, candidate.how
        rank = image_key(key)
        if best is not None and rank >= best[0]:
            continue
        if (key, how) in tried:
            continue
        tried.add((key, how))
        outcome = run(candidate)
        if isinstance(outcome, Verified):
            best = (rank, key, how, outcome)
        elif refused is not None:
            refused.append((candidate, outcome))
    return None if best is None else (best[1], best[2], best[3])


def is_reflection(variant: int) -> bool:
    """Whether dihedral op ``variant`` (mirror, flip, transpose bits) reverses orientation."""
    return bin(variant & 0b111).count("1") % 2 == 1


def hash_candidates(
    queries: IndexQueries, code_of: Callable[[int], np.ndarray], query_hashes: np.ndarray
) -> HashHits:
    """The nearest few by the 256-bit hash plus the nearest few by the 64-bit layout hash
    (``query_hashes``: one row per dihedral variant of the upload; ``code_of``: a key's
    256-bit hash)."""
    best: HashHits = {}
    for k in QUERY_VARIANTS:
        for key, dist in queries.search("hash", k, SHORTLIST.hash_radius, SHORTLIST.hash_limit):
            if key not in best or dist < best[key][0]:
                best[key] = (dist, k)
    ranked = sorted(best.items(), key=lambda kv: (kv[1][0], kv[0]))[: SHORTLIST.hash_limit]
    out = dict(ranked)
    layout: HashHits = {}
    for k in QUERY_VARIANTS:
        for key, dist in queries.search(
            "coarse", k, SHORTLIST.coarse_radius, SHORTLIST.coarse_limit
        ):
            if key not in layout or dist < layout[key][0]:
                layout[key] = (dist, k)
    for key, (_, k) in sorted(layout.items(), key=lambda kv: (kv[1][0], kv[0]))[
        : SHORTLIST.coarse_limit
    ]:
        if key not in out:
            out[key] = (int(np.bitwise_count(query_hashes[k] ^ code_of(key)).sum()), k)
    return out


def keypoint_order(
    hash_hits: HashHits, by_hash: list[int], word_hits: list[list[WordVotes]]
) -> list[KeypointCandidate]:
    """Which candidates get a keypoint verification, strongest first: close hashes, then the
    best visual-word scores (``word_hits``: the upright view's, then the mirrored one's), then
    the other hash neighbours (``by_hash``: nearest first); at most max_verified."""
    # which views (upright / mirrored) have evidence for each candidate: a hash variant's
    # reflection parity, or the words of the upright or mirrored keypoints
    views: dict[int, list[bool]] = {k: [is_reflection(v)] for k, (_, v) in hash_hits.items()}
    scored: dict[int, float] = {}
    for mirrored, hits in zip((False, True), word_hits, strict=True):
        for wv in hits:
            scored[wv.key] = max(scored.get(wv.key, 0.0), wv.votes)
            if mirrored not in views.setdefault(wv.key, []):
                views[wv.key].append(mirrored)
    close = [k for k in by_hash if hash_hits[k][0] <= SHORTLIST.close_hash_distance]
    by_words = sorted(scored, key=lambda k: (-scored[k], k))
    ranked: list[int] = []
    for key in close + by_words + by_hash:
        if key not in ranked:
            ranked.append(key)
    return [
        KeypointCandidate(k, tuple(views[k]), rank >= PRESCREEN_FROM_RANK)
        for rank, k in enumerate(ranked[: SHORTLIST.max_verified])
    ]
