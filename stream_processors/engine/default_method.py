"""PicNix's default method: exact bytes, global hash, local keypoints, aligned pixels.

Decision cascade for one upload (cheapest conclusive evidence first):

1. Exact SHA-256 of the raw bytes already stored -> duplicate-reference, nothing else computed.
2. The stored hashes within QUICK_HASH_RADIUS of the upload (then of its mirror image) get the
   quick clean-copy check (quick_check.quick_clean_copy): a clean copy (re-encoded, resized,
   brightened, mirrored, blurred) ends here in well under a millisecond at a million stored.
   The quick check only accepts; what it does not accept goes on, unjudged, to the cascade:
3. The nearest stored hashes of the upload and of its mirror image (HammingIndex, radius
   SHORTLIST.hash_radius; QUERY_VARIANTS).
   Each hash candidate (nearest first) is checked by aligning the thumbnails through the hash's
   dihedral op directly (no keypoint matching): overlays, filters, noise and the other
   photometric edits end here, before the visual-word query.
4. Otherwise the images with most visual-word votes (inverted index) join the shortlist, and
   at most SHORTLIST.max_verified candidates, strongest evidence first, are verified by ORB
   ratio-test matches, a RANSAC similarity or homography (upright and/or mirrored view,
   whichever has evidence) and the aligned pixel check; an alignment whose check fails is
   refined by ECC and checked once more (verify.refine_alignment).
5. Once a candidate passes, the remaining candidates of that stage stored *earlier* are checked
   too, so the reference goes to the earliest stored image it copies (normally the original).
6. No duplicate: the seed's clustering rule on the hash (new cluster / merge into the nearest).

A duplicate (other than an exact byte copy) stays in the indexes as an *alias* of the image it
references: the same entries as a stored image, but no cluster membership and no stored bytes.
A later upload may verify against an alias where it fails against the stored image itself: the
first upload of an artwork is often an edited copy (say, with a caption), and a copy with a
different caption fails against it (two overlays) but passes against the clean original that
was referenced to it. On the dev set aliases turn 15 missed duplicates into references and add no
false one.

This module holds the method's signature and state and runs the cascade; its parts are modules
of their own: where candidates come from and in which order they are verified
(engine.candidates), the verification of one pair (engine.pair_checks, over engine.verify's
rules), the clustering rule (engine.cluster_rule), and what settles a match made on an older
copy of the index (engine.delta; ``settle``, the only engine call the sequential commit makes,
uses the delta check and the clustering rule, and evaluates again only when a change could
alter the match).

Every threshold is a named constant or a frozen parameter object; they were calibrated on the
calibration split of the dev set (scripts/evaluate.py --split calib).
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from stream_processors.engine.candidates import (
    QUERY_VARIANTS,
    QUICK_HASH_RADIUS,
    REACH,
    SHORTLIST,
    WORD_STAGE_EVIDENCE,
    Candidate,
    Evidence,
    earliest_passing,
    hash_candidates,
    keypoint_order,
)
from stream_processors.engine.checks import CheckKey, CheckMemo, Outcome, Refused, Verified
from stream_processors.engine.cluster_rule import cluster_rule, cluster_rule_since
from stream_processors.engine.clusters import ClusterIndex
from stream_processors.engine.decision import (
    Decision,
    DecisionKind,
    RefusedCandidate,
    Settled,
)
from stream_processors.engine.delta import (
    NO_POSITION,
    AddedEntry,
    ChangeLog,
    IndexChange,
    UploadProbe,
    added_entry,
    epoch_start,
    settles_unchanged,
)
from stream_processors.engine.feature_store import (
    FeatureRecordMissing,
    FeatureStore,
    MappingFeatureStore,
)
from stream_processors.engine.hamming_index import HammingIndex
from stream_processors.engine.index_queries import (
    IndexQueries,
    LiveQueries,
    MergedQueries,
    NotRecorded,
    QueryRecord,
    UploadQuery,
)
from stream_processors.engine.local_features import (
    Keypoints,
    LocalFeatures,
    detect_orb_views,
    empty_keypoints,
    frame_of,
    keypoints_from_bytes,
    keypoints_to_bytes,
    local_features_deferred,
    local_features_from_bytes,
    local_features_to_bytes,
    quantize_points,
    record_keypoints,
    record_length,
    thumb_of,
)
from stream_processors.engine.method import ImageLike
from stream_processors.engine.pair_checks import (
    Aligned,
    Unaligned,
    fast_check,
    fast_evidence,
    keypoint_check,
    keypoint_evidence,
    quick_check,
)
from stream_processors.engine.signatures import (
    COARSE_BITS,
    HASH_BITS,
    HASH_BYTES,
    N_DIHEDRAL,
    coarse_hashes,
    dihedral_hashes,
    trim_uniform_border,
)
from stream_processors.engine.verify import PixelCheck, PixelThresholds
from stream_processors.engine.visual_words import VisualWordIndex

METHOD_NAME = "default"
WORK_LONG_SIDE = 1024  # decoded pixels above this are reduced before trimming
COARSE_BYTES = COARSE_BITS // 8
# 128 bits of SHA-256 identify bytes as surely as 256 (collisions need ~2^64 images)
SHA256_INDEX_BYTES = 16
_INT_BYTES = 32  # a key int object (the dict's value)
# A decision records the first few candidates the verifier refused, in the order tried: enough
# to see which picture came close and which rule told it apart (an evaluation verifies up to
# ~15), few enough to keep decisions small. On the first 400 dev uploads 46% of the decisions
# record any (1.96 a decision, 5 at most); a decision's JSON grows from 219 to 774 bytes on
# average (2.6 kB at most), a match's checks from 582 to 1,247 (5.0 kB at most).
MAX_REFUSED_RECORDED = 5
# The reason a byte-identical upload records (the others are verify.PixelRule names and
# pair_checks.REASON_QUICK_CLEAN_COPY).
REASON_IDENTICAL_BYTES = "identical-bytes"
IDENTICAL_BYTES = Verified(REASON_IDENTICAL_BYTES)


@dataclass(frozen=True)
class DefaultSignature:
    """Everything the default method knows of one image.

    ``hashes[k]`` is the hash of dihedral op k of the trimmed image (row 0: as uploaded),
    ``coarse[k]`` its 64-bit layout hash;
    ``local`` holds the keypoints, frame size and thumbnail; ``mirror`` the keypoints of the
    mirrored frame (used for queries only, never stored); ``local_record`` is ``local``
    serialised, what the FeatureStore keeps for a stored image (so decide never re-encodes it).
    ``local`` is always what ``local_record`` parses to (quantised coordinates, the decoded
    thumbnail): an evaluation in one process decides as the pipeline does after the wire.
    """

    sha256: bytes
    width: int
    height: int
    hashes: np.ndarray
    coarse: np.ndarray
    local: LocalFeatures
    mirror: Keypoints
    local_record: bytes

    @property
    def code(self) -> np.ndarray:
        return self.hashes[0]


_SIG_MAGIC = b"PXD"
_SIG_VERSION = 5  # 5: local-features record v5 (uint16 coordinates, PNG or JPEG thumbnail)
_SIG_HEADER = struct.Struct("<3sB32sIIH")  # magic, version, sha256, width, height, mirror count
# The state form of a stored signature (what the decider persists to rebuild the engine): the
# global part only, as the local features are in the FeatureStore under the entry's id.
_STATE_MAGIC = b"PXS"
_STATE_VERSION = 1
_STATE_HEADER = struct.Struct("<3sB32sII")  # magic, version, sha256, width, height
_STATE_BYTES = _STATE_HEADER.size + N_DIHEDRAL * (HASH_BYTES + COARSE_BITS // 8)


def extract_signature(image: ImageLike) -> DefaultSignature:
    """Trim borders, hash, detect keypoints (and on the mirror), make the thumbnail."""
    bgr = image.pixels
    h, w = bgr.shape[:2]
    if max(h, w) > WORK_LONG_SIDE:
        s = WORK_LONG_SIDE / max(h, w)
        bgr = cv2.resize(
            bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    box = trim_uniform_border(bgr)
    colour = frame_of(np.ascontiguousarray(bgr[box.y0 : box.y1, box.x0 : box.x1]))
    frame = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    hashes = dihedral_hashes(frame)
    coarse = coarse_hashes(frame)
    upright, mirror = detect_orb_views(frame)
    detected = LocalFeatures(upright, (frame.shape[1], frame.shape[0]), thumb_of(colour))
    record = local_features_to_bytes(detected)
    local, _ = local_features_from_bytes(record)
    return DefaultSignature(
        sha256=bytes.fromhex(image.sha256),
        width=int(image.width),
        height=int(image.height),
        hashes=hashes,
        coarse=coarse,
        local=local,
        mirror=Keypoints(quantize_points(mirror.points), mirror.descriptors),
        local_record=record,
    )


def _global_bytes(sig: DefaultSignature) -> bytes:
    return sig.hashes.astype(np.uint8).tobytes() + sig.coarse.astype(np.uint8).tobytes()


def signature_to_bytes(sig: DefaultSignature) -> bytes:
    header = _SIG_HEADER.pack(
        _SIG_MAGIC, _SIG_VERSION, sig.sha256, sig.width, sig.height, len(sig.mirror)
    )
    return b"".join([header, _global_bytes(sig), sig.local_record, keypoints_to_bytes(sig.mirror)])


def _global_from_bytes(data: bytes, off: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The dihedral hashes and layout hashes at ``off``, and the offset after them."""
    n_hash = N_DIHEDRAL * HASH_BYTES
    hashes = np.frombuffer(data, np.uint8, n_hash, off).reshape(N_DIHEDRAL, HASH_BYTES).copy()
    off += n_hash
    n_coarse = N_DIHEDRAL * COARSE_BYTES
    coarse = np.frombuffer(data, np.uint8, n_coarse, off).reshape(N_DIHEDRAL, COARSE_BYTES).copy()
    return hashes, coarse, off + n_coarse


def signature_from_bytes(data: bytes) -> DefaultSignature:
    magic, version, sha, width, height, n_mirror = _SIG_HEADER.unpack_from(data, 0)
    if magic != _SIG_MAGIC or version != _SIG_VERSION:
        raise ValueError(f"not a default-method signature v{_SIG_VERSION}: {magic!r} v{version}")
    hashes, coarse, off = _global_from_bytes(data, _SIG_HEADER.size)
    view = memoryview(data)
    local, used = local_features_from_bytes(view[off:])
    record = bytes(view[off : off + used])
    off += used
    mirror, used = keypoints_from_bytes(view[off:], n_mirror)
    off += used
    if off != len(data):
        raise ValueError(f"trailing bytes in signature: {len(data) - off}")
    return DefaultSignature(sha, width, height, hashes, coarse, local, mirror, record)


def state_to_bytes(sig: DefaultSignature) -> bytes:
    """The state form of a stored signature (see _STATE_MAGIC): ~300 bytes."""
    header = _STATE_HEADER.pack(_STATE_MAGIC, _STATE_VERSION, sig.sha256, sig.width, sig.height)
    return header + _global_bytes(sig)


def state_from_bytes(data: bytes, record: bytes) -> DefaultSignature:
    """A stored signature from its state form and its FeatureStore record (no mirror). Its
    thumbnail is decoded only if read (local_features_deferred): re-applying the signature
    reads the keypoints alone, and a restart re-applies every stored one."""
    magic, version, sha, width, height = _STATE_HEADER.unpack_from(data, 0)
    if magic != _STATE_MAGIC or version != _STATE_VERSION:
        raise ValueError(f"not a default-method state v{_STATE_VERSION}: {magic!r} v{version}")
    hashes, coarse, off = _global_from_bytes(data, _STATE_HEADER.size)
    if off != len(data):
        raise ValueError(f"trailing bytes in signature state: {len(data) - off}")
    if record_length(record) != len(record):
        raise ValueError("local-features record of the wrong length in the store")
    local, _ = local_features_deferred(record)
    return DefaultSignature(sha, width, height, hashes, coarse, local, empty_keypoints(), record)


def _sha_code(sha256: bytes) -> np.ndarray:
    return np.frombuffer(sha256, np.uint8, SHA256_INDEX_BYTES)


def _upload_query(sig: DefaultSignature) -> UploadQuery:
    return UploadQuery(
        _sha_code(sig.sha256), sig.hashes, sig.coarse,
        (sig.local.keypoints.descriptors, sig.mirror.descriptors),
    )




class DefaultMethod:
    """Index state and the decision cascade; see the module docstring."""

    name = METHOD_NAME

    def __init__(self, store: FeatureStore | None = None) -> None:
        self._store: FeatureStore = store if store is not None else MappingFeatureStore()
        self._hashes = HammingIndex(HASH_BITS)
        self._coarse = HammingIndex(COARSE_BITS)
        self._words = VisualWordIndex()
        self._clusters = ClusterIndex(self._hashes)
        # per image: id -> key, and per key (keys are dense) its id and SHA-256; the hash lives
        # only in the hash index (``self._hashes.get(key)``), the cluster in ``self._clusters``
        self._images: dict[str, int] = {}
        # aliases (duplicates kept as more views of their image): upload id -> key;
        # ``_id_of_key`` maps an alias's key to its image
        self._aliases: dict[str, int] = {}
        self._id_of_key: list[str | None] = []
        # per key, the upload id of the entry itself (an image's own, or the alias's): its
        # record's id in the FeatureStore
        self._entry_of_key: list[str | None] = []
        # exact-bytes lookup: the first SHA256_INDEX_BYTES of each stored image's SHA-256 in a
        # Hamming index searched at radius 0 (~57 B per image where a dict of bytes costs ~120)
        self._sha = HammingIndex(8 * SHA256_INDEX_BYTES)
        self._next_key = 0
        # per key, the index-log position its entry was stored at (non-decreasing with the key:
        # entries are applied in log order), and the position of the latest change applied
        self._seqs = np.zeros(0, np.int64)
        self._position = NO_POSITION
        self._changes = ChangeLog()

    # ------------------------------------------------------------------ signature
    def extract(self, image: ImageLike) -> DefaultSignature:
        return extract_signature(image)

    def signature_to_bytes(self, sig: DefaultSignature) -> bytes:
        return signature_to_bytes(sig)

    def signature_from_bytes(self, data: bytes) -> DefaultSignature:
        return signature_from_bytes(data)

    def state_to_bytes(self, sig: DefaultSignature) -> bytes:
        return state_to_bytes(sig)

    def state_from_bytes(self, entry_id: str, data: bytes) -> DefaultSignature:
        return state_from_bytes(data, self._store.get(entry_id))

    def replica_to_bytes(self, sig: DefaultSignature) -> bytes:
        return state_to_bytes(sig) + sig.local_record

    def replica_from_bytes(self, entry_id: str, data: bytes) -> DefaultSignature:
        state, record = data[:_STATE_BYTES], data[_STATE_BYTES:]
        self._store.put(entry_id, record)
        return state_from_bytes(state, record)

    def holds(self, entry_id: str) -> bool:
        return entry_id in self._images or entry_id in self._aliases

    def entry_ids(self) -> list[str]:
        return [*self._images, *self._aliases]

    def advance_to(self, position: int) -> None:
        self._advance(position)
        self._changes.forget_through(position)

    # ------------------------------------------------------------------ decide
    def evaluate(
        self, upload_id: str, sig: DefaultSignature, checks: CheckMemo | None = None
    ) -> Decision:
        record = None if checks is None else checks.queries
        queries = self._live_queries(sig, record)
        return self._evaluate(
            upload_id, sig, partial(self._run, checks), queries,
            partial(cluster_rule, self._clusters, upload_id, sig.code),
        )

    def _evaluate(
        self,
        upload_id: str,
        sig: DefaultSignature,
        run: Callable[[Candidate], Outcome],
        queries: IndexQueries,
        cluster: Callable[[tuple[RefusedCandidate, ...]], Decision],
    ) -> Decision:
        """The cascade, over index answers from ``queries``; ``cluster``: the seed's rule for an
        upload that copies nothing, given the candidates refused on the way."""
        exact = queries.exact()
        if exact:
            image_id = self._id_of_key[exact[0]]
            assert image_id is not None
            return self._duplicate(
                upload_id, image_id, 0.0, Evidence.SHA256, exact[0], IDENTICAL_BYTES
            )
        quick = self._quick_duplicate(upload_id, sig, run, queries)
        if quick is not None:
            return quick
        hash_hits = hash_candidates(queries, self._code_of, sig.hashes)
        by_hash = sorted(hash_hits, key=lambda k: (hash_hits[k][0], k))
        fast = [
            Candidate(
                k, Evidence.HASH_PIXELS, f"v{hash_hits[k][1]}",
                partial(self._fast_check, sig, k, hash_hits[k][1]),
            )
            for k in by_hash
            if hash_hits[k][0] <= SHORTLIST.fast_max_distance
        ]
        # most copies end at a hash neighbour's pixel check; only the others pay for the
        # visual-word query (the stage that grows most with the number stored) and keypoints
        tried: list[tuple[Candidate, Refused]] = []
        found = earliest_passing(fast, self._image_key, run, tried)
        if found is None:
            candidates = self._keypoint_checks(sig, hash_hits, by_hash, queries)
            found = earliest_passing(candidates, self._image_key, run, tried)
        refused = self._refused_candidates(tried)
        if found is not None:
            key, how, verified = found
            dist = hash_hits[key][0] if key in hash_hits else self._code_distance(sig, key)
            image_id = self._id_of_key[key]
            assert image_id is not None
            return self._duplicate(upload_id, image_id, dist, how, key, verified, refused)
        return cluster(refused)

    def _refused_candidates(
        self, tried: list[tuple[Candidate, Refused]]
    ) -> tuple[RefusedCandidate, ...]:
        """The first MAX_REFUSED_RECORDED refused checks as a decision's evidence records them."""
        out = []
        for candidate, refused in tried[:MAX_REFUSED_RECORDED]:
            image_id = self._id_of_key[candidate.key]
            assert image_id is not None
            entry = self._entry_id(candidate.key)
            out.append(RefusedCandidate(entry, image_id, candidate.how, refused.refusals))
        return tuple(out)

    def _run(self, checks: CheckMemo | None, candidate: Candidate) -> Outcome:
        """A candidate's check, or its outcome from ``checks`` when it ran before."""
        if checks is None:
            return candidate.check()
        how = f"{candidate.how} {candidate.params}"
        return checks.run(CheckKey(self._entry_id(candidate.key), how), candidate.check)

    @property
    def position(self) -> int:
        """The index-log position of the latest change applied (NO_POSITION: none yet)."""
        return self._position

    def settle(
        self,
        upload_id: str,
        sig: DefaultSignature,
        matched: Decision,
        position: int,
        checks: CheckMemo | None = None,
    ) -> Settled:
        """The decision now for an upload that ``matched`` was evaluated for at ``position``
        (an earlier state of this index, on any replica): the match stands unless a change
        since could alter it (engine.delta), and a non-duplicate gets the cluster rule against
        the clusters as they are now. Exactly ``evaluate`` now, at the cost of a few hash
        comparisons in the common case; an evaluation again reuses the match's ``checks``."""
        if position > self._position:
            raise ValueError(
                f"upload {upload_id} was matched at position {position}, after this index's "
                f"{self._position}: the replica ran ahead of the commit"
            )
        upload = _upload_query(sig)
        probe = UploadProbe(
            bytes(upload.sha_code),
            upload.hashes[list(QUERY_VARIANTS)],
            upload.coarse[list(QUERY_VARIANTS)],
            lambda: upload.word_sets,
            REACH,
            partial(self._words.stop_words, counted_keys=self._counted_keys()),
        )
        words_matter = matched.method in WORD_STAGE_EVIDENCE
        if not settles_unchanged(probe, self._changes, position, self._position, words_matter):
            memo = CheckMemo() if checks is None else checks
            before = memo.ran
            decision, queried = self._evaluate_again(
                upload_id, sig, upload, matched, position, memo
            )
            return Settled(decision, True, memo.ran - before, queried)
        if matched.is_duplicate:
            return Settled(matched, reevaluated=False)
        return Settled(
            cluster_rule_since(
                self._clusters, self._changes, upload_id, sig.code, matched, position,
                matched.refused,
            ), reevaluated=False
        )

    def _evaluate_again(
        self,
        upload_id: str,
        sig: DefaultSignature,
        upload: UploadQuery,
        matched: Decision,
        position: int,
        memo: CheckMemo,
    ) -> tuple[Decision, bool]:
        """``evaluate`` now of an upload matched at ``position`` (``upload``: its side of the
        queries, as settle built it), and whether it queried the index: not when the match's
        answers merge with the entries added since (engine.index_queries: nothing removed
        since, the same word-statistics epoch, and the match made every query this evaluation
        makes). ``memo`` ends with the answers as of now, so a settled match can be settled
        again at a later position (a replica catching up its own match, then the commit)."""
        added = self._added_since(position)
        matched_answers, memo.queries = memo.queries, QueryRecord()
        if added is not None and epoch_start(position) == epoch_start(self._position):
            queries = MergedQueries(
                upload, matched_answers, added, self._key_of, self._words, self._entry_id,
                memo.queries,
            )
            cluster: Callable[[tuple[RefusedCandidate, ...]], Decision]
            if matched.is_duplicate:  # no nearest cluster was measured at the match
                cluster = partial(cluster_rule, self._clusters, upload_id, sig.code)
            else:
                cluster = partial(
                    cluster_rule_since, self._clusters, self._changes, upload_id, sig.code,
                    matched, position,
                )
            try:
                return self._evaluate(
                    upload_id, sig, partial(self._run, memo), queries, cluster
                ), False
            except NotRecorded:
                pass  # the cascade went further than the match's: query the index
        return self.evaluate(upload_id, sig, memo), True

    def _added_since(self, position: int) -> list[tuple[int, AddedEntry]] | None:
        """The entries added after ``position`` with their keys, in key order; None if an entry
        was removed since or the change log no longer reaches back that far."""
        if not self._changes.reaches(position):
            return None
        added = []
        for change in self._changes.since(position):
            if change.added is None:
                return None
            added.append((self._key_of(change.entry_id), change.added))
        return added[::-1]

    def _key_of(self, entry_id: str) -> int:
        """The key of a stored image's or alias's entry (its upload id)."""
        key = self._images.get(entry_id, self._aliases.get(entry_id))
        if key is None:
            raise ValueError(f"entry {entry_id} is not in this index: the match's replica holds "
                             "an entry the commit does not")
        return key

    def _counted_keys(self) -> int:
        """Keys below this count in the visual-word statistics: the entries stored up to the
        current epoch's start (engine.delta.epoch_start)."""
        start = epoch_start(self._position)
        return int(np.searchsorted(self._seqs[: self._next_key], start, side="right"))

    def _quick_duplicate(
        self,
        upload_id: str,
        sig: DefaultSignature,
        run: Callable[[Candidate], Outcome],
        queries: IndexQueries,
    ) -> Decision | None:
        """The quick stage: hash neighbours within QUICK_HASH_RADIUS, upright view first, each
        given the quick clean-copy check; the mirrored view is searched only when the upright
        one found no copy."""
        for variant in QUERY_VARIANTS:
            hits = queries.search("hash", variant, QUICK_HASH_RADIUS, SHORTLIST.hash_limit)
            if not hits:
                continue
            candidates = [
                Candidate(
                    key, Evidence.HASH_QUICK, f"v{variant}",
                    partial(self._quick_check, sig, key, variant),
                )
                for key, _ in hits
            ]
            found = earliest_passing(candidates, self._image_key, run)
            if found is not None:
                key = found[0]
                image_id = self._id_of_key[key]
                assert image_id is not None
                dist = next(d for k, d in hits if k == key)
                return self._duplicate(
                    upload_id, image_id, dist, Evidence.HASH_QUICK, key, found[2]
                )
        return None

    def _quick_check(self, sig: DefaultSignature, key: int, variant: int) -> Outcome:
        return quick_check(sig.local.thumb, self._record(key), variant)

    def _keypoint_checks(
        self,
        sig: DefaultSignature,
        hash_hits: dict[int, tuple[int, int]],
        by_hash: list[int],
        queries: IndexQueries,
    ) -> list[Candidate]:
        """Keypoint verifications of the strongest few candidates (candidates.keypoint_order)."""
        word_hits = queries.word_hits(
            SHORTLIST.word_limit, SHORTLIST.word_min_words, self._counted_keys()
        )
        return [
            Candidate(
                c.key, Evidence.KEYPOINTS, c.params,
                partial(self._keypoint_check, sig, c.key, c.views, c.screen),
            )
            for c in keypoint_order(hash_hits, by_hash, word_hits)
        ]

    def shortlist_ms(self, sig: DefaultSignature) -> dict[str, float]:
        """Milliseconds of the index work of one decision, by stage (no verification): the part
        whose cost depends on the number stored (``hash``: the SHA lookup and every hash search,
        quick stage included). ``cluster`` is paid by non-duplicates only. For benchmarks."""
        t0 = time.perf_counter()
        self._sha.find(_sha_code(sig.sha256))
        for variant in QUERY_VARIANTS:
            self._hashes.search(sig.hashes[variant], QUICK_HASH_RADIUS, SHORTLIST.hash_limit)
        hash_candidates(self._live_queries(sig), self._code_of, sig.hashes)
        t1 = time.perf_counter()
        self._words.query_views(
            [sig.local.keypoints.descriptors, sig.mirror.descriptors],
            SHORTLIST.word_limit,
            SHORTLIST.word_min_words,
            self._counted_keys(),
        )
        t2 = time.perf_counter()
        self._clusters.nearest(sig.code)
        t3 = time.perf_counter()
        return {"hash": (t1 - t0) * 1e3, "words": (t2 - t1) * 1e3, "cluster": (t3 - t2) * 1e3}

    def _duplicate(
        self,
        upload_id: str,
        image_id: str,
        dist: float,
        how: str,
        key: int,
        verified: Verified,
        refused: tuple[RefusedCandidate, ...] = (),
    ) -> Decision:
        """A reference to ``image_id``, matched on the entry under ``key``: the image itself or
        one of its aliases (then ``via`` names it, and a region measured on that copy is not
        one of the original, so none is given); ``refused``: the candidates refused before."""
        stored = self._images[image_id]
        cluster_id = self._clusters.cluster_of(stored)
        entry = self._entry_id(key)
        via = None if entry == image_id else entry
        return Decision(
            upload_id,
            DecisionKind.DUPLICATE_REFERENCE,
            image_id,
            cluster_id,
            float(dist),
            how,
            verified.region if via is None else None,
            via,
            verified.reason,
            verified.refusals,
            refused,
            verified.unexplained_share,
        )

    def _live_queries(
        self, sig: DefaultSignature, record: QueryRecord | None = None
    ) -> LiveQueries:
        return LiveQueries(
            _upload_query(sig), self._sha, self._hashes, self._coarse, self._words,
            self._entry_id, record,
        )

    def _image_key(self, key: int) -> int:
        """The key of the stored image that ``key`` (an image or an alias) shows."""
        image_id = self._id_of_key[key]
        assert image_id is not None
        return self._images[image_id]

    def _entry_id(self, key: int) -> str:
        """The upload id of the entry under ``key``: its record's id in the FeatureStore."""
        entry_id = self._entry_of_key[key]
        assert entry_id is not None
        return entry_id

    def _record(self, key: int) -> bytes:
        return self._store.get(self._entry_id(key))

    def _code_of(self, key: int) -> np.ndarray:
        code = self._hashes.get(key)
        assert code is not None
        return code

    def _code_distance(self, sig: DefaultSignature, key: int) -> int:
        code = self._code_of(key)
        return int(np.bitwise_count(sig.hashes ^ code[None, :]).sum(axis=1).min())

    def fast_evidence(
        self, sig: DefaultSignature, key: int, variant: int
    ) -> PixelCheck | Unaligned:
        """Pixel check of the thumbnails aligned by the hash's dihedral op (no keypoints)."""
        return fast_evidence(sig.local.thumb, self._record(key), variant)

    def _fast_check(self, sig: DefaultSignature, key: int, variant: int) -> Outcome:
        return fast_check(sig.local.thumb, self._record(key), variant)

    def keypoint_evidence(
        self,
        sig: DefaultSignature,
        key: int,
        views: tuple[bool, ...] = (False, True),
        stop: PixelThresholds | None = None,
        screen: bool = False,
    ) -> list[Aligned | Unaligned]:
        """pair_checks.keypoint_evidence of the upload against the entry under ``key``."""
        return keypoint_evidence(sig.local, sig.mirror, self._record(key), views, stop, screen)

    def _keypoint_check(
        self, sig: DefaultSignature, key: int, views: tuple[bool, ...], screen: bool
    ) -> Outcome:
        return keypoint_check(sig.local, sig.mirror, self._record(key), views, screen)

    # ------------------------------------------------------------------ state
    def apply(self, decision: Decision, sig: DefaultSignature, seq: int | None = None) -> bool:
        if decision.kind is DecisionKind.DUPLICATE_REFERENCE:
            if decision.method == Evidence.SHA256:
                return False  # the same bytes show nothing the stored entry does not
            if decision.upload_id in self._aliases:
                raise ValueError(f"upload {decision.upload_id} already has an alias")
            self._aliases[decision.upload_id] = self._add_entry(
                decision.upload_id, decision.image_id, sig, self._advance(seq), None
            )
            return True
        if decision.image_id in self._images:
            raise ValueError(f"image {decision.image_id} already stored")
        key = self._add_entry(
            decision.image_id, decision.image_id, sig, self._advance(seq), decision.cluster_id
        )
        self._images[decision.image_id] = key
        if decision.kind is DecisionKind.NEW_CLUSTER:
            self._clusters.found(decision.cluster_id, key)
        else:
            self._clusters.join(decision.cluster_id, sig.code, key)
        return True

    def _advance(self, seq: int | None) -> int:
        """Move to log position ``seq`` (None: the next one, for callers without a log)."""
        seq = self._position + 1 if seq is None else seq
        if seq < self._position:
            raise ValueError(f"index change at position {seq} after position {self._position}")
        self._position = seq
        return seq

    def _add_entry(
        self, entry_id: str, image_id: str, sig: DefaultSignature, seq: int, cluster_id: str | None
    ) -> int:
        """Index one signature (a stored image or an alias, ``entry_id`` its upload) under a new
        key showing ``image_id``, stored at log position ``seq``; ``cluster_id``: the cluster an
        image joins or founds (None: an alias)."""
        key = self._next_key
        self._next_key += 1
        if key >= len(self._seqs):
            self._seqs = np.concatenate([self._seqs, np.zeros(max(1024, key), np.int64)])
        self._seqs[key] = seq
        descriptors = sig.local.keypoints.descriptors
        sha16 = bytes(_sha_code(sig.sha256))
        entry = added_entry(sha16, sig.code, sig.coarse[0], descriptors)
        self._changes.append(IndexChange(seq, entry_id, entry, cluster_id))
        self._id_of_key.append(image_id)
        self._entry_of_key.append(entry_id)
        self._sha.add(key, _sha_code(sig.sha256))
        self._hashes.add(key, sig.code)
        self._coarse.add(key, sig.coarse[0])
        self._words.add_words(key, entry.words)
        self._store.put(entry_id, sig.local_record)
        return key

    def _drop_entry(self, key: int, seq: int | None, cluster_id: str | None) -> np.ndarray:
        """Remove one key from every index at log position ``seq`` (``cluster_id``: the cluster
        an image leaves, None for an alias); returns its hash code."""
        seq = self._advance(seq)
        self._changes.append(IndexChange(seq, self._entry_id(key), None, cluster_id))
        code = self._code_of(key)
        try:
            self._words.remove(key, record_keypoints(self._record(key)).descriptors)
        except FeatureRecordMissing:
            # a removal applied again after a restart from a snapshot older than it: the
            # record went with the first application
            self._words.remove_key(key)
        self._store.delete(self._entry_id(key))
        self._hashes.remove(key)
        self._coarse.remove(key)
        self._sha.remove(key)
        self._id_of_key[key] = None
        self._entry_of_key[key] = None
        return code

    def bulk_load(
        self,
        image_ids: list[str],
        cluster_ids: list[str],
        sha256s: list[bytes],
        codes: np.ndarray,
        coarse: np.ndarray,
        words: np.ndarray,
        records: list[bytes] | None = None,
    ) -> None:
        """Store many non-duplicate images at once (snapshot load, benchmark fill).

        Row i is image ``image_ids[i]`` in cluster ``cluster_ids[i]`` (founded by its first
        member in order, joined by the later ones), with 256-bit ``codes[i]``, 64-bit
        ``coarse[i]`` and posted visual words ``words[i]`` (``visual_words.word_rows`` of the
        keypoint descriptors); ``records`` are the local-feature records for the FeatureStore
        (none: the caller has put them already, under the image ids). The same state
        as ``apply`` of NEW_CLUSTER / MERGE_CENTER decisions one by one, built with one rebuild
        per index.
        """
        n = len(image_ids)
        keys = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
        self._next_key += n
        # each image at its own position after the current one; no match made before the load
        # can be settled across it (the change log does not hold these)
        seqs = np.arange(self._position + 1, self._position + 1 + n, dtype=np.int64)
        self._seqs = np.concatenate([self._seqs[: int(keys[0]) if n else len(self._seqs)], seqs])
        self._position += n
        self._changes.forget_through(self._position)
        for key, image_id in zip(keys.tolist(), image_ids, strict=True):
            self._images[image_id] = key
        shas = np.frombuffer(b"".join(h[:SHA256_INDEX_BYTES] for h in sha256s), np.uint8)
        self._sha.add_many(keys, shas.reshape(n, SHA256_INDEX_BYTES))
        self._id_of_key.extend(image_ids)
        self._entry_of_key.extend(image_ids)
        self._hashes.add_many(keys, codes)
        self._coarse.add_many(keys, coarse)
        self._words.add_many(keys, words)
        if records is not None:
            for image_id, rec in zip(image_ids, records, strict=True):
                self._store.put(image_id, rec)
        self._clusters.add_many(cluster_ids, codes, keys)

    def remove(self, image_id: str, seq: int | None = None) -> None:
        key = self._images.pop(image_id, None)
        if key is None:
            return
        cluster_id = self._clusters.cluster_of(key)
        code = self._drop_entry(key, seq, cluster_id)
        self._clusters.leave(cluster_id, code, key)

    def remove_alias(self, upload_id: str, seq: int | None = None) -> None:
        key = self._aliases.pop(upload_id, None)
        if key is not None:
            self._drop_entry(key, seq, None)

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return len(self._images)

    def cluster_count(self) -> int:
        return len(self._clusters)

    def memory_bytes(self) -> int:
        """In-memory index bytes (excluding the feature store), Python objects included."""
        ids = sys.getsizeof(self._images) + sys.getsizeof(self._id_of_key)
        ids += sys.getsizeof(self._entry_of_key)
        ids += sys.getsizeof(self._aliases)
        ids += sum(sys.getsizeof(k) + _INT_BYTES for k in (*self._images, *self._aliases))
        return (
            self._hashes.nbytes()
            + self._coarse.nbytes()
            + self._sha.nbytes()
            + self._words.nbytes()
            + self._clusters.nbytes()
            + ids
        )

    # ------------------------------------------------------------------ snapshot
    # How to_arrays saves the attributes that are no array or scalar: the id lists as strings;
    # the id -> key dicts as their keys in dict order (each id is its key's entry id, so the
    # names come back from ``_entry_of_key``, the same string objects); the store not at all
    # (it is the caller's, and survives a restart on its own).
    _SNAPSHOT_STRINGS = ("_id_of_key", "_entry_of_key")
    _SNAPSHOT_KEY_DICTS = ("_images", "_aliases")
    _SNAPSHOT_UNSAVED = ("_store",)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole in-memory state as named arrays, for the engine snapshot (snapshot.py).

        Every attribute is walked (array_state): the indexes save themselves, arrays and scalars
        are saved as they are, and an attribute of any other type is refused by name, so state
        added to the engine later is saved or loudly refused, never dropped."""
        from stream_processors.engine.array_state import (
            UnsavableAttribute,
            encode_strings,
            nest,
            plain_attributes,
        )

        if self._clusters._members is not self._hashes:
            raise UnsavableAttribute("the cluster index's members are not the method's hashes")
        out: dict[str, np.ndarray] = {}
        handled = set(self._SNAPSHOT_UNSAVED)
        for name, value in vars(self).items():
            if name in self._SNAPSHOT_STRINGS:
                out |= nest(name, encode_strings(value))
            elif name in self._SNAPSHOT_KEY_DICTS:
                ids = self._entry_of_key
                wrong = [i for i, k in value.items() if ids[k] != i]
                if wrong:
                    raise UnsavableAttribute(
                        f"DefaultMethod.{name}: {len(wrong)} ids are not their key's entry id "
                        f"(first: {wrong[0]!r})"
                    )
                keys = np.fromiter(value.values(), np.int64, len(value))
                out |= nest(name, {"keys": keys})
            elif hasattr(value, "to_arrays") and hasattr(type(value), "from_arrays"):
                out |= nest(name, value.to_arrays())
            else:
                continue
            handled.add(name)
        return out | plain_attributes(self, handled)

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray], store: FeatureStore) -> DefaultMethod:
        """The method ``to_arrays`` saved, over ``store`` (which must hold the records of every
        entry it indexes). array_state.StateMismatch if another version of the engine saved it,
        or if its parts disagree."""
        from stream_processors.engine.array_state import (
            StateMismatch,
            check_names,
            decode_strings,
            item,
            restore_plain,
            sub,
        )

        method = cls(store)
        check_names(method, state, cls._SNAPSHOT_UNSAVED)
        handled = {*cls._SNAPSHOT_UNSAVED, *cls._SNAPSHOT_STRINGS, *cls._SNAPSHOT_KEY_DICTS}
        for name, fresh in list(vars(method).items()):
            if name in handled:
                continue
            if isinstance(fresh, ClusterIndex):  # its members are the restored hash index
                continue
            if hasattr(type(fresh), "from_arrays"):
                setattr(method, name, type(fresh).from_arrays(sub(state, name)))
                handled.add(name)
        method._clusters = ClusterIndex.from_arrays(sub(state, "_clusters"), method._hashes)
        handled.add("_clusters")
        entries = decode_strings(sub(state, "_entry_of_key"))
        images = decode_strings(sub(state, "_id_of_key"))
        if len(images) != len(entries):
            raise StateMismatch(f"saved {len(images)} image ids for {len(entries)} entries")
        # an image's own key shows itself: one string object for both lists, as when applied
        method._entry_of_key = entries
        method._id_of_key = [e if i == e else i for i, e in zip(images, entries, strict=True)]
        for name in cls._SNAPSHOT_KEY_DICTS:
            keys = item(sub(state, name), "keys").tolist()
            if keys and not 0 <= min(keys) <= max(keys) < len(entries):
                raise StateMismatch(f"saved {name} has keys outside 0..{len(entries) - 1}")
            ids = [entries[k] for k in keys]
            if None in ids:
                raise StateMismatch(f"saved {name} holds a key whose entry was removed")
            setattr(method, name, dict(zip(ids, keys, strict=True)))
        if any(method._id_of_key[k] != i for i, k in method._images.items()):
            raise StateMismatch("saved images and image ids disagree")
        restore_plain(method, state, handled)
        return method
