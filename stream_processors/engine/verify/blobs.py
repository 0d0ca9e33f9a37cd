"""The disagreement of an aligned pair as overlay blobs (``OverlayBlob``): its largest merged
blob, or the few largest together, each with the figures that tell a pasted caption or sticker
from a change of the artwork (the share outside it, oblique edges, repeats of the picture's own
motifs, point-symmetric repeats of a card's index). The overlay rules (``rules.overlay``,
``rules.overlays``) judge them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream_processors.engine.verify.agreement import correlation, detail_correlation, masked_ncc
from stream_processors.engine.verify.alignment import warp
from stream_processors.engine.verify.evidence import OverlayBlob
from stream_processors.engine.verify.geometry import invert, map_points

# disagreement closer than this (thumbnail pixels) belongs to one blob: the words of a caption,
# a badge. Dev: 9 -> 720 TP, 12 -> 724, 15 -> 725, 21 joins a card's corner indices (+2 FP)
_BLOB_MERGE = 12
_BLOB_MARGIN = 2  # pixels around a blob's box where its edges are measured
_MIN_MOTIF_SIDE = 4  # pixels: a smaller box has no motif to look for
_FLAT_MOTIF_STD = 0.05  # grey std (0..1) under which a box is plain background, not a motif
_MIN_MOTIF_PIXELS = 16
# A single blob leaving less than this share of the disagreement outside it needs no others.
_MULTI_MIN_OUTSIDE_SHARE = 0.05
# Blobs are added, largest first, until this share or less of the disagreement is outside.
_MULTI_TARGET_OUTSIDE_SHARE = 0.05
# Several separate overlays: a meme's caption bands, a few stickers; more parts are a different
# picture disagreeing all over.
MAX_OVERLAY_PARTS = 6
# A blob's point reflection must fall this much on another blob to be its half-turn repeat.
_HALF_TURN_MIN_OVERLAP = 0.3

_BLOB_KERNEL = np.ones((_BLOB_MERGE, _BLOB_MERGE), np.uint8)
_MOTIF_KERNEL = np.ones((5, 5), np.uint8)  # a stroke's disagreement plus its edges


def overlay_blobs(
    faint: np.ndarray,
    strong: np.ndarray,
    valid: np.ndarray,
    query_thumb: np.ndarray,
    stored_thumb: np.ndarray,
    affine: np.ndarray,
    aligned_grey: tuple[np.ndarray, np.ndarray],
    fitted_grey: np.ndarray,
) -> tuple[OverlayBlob | None, OverlayBlob | None]:
    """The faint-disagreement map (uint8, query frame; ``strong`` is the strong map) as overlays:
    its largest merged blob alone, and the few largest blobs together when one does not hold
    enough of it (a meme's two caption bands, several stickers), else None. ``valid`` is the
    overlap (uint8), ``aligned_grey`` the smoothed query and corrected stored grey images the
    detail correlation compares, ``fitted_grey`` the stored grey image before the smooth
    correction (the layout correlation's)."""
    merged = cv2.dilate(faint, _BLOB_KERNEL)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
    if n < 2:
        return None, None
    by_area = [1 + int(i) for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")]
    blobs = _Blobs(
        faint,
        strong,
        valid,
        labels,
        stats,
        query_thumb,
        stored_thumb,
        affine,
        aligned_grey,
        fitted_grey,
    )
    single = blobs.describe(by_area[:1])
    if len(by_area) < 2 or single.outside_share <= _MULTI_MIN_OUTSIDE_SHARE:
        return single, None
    total = cv2.countNonZero(faint)
    taken: list[int] = []
    kept = 0
    for label in by_area[:MAX_OVERLAY_PARTS]:
        taken.append(label)
        kept += cv2.countNonZero(faint & (labels == label).view(np.uint8))
        if len(taken) >= 2 and 1.0 - kept / total <= _MULTI_TARGET_OUTSIDE_SHARE:
            break
    return single, blobs.describe(taken)


@dataclass(frozen=True)
class _Blobs:
    """What ``overlay_blobs`` measures a set of blobs on."""

    faint: np.ndarray
    strong: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    stats: np.ndarray
    query_thumb: np.ndarray
    stored_thumb: np.ndarray
    affine: np.ndarray
    aligned_grey: tuple[np.ndarray, np.ndarray]
    fitted_grey: np.ndarray

    def describe(self, parts: list[int]) -> OverlayBlob:
        faint, strong, valid, labels = self.faint, self.strong, self.valid, self.labels
        chosen_mask = np.isin(labels, parts)
        chosen: np.ndarray = chosen_mask.view(np.uint8)
        away: np.ndarray = (~chosen_mask).view(np.uint8)
        outside = cv2.countNonZero(faint & away)
        n_valid = cv2.countNonZero(valid)
        strong_away = strong & away
        outside_strong = cv2.countNonZero(strong_away) / n_valid
        symmetric_to = (chosen | cv2.dilate(strong_away, _MOTIF_KERNEL)) > 0
        mirrored = _point_reflected_share(strong_away, symmetric_to, valid)
        ag = self.aligned_grey
        detail = detail_correlation(ag[0], ag[1], valid & cv2.erode(away, _BLOB_KERNEL))
        total = cv2.countNonZero(faint)
        boxes = [self._boxes(label) for label in parts]
        area = sum(
            int(self.stats[label, cv2.CC_STAT_WIDTH] * self.stats[label, cv2.CC_STAT_HEIGHT])
            for label in parts
        )
        oblique = min(
            max(_oblique_share(self.query_thumb, qbox), _oblique_share(self.stored_thumb, sbox))
            for qbox, sbox in boxes
        )
        self_mirrored = self._half_turn_repeat(boxes, chosen) if len(parts) > 1 else 0.0

        def motifs() -> list[float]:
            # each blob's own motif (the least-repeating side's), the worst blob deciding; and
            # the most a blob repeats on either side
            per_blob = [
                self._motifs(label, qbox, sbox)
                for label, (qbox, sbox) in zip(parts, boxes, strict=True)
            ]
            least = [min(m) for m in per_blob if m]
            most = [max(m) for m in per_blob if m]
            return [max(least), max(most)] if least else []

        tight = sum(self._tight_area(label) for label in parts)
        return OverlayBlob(
            area / n_valid,
            outside / total,
            oblique,
            masked_ncc(ag[0], self.fitted_grey, valid & away),
            detail,
            outside / n_valid,
            outside_strong,
            mirrored,
            motifs,
            parts=len(parts),
            self_mirrored=self_mirrored,
            query_share=tight / self.faint.size,
        )

    def _tight_area(self, label: int) -> int:
        """The area of the box around the blob's strong disagreement (its faint one when it has
        none): the merged blob's box is grown by the merging (``_BLOB_MERGE``) and takes in the
        faint residue around a caption, which would count a margin of the picture as pasted-on
        matter (a caption box of 0.06 of a photo: 0.14 merged, 0.11 faint, 0.06 strong)."""
        own = (self.labels == label).view(np.uint8)
        strong = self.strong & own
        _, _, w, h = cv2.boundingRect(strong if cv2.countNonZero(strong) else self.faint & own)
        return int(w * h)

    def _half_turn_repeat(
        self,
        boxes: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]],
        chosen: np.ndarray,
    ) -> float:
        """How well a blob's content repeats, turned half round, at its point reflection through
        the overlap's centre where another blob lies, in both pictures (the lower of the two,
        the best blob): a card's index in two corners, changed in both; two captions or
        stickers do not repeat each other, and the original under them does not either."""
        x0, y0, w, h = cv2.boundingRect(self.valid)
        best = 0.0
        for (bx0, by0, bx1, by1), _ in boxes:
            rx0, ry0 = 2 * x0 + w - bx1, 2 * y0 + h - by1
            rx1, ry1 = rx0 + (bx1 - bx0), ry0 + (by1 - by0)
            if rx0 < 0 or ry0 < 0 or rx1 > chosen.shape[1] or ry1 > chosen.shape[0]:
                continue
            too_small = bx1 - bx0 < _MIN_MOTIF_SIDE or by1 - by0 < _MIN_MOTIF_SIDE
            if too_small or (rx0, ry0) == (bx0, by0):
                continue  # a blob around the centre reflects onto itself
            if chosen[ry0:ry1, rx0:rx1].mean() < _HALF_TURN_MIN_OVERLAP:
                continue
            repeats = [
                correlation(
                    np.rot90(grey[by0:by1, bx0:bx1], 2).reshape(-1).astype(np.float64),
                    grey[ry0:ry1, rx0:rx1].reshape(-1).astype(np.float64),
                )
                for grey in self.aligned_grey
            ]
            best = max(best, min(repeats))
        return best

    def _boxes(self, label: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        """The blob's box in the query thumbnail and the same box in the stored thumbnail's
        own frame (a warp would tilt its grid-aligned edges)."""
        x, y, w, h = (int(v) for v in self.stats[label, :4])
        qh, qw = self.query_thumb.shape[:2]
        qbox = (
            max(0, x - _BLOB_MARGIN),
            max(0, y - _BLOB_MARGIN),
            min(qw, x + w + _BLOB_MARGIN),
            min(qh, y + h + _BLOB_MARGIN),
        )
        corners = np.array(
            [[qbox[0], qbox[1]], [qbox[2], qbox[1]], [qbox[0], qbox[3]], [qbox[2], qbox[3]]],
            np.float64,
        )
        mapped = map_points(invert(self.affine), corners)
        sh, sw = self.stored_thumb.shape[:2]
        sbox = (
            max(0, int(mapped[:, 0].min())),
            max(0, int(mapped[:, 1].min())),
            min(sw, int(mapped[:, 0].max()) + 1),
            min(sh, int(mapped[:, 1].max()) + 1),
        )
        return qbox, sbox

    def _motifs(
        self, label: int, qbox: tuple[int, int, int, int], sbox: tuple[int, int, int, int]
    ) -> list[float]:
        # the motif is what disagrees, not the whole box: a caption's box also holds a bit of
        # the picture's edges, which repeat along themselves
        blob = cv2.dilate(self.faint & (self.labels == label).view(np.uint8), _MOTIF_KERNEL)
        sh, sw = self.stored_thumb.shape[:2]
        sblob = warp(blob, invert(self.affine), (sw, sh), cv2.INTER_NEAREST, 0)
        return [
            r
            for r in (
                _self_match(self.query_thumb, qbox, blob[qbox[1] : qbox[3], qbox[0] : qbox[2]]),
                _self_match(self.stored_thumb, sbox, sblob[sbox[1] : sbox[3], sbox[0] : sbox[2]]),
            )
            if r is not None
        ]


def _point_reflected_share(points: np.ndarray, region: np.ndarray, valid: np.ndarray) -> float:
    """Share of the ``points`` map (uint8) whose reflection through the overlap's centre falls
    in ``region`` (bool): a playing card repeats its index, turned half round, in the opposite
    corner, so a changed index disagrees there too; a pasted overlay does not repeat."""
    ys, xs = np.nonzero(points)
    if len(xs) == 0:
        return 0.0
    x0, y0, w, h = cv2.boundingRect(valid)
    xr, yr = 2 * x0 + w - 1 - xs, 2 * y0 + h - 1 - ys
    rh, rw = region.shape[:2]
    inside = (xr >= 0) & (xr < rw) & (yr >= 0) & (yr < rh)
    return float(np.count_nonzero(region[yr[inside], xr[inside]])) / len(xs)


def _self_match(img: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray) -> float | None:
    """Best normalised correlation of the box's masked content elsewhere in the same image
    (away from the box itself); None when that content is flat or too small to say."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < _MIN_MOTIF_SIDE or h < _MIN_MOTIF_SIDE or cv2.countNonZero(mask) < _MIN_MOTIF_PIXELS:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    patch = np.ascontiguousarray(grey[y0:y1, x0:x1])
    if float(patch[mask > 0].std()) < _FLAT_MOTIF_STD:
        return None
    scores = cv2.matchTemplate(grey, patch, cv2.TM_CCOEFF_NORMED, mask=mask)
    np.nan_to_num(scores, copy=False, posinf=-1.0, neginf=-1.0)
    ys, xs = np.ogrid[0 : scores.shape[0], 0 : scores.shape[1]]
    scores[(np.abs(xs - x0) < w // 2) & (np.abs(ys - y0) < h // 2)] = -1.0
    return float(scores.max())


def _oblique_share(img: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the gradient energy in ``box`` that is not along the pixel grid's axes.

    Pixel art (and its nearest or area resampling) has edges along rows and columns only;
    anti-aliased glyphs and round badges do not. 0 for a flat or degenerate box.
    """
    x0, y0, x1, y1 = box
    if x1 - x0 < 3 or y1 - y0 < 3:
        return 0.0
    crop = np.ascontiguousarray(img[y0:y1, x0:x1])
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    gx2, gy2 = gx * gx, gy * gy
    total = float((gx2 + gy2).sum())
    return float(np.minimum(gx2, gy2).sum()) / total if total > 1e-6 else 0.0
