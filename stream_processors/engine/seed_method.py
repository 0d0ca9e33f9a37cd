"""The seed paper's method ("PicNix: Nixing Image Duplicates", 2023), reproduced as a DedupMethod.

It exists so every comparison with the seed runs on the same data, metric and decision code as
ours (``picnix eval --method seed``). Its published rule:

* Vector: grayscale, resized to 256x256 with cubic interpolation, histogram-equalised; the first
  three Hu moment invariants phi1..phi3 (``cv2.HuMoments(cv2.moments(...))``).
* Clustering: Euclidean distance over those three numbers. An upload farther than 6e-5 from every
  cluster center founds a new cluster. Otherwise the two nearest clusters are scanned for a member
  of the same shape with identical pixels; one found, the upload references it; none, the upload
  joins the nearest cluster and its center becomes the running mean of its members.

Deliberate deviations, each to measure the rule rather than its accidents:

* Pixel identity uses an ABSOLUTE difference (``cv2.absdiff(a, b)`` zero everywhere). The seed
  used a saturating subtraction (``a - b`` clipped at 0), which is zero whenever the upload is
  darker than the stored image everywhere, so darker copies passed as "identical" (a bug).
* The seed re-read every member from disk and compared full images. Here the signature carries
  the original shape and the 256x256 grayscale thumbnail *before* equalisation, and identity is
  judged on those: the index stays in memory (the seed's disk scan is reproduced, for timing
  only, by ``scripts/bench_seed_tables.py``). The thumbnail is taken before equalisation because
  equalisation maps any monotone brightness change to the same picture, which would bring the
  darker-copy bug back through another door. Cubic down-sampling can hide a change confined to a
  few pixels, so this test is slightly looser than a full-resolution one; and it is computed
  from the decoded pixels, which ``decode`` may have reduced (1/2..1/8) for very large images.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, DecisionKind, Settled

if TYPE_CHECKING:
    from stream_processors.engine.method import ImageLike

SEED_SIDE = 256
SEED_THRESHOLD = 6e-5
SEED_CLUSTERS_SCANNED = 2

_MAGIC = b"PXSD"
_VERSION = 1
# magic, version, original height, original width, thumbnail side, phi1..phi3
_HEADER = struct.Struct("<4sBIIH3d")


@dataclass(frozen=True, eq=False)
class SeedSignature:
    """The seed's vector plus what its pixel-identity check needs."""

    hu: np.ndarray  # (3,) float64: phi1, phi2, phi3 of the equalised thumbnail
    thumb: np.ndarray  # (SEED_SIDE, SEED_SIDE) uint8 grayscale, before equalisation
    shape: tuple[int, int]  # original (height, width)


def seed_thumbnail(bgr: np.ndarray) -> np.ndarray:
    """Grayscale, 256x256 cubic: the seed's pre-processing before equalisation."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    return cv2.resize(gray, (SEED_SIDE, SEED_SIDE), interpolation=cv2.INTER_CUBIC)


def seed_hu(thumb: np.ndarray) -> np.ndarray:
    """phi1..phi3 of the histogram-equalised thumbnail (the seed's vector)."""
    equalised = cv2.equalizeHist(thumb)
    return cv2.HuMoments(cv2.moments(equalised)).reshape(-1)[:3].astype(np.float64)


def seed_signature(bgr: np.ndarray, height: int, width: int) -> SeedSignature:
    thumb = seed_thumbnail(bgr)
    return SeedSignature(hu=seed_hu(thumb), thumb=thumb, shape=(int(height), int(width)))


def pixels_identical(a: SeedSignature, b: SeedSignature) -> bool:
    """Same original shape and an absolute difference of zero everywhere (see module docstring:
    the seed's saturating subtraction let darker copies pass)."""
    if a.shape != b.shape or a.thumb.shape != b.thumb.shape:
        return False
    return cv2.countNonZero(cv2.absdiff(a.thumb, b.thumb)) == 0


@dataclass
class _Cluster:
    cluster_id: str
    center: np.ndarray
    members: list[str] = field(default_factory=list)


class SeedMethod:
    """The seed's dynamic clustering with pixel-identity duplicates (module docstring)."""

    name = "seed"

    def __init__(
        self, threshold: float = SEED_THRESHOLD, clusters_scanned: int = SEED_CLUSTERS_SCANNED
    ) -> None:
        self.threshold = threshold
        self.clusters_scanned = clusters_scanned
        self._clusters: list[_Cluster] = []
        self._centers = np.zeros((0, 3), dtype=np.float64)  # row i = self._clusters[i].center
        self._images: dict[str, tuple[SeedSignature, str]] = {}  # image id -> (sig, cluster id)
        self._cluster_pos: dict[str, int] = {}  # cluster id -> row in _clusters/_centers
        self._position = -1

    # ----------------------------------------------------------------- protocol
    def extract(self, image: ImageLike) -> SeedSignature:
        return seed_signature(image.pixels, image.height, image.width)

    def signature_to_bytes(self, sig: SeedSignature) -> bytes:
        side = sig.thumb.shape[0]
        if sig.thumb.shape != (side, side) or sig.thumb.dtype != np.uint8:
            raise ValueError(f"thumbnail must be square uint8, got {sig.thumb.shape}")
        h, w = sig.shape
        header = _HEADER.pack(_MAGIC, _VERSION, h, w, side, *(float(x) for x in sig.hu))
        return header + np.ascontiguousarray(sig.thumb).tobytes()

    def signature_from_bytes(self, data: bytes) -> SeedSignature:
        if len(data) < _HEADER.size:
            raise ValueError("seed signature too short")
        magic, version, h, w, side, p1, p2, p3 = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError(f"not a seed signature v{_VERSION}: {magic!r} v{version}")
        body = data[_HEADER.size :]
        if len(body) != side * side:
            raise ValueError(f"seed thumbnail needs {side * side} bytes, got {len(body)}")
        thumb = np.frombuffer(body, dtype=np.uint8).reshape(side, side).copy()
        return SeedSignature(hu=np.array([p1, p2, p3], dtype=np.float64), thumb=thumb, shape=(h, w))

    def state_to_bytes(self, sig: SeedSignature) -> bytes:
        """The seed keeps its whole (small) signature in memory: its state form is the signature."""
        return self.signature_to_bytes(sig)

    def state_from_bytes(self, entry_id: str, data: bytes) -> SeedSignature:
        return self.signature_from_bytes(data)

    def replica_to_bytes(self, sig: SeedSignature) -> bytes:
        return self.signature_to_bytes(sig)

    def replica_from_bytes(self, entry_id: str, data: bytes) -> SeedSignature:
        return self.signature_from_bytes(data)

    def holds(self, entry_id: str) -> bool:
        return entry_id in self._images

    def entry_ids(self) -> list[str]:
        return list(self._images)

    def advance_to(self, position: int) -> None:
        self._advance(position)

    def evaluate(
        self, upload_id: str, sig: SeedSignature, checks: CheckMemo | None = None
    ) -> Decision:
        """The seed's scan; its pixel-equality checks are too cheap to remember (``checks``)."""
        if not self._clusters:
            return self._new(upload_id)
        dists = np.linalg.norm(self._centers - sig.hu, axis=1)
        nearest = np.argsort(dists, kind="stable")[: self.clusters_scanned]
        best = int(nearest[0])
        if dists[best] > self.threshold:
            return self._new(upload_id, float(dists[best]))
        for ci in nearest:  # nearest cluster first; members in insertion order, as the seed
            cluster = self._clusters[int(ci)]
            for member_id in cluster.members:
                member_sig, _ = self._images[member_id]
                if pixels_identical(sig, member_sig):
                    return Decision(
                        upload_id=upload_id,
                        kind=DecisionKind.DUPLICATE_REFERENCE,
                        image_id=member_id,
                        cluster_id=cluster.cluster_id,
                        distance=float(np.linalg.norm(member_sig.hu - sig.hu)),
                        method=self.name,
                    )
        return Decision(
            upload_id=upload_id,
            kind=DecisionKind.MERGE_CENTER,
            image_id=upload_id,
            cluster_id=self._clusters[best].cluster_id,
            distance=float(dists[best]),
            method=self.name,
        )

    @property
    def position(self) -> int:
        return self._position

    def settle(
        self,
        upload_id: str,
        sig: SeedSignature,
        matched: Decision,
        position: int,
        checks: CheckMemo | None = None,
    ) -> Settled:
        """The seed's evaluation is a scan of a few centers: it is simply done again now."""
        return Settled(self.evaluate(upload_id, sig), reevaluated=position != self._position)

    def _advance(self, seq: int | None) -> None:
        self._position = self._position + 1 if seq is None else max(self._position, seq)

    def apply(self, decision: Decision, sig: SeedSignature, seq: int | None = None) -> bool:
        if decision.kind is DecisionKind.DUPLICATE_REFERENCE:
            return False  # the paper keeps nothing of a duplicate
        self._advance(seq)
        if decision.image_id in self._images:
            raise ValueError(f"image {decision.image_id} already stored")
        if decision.kind is DecisionKind.NEW_CLUSTER:
            cluster = _Cluster(decision.cluster_id, sig.hu.copy(), [decision.image_id])
            self._cluster_pos[cluster.cluster_id] = len(self._clusters)
            self._clusters.append(cluster)
            self._centers = np.vstack([self._centers, cluster.center[None, :]])
        else:
            i = self._cluster_index(decision.cluster_id)
            cluster = self._clusters[i]
            n = len(cluster.members)
            cluster.center = (cluster.center * n + sig.hu) / (n + 1)  # running mean
            cluster.members.append(decision.image_id)
            self._centers[i] = cluster.center
        self._images[decision.image_id] = (sig, decision.cluster_id)
        return True

    def remove(self, image_id: str, seq: int | None = None) -> None:
        """The image leaves its cluster; the center becomes the mean of the remaining members
        (recomputed, not down-dated, so removals never accumulate rounding); an emptied cluster
        disappears."""
        self._advance(seq)
        _, cluster_id = self._images.pop(image_id)
        i = self._cluster_index(cluster_id)
        cluster = self._clusters[i]
        cluster.members.remove(image_id)
        if not cluster.members:
            del self._clusters[i]
            self._centers = np.delete(self._centers, i, axis=0)
            self._cluster_pos = {c.cluster_id: j for j, c in enumerate(self._clusters)}
            return
        cluster.center = np.mean([self._images[m][0].hu for m in cluster.members], axis=0)
        self._centers[i] = cluster.center

    def remove_alias(self, upload_id: str, seq: int | None = None) -> None:
        """The paper keeps no aliases of duplicates."""

    # ----------------------------------------------------------------- inspection
    def __len__(self) -> int:
        return len(self._images)

    @property
    def n_clusters(self) -> int:
        return len(self._clusters)

    def cluster_of(self, image_id: str) -> str:
        return self._images[image_id][1]

    def members(self, cluster_id: str) -> list[str]:
        return list(self._clusters[self._cluster_index(cluster_id)].members)

    # ----------------------------------------------------------------- internals
    def _new(self, upload_id: str, distance: float | None = None) -> Decision:
        return Decision(
            upload_id=upload_id,
            kind=DecisionKind.NEW_CLUSTER,
            image_id=upload_id,
            cluster_id=upload_id,
            distance=distance,
            method=self.name,
        )

    def _cluster_index(self, cluster_id: str) -> int:
        return self._cluster_pos[cluster_id]
