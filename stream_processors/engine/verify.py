"""Verification of one (query, stored) pair: geometry first, then an aligned pixel comparison.

Why two stages: keypoint geometry (ratio test + RANSAC similarity) proves that the two pictures
share a rigid layout, which crops, pads, rotations and resizes keep; but two CryptoPunks one trait
apart, or two cards of a deck, share most of their layout too. The aligned thumbnail comparison
then asks whether the *content* agrees once the stored image is warped onto the query and its
grey levels are matched to the query's (histogram matching absorbs brightness, contrast, gamma and
most colour filters). A copy agrees almost everywhere. A disagreement is still a copy when it is
one compact blob of pasted-on matter (a caption, a watermark, a badge): oblique, anti-aliased
edges that do not repeat the picture's own motifs. It is another artwork when it follows the
pixel grid (a punk's trait), repeats the picture's motifs (a card's extra pip), lies in several
places (a little residue elsewhere is allowed, unless it mirrors through the centre like a
card's two index corners), covers much of the picture, or when the colours differ more than a
hue/saturation filter can make them (a black crown painted red, red pips over a black card's
ink, a green wallpaper made orange; a black-and-white copy keeps each colour's luma and is
still a copy). A geometry from few keypoints (flat art) is refined by ECC before the comparison
is given up. The thresholds live in
``PixelThresholds`` and were calibrated on the calibration split; the hard negatives that set
each one are named beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import cv2
import numpy as np

from stream_processors.engine.decision import Region
from stream_processors.engine.local_features import Keypoints, LocalFeatures

RATIO_TEST = 0.8
# Screening: a candidate may first be matched with its query's PRESCREEN_KEYPOINTS strongest
# keypoints only (a quarter of the descriptor distances) and refused when fewer than
# PRESCREEN_MIN_MATCHES of them pass the ratio test; otherwise the other keypoints are matched
# and the geometry is estimated from all of them, exactly as unscreened. Measured on every
# keypoint check of the dev calibration split and of stress set 0 (K = 32/64/128 strongest,
# floors 2-11): a true copy can show fewer than 5 such matches when it is the best-ranked
# candidate, never from the third candidate on (0 of 98 and 0 of 311 true passes at rank >= 2
# lost at K = 128, floor 5), while a third of the failing checks there are refused (2,926 of
# 8,785 on stress set 0). Where this is applied is default_method's (PRESCREEN_FROM_RANK).
PRESCREEN_KEYPOINTS = 128
PRESCREEN_MIN_MATCHES = 5
RANSAC_REPROJ_PX = 6.0
RANSAC_MAX_ITERS = 2000
RANSAC_CONFIDENCE = 0.995
MIN_SCALE = 0.25
MAX_SCALE = 4.0
# A homography replaces the similarity when it explains this many times its inliers (a keystoned,
# photographed or stretched copy; stress set recall 0.67 -> 0.73, dev decisions unchanged).
HOMOGRAPHY_INLIER_GAIN = 1.2
# Only tried when the similarity already explains this share of the matches (a keystone keeps
# the middle of the picture similar). Fitted by OpenCV's USAC (SPRT-verified sampling with local
# optimisation): 0.18 ms a call on the dev set's candidates where classic RANSAC took 3.3 ms at
# 300 rounds; dev decisions are the same (stress set 659 -> 663 true positives, measured
# together with the lazy word query of default_method).
HOMOGRAPHY_MIN_SIMILARITY_SHARE = 0.15
HOMOGRAPHY_RANSAC_ITERS = 2000
MAX_PERSPECTIVE = 0.002  # |h31|, |h32| per frame pixel: ~2x the tilt of a 6% keystone at 480 px
_HOMOGRAPHY_MIN_POINTS = 4
# ECC refinement of a geometry whose pixel check failed (refine_alignment)
REFINE_LONG_SIDE = 96
REFINE_MAX_SHIFT = 0.25
REFINE_MIN_NCC = 0.5  # a worse first alignment is another picture, not an imprecise fit
_REFINE_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-4)
_SMOOTH_SIGMA = 1.0
_DIFF_LEVEL = 0.12  # colour residual (0..1) above which an aligned pixel disagrees
_FAINT_DIFF_LEVEL = 0.07
_VALID_ERODE = 5
_BIAS_SIGMA = 6.0
_COLOUR_FIT_KEEP = 0.9
_COLOUR_FIT_SAMPLES = 4000
_DETAIL_SIGMA = 3.0
_NCC_FLOOR = 0.5  # below any acceptance threshold, even away from an overlay
_HIST_LEVELS = 256
_SHIFT_TOLERANCE = 3  # pixels: a 3x3 neighbourhood
_FLAT_WINDOW = 5  # pixels: window of the local contrast that tells content from flat background
_FLAT_STD = 0.02  # local grey std (0..1) under which a thumbnail pixel is flat background
_MIN_CONTENT = 0.05  # content-weighted coverage needs this fraction of pixels to be content
# disagreement closer than this (thumbnail pixels) belongs to one blob: the words of a caption,
# a badge. Dev: 9 -> 720 TP, 12 -> 724, 15 -> 725, 21 joins a card's corner indices (+2 FP)
_BLOB_MERGE = 12
_BLOB_MARGIN = 2  # pixels around a blob's box where its edges are measured
_MIN_MOTIF_SIDE = 4  # pixels: a smaller box has no motif to look for
_FLAT_MOTIF_STD = 0.05  # grey std (0..1) under which a box is plain background, not a motif
_MIN_MOTIF_PIXELS = 16
_STRONG_CHROMA = 0.2  # opponent-space chroma (0..~0.8) of a clearly coloured pixel
_GREY_CHROMA = 0.04  # ... and of a grey one
_HUE_CHROMA = 0.1  # pixels this coloured on both sides have a hue to compare
_MIN_HUE_PIXELS = 50
_COLOUR_SHIFT_SAMPLES = 8000
_GREYSCALE_SHARE = 0.98  # a picture this much grey is a greyscale picture
_INK_CONTRAST = 0.25  # grey-level distance from the background that makes a pixel ink
# A greyscale copy keeps each colour's luma, so it is not refused for its lost colour: a red
# crown turns mid grey (gap ~0), the king of spades' crown is black (~0.4 from the red's luma).
_GREYSCALE_MAX_GAP = 0.08
_GREYSCALE_MIN_FLIP = 0.05
_TONE_FIT_MIN_STD = 0.05  # luma spread (0..1) the greyscale tone fit needs
_LUMA_BGR = np.array([0.114, 0.587, 0.299])  # ITU-R BT.601, as cv2.COLOR_BGR2GRAY

_ERODE_KERNEL = np.ones((_VALID_ERODE, _VALID_ERODE), np.uint8)
_SHIFT_KERNEL = np.ones((_SHIFT_TOLERANCE, _SHIFT_TOLERANCE), np.uint8)
_OPEN_KERNEL = np.ones((3, 3), np.uint8)
_DETAIL_ERODE_KERNEL = np.ones((7, 7), np.uint8)
_BLOB_KERNEL = np.ones((_BLOB_MERGE, _BLOB_MERGE), np.uint8)
_MOTIF_KERNEL = np.ones((5, 5), np.uint8)  # a stroke's disagreement plus its edges
_CHANNEL_OFFSETS = np.arange(3, dtype=np.uint16) * _HIST_LEVELS


@dataclass(frozen=True)
class GeometryThresholds:
    min_matches: int = 8
    min_inliers: int = 10
    min_inlier_ratio: float = 0.25


@dataclass(frozen=True)
class PixelThresholds:
    """Aligned-thumbnail acceptance: enough overlap, high correlation, little disagreement."""

    min_cover_small: float = 0.7
    # Of the larger image's content (flat background counts as covered), the smaller must cover
    # a quarter: a screenshot of a post or a wide patterned frame shows the artwork at 50-60% of
    # its side with the app's bar and caption around it (0.25-0.35 here; stress set 703 -> 708
    # true positives, screenshots and 23-30% pads, dev unchanged, no false positive on the 358
    # hard negatives of either set), while a picture pasted into another picture covers ~0.1.
    min_cover_large: float = 0.25
    min_ncc: float = 0.80
    # one pixel of a 24x24 artwork is 1/400 of the image: a changed detail that small must fail
    max_bad: float = 0.0005
    max_bad_center: float = 1.0
    # a low-contrast changed detail (a cheek tint, a trait in a similar colour) counts too
    max_bad_faint: float = 0.01
    # below every calibration positive (min 0.59); a smooth blob vs a detailed picture is ~0.4
    min_detail_ncc: float = 0.5
    # Overlay exemption: a caption, watermark or badge pasted on a copy disagrees in one compact
    # blob with oblique (anti-aliased, curved) edges; a changed trait of a pixel-art punk or
    # sprite disagrees along the pixel grid (oblique share <= 0.04 on the dev negatives), two
    # cards of a deck in several places (0.41 of it outside the largest blob on the dev cards),
    # two sprite frames over a large area. The blob's box may cover this fraction of the
    # overlap, and at most this share of the faint disagreement may lie outside it (re-encoding
    # noise elsewhere; 0.04-0.16 on overlaid copies) unless the pair is clean outside it (see
    # OverlayBlob.clean_outside; first at the clean limit 0.0005: stress 675 -> 685 TP, dev
    # 745 -> 747).
    max_overlay_box: float = 0.16
    # Several separate overlays (OverlayBlob.parts > 1) may cover this much together: a meme's
    # two caption bands of ~0.1 each, four stickers of ~0.02.
    max_overlays_box: float = 0.3
    # ... unless one repeats, turned half round, where another lies, in both pictures: a
    # card's changed index in two corners (correlation 0.9+), not two captions
    max_half_turn_repeat: float = 0.6
    # Several overlays hide more of the picture, so the rest must agree more: the layout away
    # from them correlates this much (copies with two caption bands or four stickers: 95% at
    # or above 0.965; a moon photo and a dark wallpaper under the same two captions 0.936).
    min_overlays_rest_ncc: float = 0.95
    max_outside_share: float = 0.2
    # Clean outside the blob (OverlayBlob.clean_outside): strong disagreement there up to 0.002
    # of the overlap (4x the clean limit; a filtered copy's scattered residue 0.0008-0.0018 on
    # dev). Dev 748 -> 751 true positives, stress 686 -> 691; at 0.001 749 / 691.
    max_outside_strong: float = 0.002
    # More strong disagreement outside the blob than a clean copy has, most of it point-symmetric
    # (through the centre, onto the blob or onto itself) is a card's changed index, which the
    # card repeats turned half round: J of hearts vs J of diamonds (all of the 0.0020 outside),
    # 5 vs 6 of spades (its two index corners). A pasted overlay does not repeat.
    max_outside_mirrored: float = 0.5
    min_overlay_oblique: float = 0.06
    # A card's extra pip, a sprite's repeated part: a blob that repeats its own picture's motifs
    # (normalised correlation elsewhere in the same image, on every side with content there; a
    # pip 0.98-1.0 on the dev cards, overlays 0.2-0.8) is the artwork's content, not an overlay.
    max_overlay_motif: float = 0.9
    # Colour edits rotate hue and scale saturation; they do not paint a black crown red (K of
    # spades vs K of diamonds: 0.13 of the pixels) or turn green into orange (two recoloured
    # wallpapers: 58 degrees). Overlaid and filtered copies on dev: <= 0.05 and <= 32 degrees.
    max_chroma_flip: float = 0.1
    max_hue_shift_deg: float = 45.0
    # ... nor colour a greyscale picture's ink: the red pips of A of diamonds cover 0.78 of the
    # ink of A of spades (a screenshot of it, in the stress set), though 0.05 of all pixels flip.
    max_ink_flip: float = 0.15


class PixelRule(StrEnum):
    """The aligned-pixel rules, named as a decision's evidence records the one that accepted
    a pair, and as a refusal names the first that refused it."""

    # accepted
    CLEAN_COPY = "clean-copy"  # the whole overlap agrees (after tone and colour fitting)
    OVERLAY = "overlay"  # one compact pasted blob (caption, badge) on an agreeing layout
    OVERLAYS = "overlays"  # a few separate such blobs (a meme's caption bands, stickers)
    ALIEN_OVERLAY = "overlay-alien-to-both"  # the layout agrees only away from such a blob
    # refused
    LITTLE_OVERLAP = "little-overlap"  # the alignment covers too little of the smaller picture
    SMALL_PART = "small-part-of-larger"  # the smaller is a small piece of the larger
    COLOURS_CHANGED = "colours-changed"  # colours flipped, not filtered (ColourShift)
    LAYOUT_DIFFERS = "layout-differs"  # the grey layouts do not correlate
    DETAIL_DIFFERS = "detail-differs"  # the fine detail does not correlate
    CHANGED_DETAIL = "changed-detail"  # pixels disagree strongly (a trait, a pip)
    FAINT_CHANGE = "faint-change"  # too many pixels disagree faintly


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    rule: PixelRule


@dataclass(frozen=True)
class Geometry:
    """A similarity (2x3) or, for a keystoned or stretched copy, a homography (3x3) from stored
    frame to query frame, with its RANSAC support."""

    affine: np.ndarray  # 2x3 or 3x3 float64, stored frame -> query frame
    matches: int
    inliers: int

    @property
    def scale(self) -> float:
        return float(np.hypot(self.affine[0, 0], self.affine[1, 0]))


@dataclass(frozen=True)
class PixelCheck:
    """Aligned-thumbnail evidence. cover_* are overlap fractions of the smaller/larger image."""

    cover_small: float
    cover_large: float
    ncc: float
    bad: float
    bad_center: float
    bad_faint: float = 0.0
    detail_ncc: float = 0.0  # correlation of the fine detail (high-pass), not just the layout
    overlay: OverlayBlob | None = None  # the disagreement as one blob, when it is one
    colour: ColourShift | None = None
    ncc_unshaded: float = 0.0  # ncc after the smooth residual (vignette, uneven tint) is removed
    # the disagreement as a few separate blobs, when the largest alone leaves much outside it
    overlays: OverlayBlob | None = None

    def passes(self, t: PixelThresholds) -> bool:
        return self.verdict(t).accepted

    def verdict(self, t: PixelThresholds) -> Verdict:
        """Which rule accepted the pair, or the first that refused it (rules in PixelRule)."""
        if self.cover_small < t.min_cover_small:
            return Verdict(False, PixelRule.LITTLE_OVERLAP)
        if self.cover_large < t.min_cover_large:
            return Verdict(False, PixelRule.SMALL_PART)
        if self.colour is not None and not self.colour.passes(t):
            return Verdict(False, PixelRule.COLOURS_CHANGED)
        # a vignette or uneven tint lowers the layout correlation of a clean copy; the smooth
        # residual it leaves is no change of the picture
        unclean = self._unclean(t)
        if unclean is None:
            return Verdict(True, PixelRule.CLEAN_COPY)
        single = self._overlay_verdict(self.overlay, t, PixelRule.OVERLAY)
        if single is not None:
            return single
        several = self._overlay_verdict(self.overlays, t, PixelRule.OVERLAYS)
        return several if several is not None else Verdict(False, unclean)

    def _overlay_verdict(
        self, overlay: OverlayBlob | None, t: PixelThresholds, rule: PixelRule
    ) -> Verdict | None:
        """Accepted as a copy with pasted overlays, refused as another picture, or None when
        the disagreement is no such overlay (the clean rule's refusal stands)."""
        if overlay is None or not overlay.passes(t):
            return None
        if overlay.parts > 1 and overlay.ncc < t.min_overlays_rest_ncc:
            return None
        if self.ncc >= t.min_ncc:
            return Verdict(True, rule)
        # the layout agrees only away from the blob (a black caption on white line art owns
        # the grey variance of the whole picture): then the blob must be alien to both pictures
        # (5 of diamonds vs 6: the 6's middle row repeats its top row)
        if overlay.ncc >= t.min_ncc and overlay.motif_both <= t.max_overlay_motif:
            return Verdict(True, PixelRule.ALIEN_OVERLAY)
        return Verdict(False, PixelRule.LAYOUT_DIFFERS)

    def _unclean(self, t: PixelThresholds) -> PixelRule | None:
        """The first rule of a clean copy the pair breaks, or None when it is one."""
        if max(self.ncc, self.ncc_unshaded) < t.min_ncc:
            return PixelRule.LAYOUT_DIFFERS
        if self.detail_ncc < t.min_detail_ncc:
            return PixelRule.DETAIL_DIFFERS
        if self.bad > t.max_bad or self.bad_center > t.max_bad_center:
            return PixelRule.CHANGED_DETAIL
        if self.bad_faint > t.max_bad_faint:
            return PixelRule.FAINT_CHANGE
        return None


@dataclass(frozen=True)
class ColourShift:
    """How the colours of the aligned pair differ before any fitting: the fraction of pixels
    strongly coloured on one side and grey on the other, the mean hue rotation (degrees) over
    the pixels coloured on both sides, and, when one side is a greyscale picture, how far its
    grey levels are from the luma of the other side's colours (see _greyscale_gap)."""

    chroma_flip: float
    hue_shift_deg: float
    greyscale_gap: float | None = None
    ink_flip: float = 0.0

    @property
    def greyscale_copy(self) -> bool:
        """One side is the other in black and white: much colour is lost (not just a small
        coloured overlay on a grey picture) and the grey levels are the colours' luma."""
        return (
            self.chroma_flip >= _GREYSCALE_MIN_FLIP
            and self.greyscale_gap is not None
            and self.greyscale_gap <= _GREYSCALE_MAX_GAP
        )

    def passes(self, t: PixelThresholds) -> bool:
        if self.greyscale_copy:
            return self.hue_shift_deg <= t.max_hue_shift_deg
        return (
            self.chroma_flip <= t.max_chroma_flip
            and self.ink_flip <= t.max_ink_flip
            and self.hue_shift_deg <= t.max_hue_shift_deg
        )


@dataclass(frozen=True)
class OverlayBlob:
    """The largest blob of disagreement: its box (fraction of the overlap), the share of the
    faint disagreement outside it, the share of gradient energy on oblique edges inside it
    (the larger of the two images', each in its own frame), how well it repeats elsewhere in
    its picture, and the fine-detail correlation of the pair outside it (an overlay's own
    strokes are no evidence against the copy). The motif costs two masked template searches
    (~3 ms), so it is measured only when asked for, which ``passes`` does last."""

    box: float
    outside_share: float
    oblique: float
    ncc: float  # the layout correlation away from the blob
    detail_ncc: float
    outside_faint: float  # faint disagreement outside the blob, share of the overlap
    outside_strong: float  # ... and strong disagreement
    outside_mirrored: float  # share of that strong disagreement that is point-symmetric
    measure_motifs: Callable[[], list[float]] = field(repr=False, compare=False)
    parts: int = 1  # separate blobs taken together (a meme's caption bands, stickers)
    # how well one blob repeats, turned half round, at another's place in both pictures
    self_mirrored: float = 0.0

    @cached_property
    def _motifs(self) -> list[float]:
        return self.measure_motifs()

    @property
    def motif(self) -> float:
        """How well the blob repeats in the picture that repeats it least (an overlay's own
        side does not repeat, whatever lies under it on the other side)."""
        return min(self._motifs, default=0.0)

    @property
    def motif_both(self) -> float:
        """How well the blob repeats in the picture that repeats it most."""
        return max(self._motifs, default=0.0)

    def clean_outside(self, t: PixelThresholds) -> bool:
        """Apart from the blob the pair is as clean as a clean copy must be: a small overlay
        on a filtered or re-encoded copy leaves faint residue elsewhere that outweighs it."""
        return self.outside_strong <= t.max_outside_strong and self.outside_faint <= t.max_bad_faint

    def point_symmetric(self, t: PixelThresholds) -> bool:
        """The disagreement outside the blob is more than residue and mirrors through the
        centre: a card's index, not an overlay."""
        return self.outside_strong > t.max_bad and self.outside_mirrored > t.max_outside_mirrored

    def passes(self, t: PixelThresholds) -> bool:
        return (
            self.detail_ncc >= t.min_detail_ncc
            and self.box <= (t.max_overlay_box if self.parts == 1 else t.max_overlays_box)
            and self.self_mirrored <= t.max_half_turn_repeat
            and (self.outside_share <= t.max_outside_share or self.clean_outside(t))
            and not self.point_symmetric(t)
            and self.oblique >= t.min_overlay_oblique
            and self.motif <= t.max_overlay_motif
        )


def _two_nearest(query: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two nearest stored descriptors of each query descriptor as arrays (batchDistance):
    the same matches as BFMatcher.knnMatch without one Python object per match (~30% faster)."""
    dist, nearest = cv2.batchDistance(
        query, stored, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2
    )
    return dist, nearest


def estimate_geometry(
    query: Keypoints, stored: Keypoints, t: GeometryThresholds, screen: bool = False
) -> Geometry | None:
    """Ratio-test matches and a RANSAC similarity, or None when the support is too weak;
    ``screen`` refuses first on the strongest query keypoints (see PRESCREEN_KEYPOINTS)."""
    if len(query) < 2 or len(stored) < 2:
        return None
    head = PRESCREEN_KEYPOINTS if screen and len(query) > PRESCREEN_KEYPOINTS else len(query)
    dist, nearest = _two_nearest(query.descriptors[:head], stored.descriptors)
    if head < len(query):
        if int(np.count_nonzero(dist[:, 0] < RATIO_TEST * dist[:, 1])) < PRESCREEN_MIN_MATCHES:
            return None
        rest_dist, rest_nearest = _two_nearest(query.descriptors[head:], stored.descriptors)
        dist, nearest = np.vstack([dist, rest_dist]), np.vstack([nearest, rest_nearest])
    qi = np.flatnonzero(dist[:, 0] < RATIO_TEST * dist[:, 1])
    if len(qi) < t.min_matches:
        return None
    src = stored.points[nearest[qi, 0]]
    dst = query.points[qi]
    affine, mask = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=RANSAC_REPROJ_PX,
        maxIters=RANSAC_MAX_ITERS,
        confidence=RANSAC_CONFIDENCE,
    )
    if affine is None or mask is None:
        return None
    geo = Geometry(affine.astype(np.float64), len(qi), int(mask.sum()))
    # a homography can only win where the similarity explains part of the matches, not all:
    # a small share means unrelated pictures (most candidates), and a similarity that leaves
    # fewer than 1/HOMOGRAPHY_INLIER_GAIN of the matches over cannot be beaten by the margin
    if (
        geo.inliers < HOMOGRAPHY_MIN_SIMILARITY_SHARE * len(qi)
        or HOMOGRAPHY_INLIER_GAIN * geo.inliers > len(qi)
    ):
        return geo if _supported(geo, t) else None
    return _homography_if_better(src, dst, geo if _supported(geo, t) else None, len(qi), t)


def _supported(geo: Geometry, t: GeometryThresholds) -> bool:
    return (
        geo.inliers >= t.min_inliers
        and geo.inliers >= t.min_inlier_ratio * geo.matches
        and MIN_SCALE <= geo.scale <= MAX_SCALE
    )


def _homography_if_better(
    src: np.ndarray,
    dst: np.ndarray,
    similarity: Geometry | None,
    matches: int,
    t: GeometryThresholds,
) -> Geometry | None:
    """A homography when it explains clearly more matches than the similarity (a keystoned,
    photographed or stretched copy); otherwise the similarity. Near-affine only: a strong
    perspective term or a reflection is a degenerate fit, not a copy."""
    if len(src) < _HOMOGRAPHY_MIN_POINTS:
        return similarity
    h, mask = cv2.findHomography(
        src,
        dst,
        cv2.USAC_DEFAULT,
        RANSAC_REPROJ_PX,
        maxIters=HOMOGRAPHY_RANSAC_ITERS,
        confidence=RANSAC_CONFIDENCE,
    )
    if h is None or mask is None or abs(h[2, 2]) < 1e-12:
        return similarity
    h = h / h[2, 2]
    geo = Geometry(h.astype(np.float64), matches, int(mask.sum()))
    if max(abs(h[2, 0]), abs(h[2, 1])) > MAX_PERSPECTIVE or np.linalg.det(h[:2, :2]) <= 0:
        return similarity
    if not _supported(geo, t):
        return similarity
    if similarity is not None and geo.inliers < HOMOGRAPHY_INLIER_GAIN * similarity.inliers:
        return similarity
    return geo


def thumb_affine(geo_affine: np.ndarray, query: LocalFeatures, stored: LocalFeatures) -> np.ndarray:
    """Compose frame-level stored->query affine (2x3) or homography (3x3) with the
    frame->thumbnail scales; the result has the same shape."""
    qsx, qsy = query.thumb_scale()
    ssx, ssy = stored.thumb_scale()
    a = geo_affine if geo_affine.shape == (3, 3) else np.vstack([geo_affine, [0.0, 0.0, 1.0]])
    q = np.diag([qsx, qsy, 1.0])
    s_inv = np.diag([1.0 / ssx, 1.0 / ssy, 1.0])
    out: np.ndarray = q @ a @ s_inv
    return out if geo_affine.shape == (3, 3) else out[:2]


def refine_alignment(
    query_thumb: np.ndarray, stored_thumb: np.ndarray, transform: np.ndarray
) -> np.ndarray | None:
    """The stored->query transform (2x3 affine or 3x3 homography) refined by ECC, maximising
    the correlation of the two grey thumbnails at REFINE_LONG_SIDE; None when ECC does not
    converge or moves the stored frame's corners by more than REFINE_MAX_SHIFT of the query's
    long side (a refinement, not a new alignment).

    Why: keypoints on flat, low-texture art (signs, clip art) are few and sit on a few edges,
    so RANSAC fixes the rotation and scale only roughly, or a homography fitted to them tilts
    the frame, and a copy then disagrees along every edge of the picture. The pixel check still
    judges the refined alignment: ECC maximises correlation, it cannot remove a changed detail.
    """
    qs = REFINE_LONG_SIDE / max(query_thumb.shape[:2])
    ss = REFINE_LONG_SIDE / max(stored_thumb.shape[:2])
    q = _reduced_grey(query_thumb, qs)
    st = _reduced_grey(stored_thumb, ss)
    full = transform if transform.shape == (3, 3) else np.vstack([transform, [0.0, 0.0, 1.0]])
    reduced = np.diag([qs, qs, 1.0]) @ full @ np.diag([1.0 / ss, 1.0 / ss, 1.0])
    inverse = np.linalg.inv(reduced)  # ECC warps the stored image into the query's frame
    affine = _is_affine(transform)
    start = (inverse[:2] if affine else inverse).astype(np.float32)
    motion = cv2.MOTION_AFFINE if affine else cv2.MOTION_HOMOGRAPHY
    try:
        _, found = cv2.findTransformECC(
            q, st, start, motion, _REFINE_CRITERIA, np.ones(q.shape, np.uint8), 3
        )
    except cv2.error:
        return None  # did not converge (flat images, no overlap)
    warp = np.asarray(found, np.float64)
    w3 = np.vstack([warp, [0.0, 0.0, 1.0]]) if affine else warp
    refined = np.diag([1.0 / qs, 1.0 / qs, 1.0]) @ np.linalg.inv(w3) @ np.diag([ss, ss, 1.0])
    refined = refined / refined[2, 2]
    sh, sw = stored_thumb.shape[:2]
    corners = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64)
    shift = np.abs(_map_points(refined, corners) - _map_points(full, corners)).max()
    if not np.isfinite(shift) or shift > REFINE_MAX_SHIFT * max(query_thumb.shape[:2]):
        return None
    out: np.ndarray = refined[:2] if affine else refined
    return out


def _reduced_grey(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0


def _grey(img: np.ndarray) -> np.ndarray:
    """Mean of the three channels; the same sum order and division as ``img.mean(axis=2)``."""
    out: np.ndarray = img[..., 0] + img[..., 1]
    out += img[..., 2]
    out /= 3
    return out


def _level_index(v: np.ndarray) -> np.ndarray:
    """Histogram bin of each value of an N x 3 array in [0, 1]: its level, plus 256 per channel.

    The level is rounded in float64 whatever ``v``'s type (float32 values scale exactly).
    """
    levels = _HIST_LEVELS - 1
    f = np.multiply(v, levels, dtype=np.float64)
    np.rint(f, out=f)
    np.clip(f, 0, levels, out=f)
    out = f.astype(np.uint16)
    out += _CHANNEL_OFFSETS  # integer offsets on the integer levels: exact, and a quarter the bytes
    return out


def _match_histograms(src: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:
    """Map each channel of src so its distribution matches ref's (N x 3 arrays in [0, 1]).

    Works on 256 levels through cumulative histograms, so it costs O(n) instead of a sort. The
    result goes to ``out[:, :3]``.
    """
    levels = _HIST_LEVELS - 1
    n = src.shape[0]
    s_idx = _level_index(src)
    r_idx = _level_index(ref)
    s_counts = np.bincount(s_idx.ravel(), minlength=3 * _HIST_LEVELS)
    r_counts = np.bincount(r_idx.ravel(), minlength=3 * _HIST_LEVELS)
    lut = np.empty(3 * _HIST_LEVELS)
    for c in range(3):
        band = slice(c * _HIST_LEVELS, (c + 1) * _HIST_LEVELS)
        s_pdf = s_counts[band] / max(1, n)
        # mid-rank of each level (a flat region maps to the middle of its share of ref values)
        s_mid = np.cumsum(s_pdf) - s_pdf / 2
        pos = np.clip(s_mid * n, 0, n - 1)
        # the sorted ref levels are only needed at the two ranks around each position: the same
        # linear interpolation as over all n ranks, without materialising them
        ranks = np.floor(pos).astype(np.intp)
        ranks = np.unique(np.concatenate([ranks, np.minimum(ranks + 1, n - 1)]))
        r_cum = np.cumsum(r_counts[band])
        r_at = np.searchsorted(r_cum, ranks, side="right").astype(np.float64)
        lut[band] = np.interp(pos, ranks.astype(np.float64), r_at) / levels
    out[:, :3] = np.take(lut, s_idx)


def _fit_colours(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching, then a robust affine colour map (N x 3 arrays; ``src``
    may be float32, ``ref`` is float64).

    Histogram matching absorbs monotone tone curves (brightness, contrast, gamma); the affine
    3x4 map absorbs hue rotation, saturation and tints, which mix channels. The refit without
    the worst residuals keeps an overlay or a changed detail from bending the global fit.
    """
    x = np.empty((src.shape[0], 4))
    _match_histograms(src, ref, x)
    x[:, 3] = 1.0
    step = max(1, x.shape[0] // _COLOUR_FIT_SAMPLES)  # the fit needs a sample, not every pixel
    xs, rs = x[::step], ref[::step]
    keep = np.ones(xs.shape[0], bool)
    coef = np.zeros((4, 3))
    for _ in range(2):
        # least squares through the 4x4 normal equations: the same fit as lstsq on the samples
        # (lstsq's rank handling kept for a greyscale pair, whose channel columns coincide) at
        # a twentieth of its cost
        xk = xs[keep]
        coef, *_ = np.linalg.lstsq(xk.T @ xk, xk.T @ rs[keep], rcond=None)
        d = np.abs(xs @ coef - rs)
        res = np.maximum(np.maximum(d[:, 0], d[:, 1]), d[:, 2])
        keep = res <= np.quantile(res, _COLOUR_FIT_KEEP)
    fitted: np.ndarray = x @ coef
    return fitted


def _is_affine(transform: np.ndarray) -> bool:
    return transform.shape == (2, 3)


def _warp(
    img: np.ndarray, transform: np.ndarray, size: tuple[int, int], flags: int, border: float
) -> np.ndarray:
    """Warp by a 2x3 affine or a 3x3 homography (stored frame -> query frame)."""
    if _is_affine(transform):
        out: np.ndarray = cv2.warpAffine(img, transform, size, flags=flags, borderValue=border)
    else:
        out = cv2.warpPerspective(img, transform, size, flags=flags, borderValue=border)
    return out


def _invert(transform: np.ndarray) -> np.ndarray:
    if _is_affine(transform):
        inv: np.ndarray = cv2.invertAffineTransform(transform)
        return inv
    return np.asarray(np.linalg.inv(transform), np.float64)


def _map_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine or a 3x3 homography to N x 2 points."""
    if _is_affine(transform):
        mapped: np.ndarray = points @ transform[:, :2].T + transform[:, 2]
        return mapped
    return np.asarray(cv2.perspectiveTransform(points.reshape(-1, 1, 2), transform)).reshape(-1, 2)


def region_shown(
    transform: np.ndarray, query_size: tuple[int, int], stored_size: tuple[int, int]
) -> Region:
    """The part of the stored picture the query shows: the query frame's corners mapped back
    through ``transform`` (stored -> query, as pixel_check takes it), their bounding box clipped
    to the stored frame, as fractions of it. Sizes are (width, height) of the two thumbnails."""
    qw, qh = query_size
    sw, sh = stored_size
    corners = np.array([[0, 0], [qw, 0], [qw, qh], [0, qh]], np.float64)
    back = _map_points(_invert(transform), corners)
    x0, y0 = np.clip(back.min(axis=0) / (sw, sh), 0.0, 1.0)
    x1, y1 = np.clip(back.max(axis=0) / (sw, sh), 0.0, 1.0)
    return Region(float(x0), float(y0), float(max(x0, x1)), float(max(y0, y1)))


def _mapped_area(transform: np.ndarray, w: int, h: int) -> float:
    """Area of a w x h frame after the transform."""
    if _is_affine(transform):
        return w * h * abs(float(np.linalg.det(transform[:, :2])))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    return abs(float(cv2.contourArea(_map_points(transform, corners).astype(np.float32))))


def pixel_check(
    query_thumb: np.ndarray, stored_thumb: np.ndarray, affine: np.ndarray
) -> PixelCheck:
    """Warp the stored colour thumbnail onto the query's and measure agreement on the overlap.

    ``affine`` maps stored thumbnail pixels to query thumbnail pixels: a 2x3 affine, or a 3x3
    homography when a copy was photographed or keystoned.

    ``bad`` and ``bad_center`` count pixels whose colour residual exceeds _DIFF_LEVEL after a
    3x3 opening (so diffuse noise, JPEG ringing and one-pixel misalignment lines vanish while a
    changed detail of a few pixels survives), over the overlap and over its central box.
    """
    qh, qw = query_thumb.shape[:2]
    sh, sw = stored_thumb.shape[:2]
    q = cv2.GaussianBlur(query_thumb.astype(np.float32) / 255.0, (0, 0), _SMOOTH_SIGMA)
    s = cv2.GaussianBlur(stored_thumb.astype(np.float32) / 255.0, (0, 0), _SMOOTH_SIGMA)
    ones = np.ones((sh, sw), np.uint8)
    inside = _warp(ones, affine, (qw, qh), cv2.INTER_NEAREST, 0)
    valid_u8 = cv2.erode(inside, _ERODE_KERNEL)
    n_valid = cv2.countNonZero(valid_u8)
    stored_area_in_q = max(1e-6, _mapped_area(affine, sw, sh))
    cover_q = n_valid / float(qw * qh)
    cover_s = min(1.0, n_valid / stored_area_in_q)
    if n_valid >= 64:
        # the part of either image outside the overlap may be flat background (a border, a pad,
        # a vignetted margin that trimming kept): it carries no content, so it is not uncovered
        in_s = _warp(np.ones((qh, qw), np.uint8), _invert(affine), (sw, sh), cv2.INTER_NEAREST, 0)
        valid_s = cv2.erode(in_s, _ERODE_KERNEL)
        cover_q = max(cover_q, _content_cover(q, valid_u8))
        cover_s = max(cover_s, _content_cover(s, valid_s))
    q_area, s_area = float(qw * qh), stored_area_in_q
    cover_small, cover_large = (cover_q, cover_s) if q_area <= s_area else (cover_s, cover_q)
    if n_valid < 64:
        return PixelCheck(cover_small, cover_large, 0.0, 1.0, 1.0)
    warped = _warp(s, affine, (qw, qh), cv2.INTER_LINEAR, 0.0)
    idx = np.flatnonzero(valid_u8)  # the overlap's pixels, in the order of a boolean mask
    qv, wv = _overlap(q, idx).astype(np.float64), _overlap(warped, idx)
    colour = _colour_shift(qv, wv)
    if colour.greyscale_copy:
        # one side has no colour to match: compare both in grey, whichever side is the copy
        q, warped = _luma_image(q), _luma_image(warped)
        qv, wv = _overlap(q, idx).astype(np.float64), _overlap(warped, idx)
    sv = _fit_colours(wv, qv)
    ncc = correlation(_grey(qv), _grey(sv))
    if ncc < _NCC_FLOOR:  # hopeless: skip the disagreement maps
        return PixelCheck(cover_small, cover_large, ncc, 1.0, 1.0, 1.0, colour=colour)
    valid = valid_u8 > 0
    resid = np.zeros((qh, qw, 3), np.float32)
    resid.reshape(-1, 3)[idx] = qv - sv
    # remove smooth residual (vignette, uneven tint): what is left are local changes
    weight = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), _BIAS_SIGMA)
    bias = cv2.GaussianBlur(resid, (0, 0), _BIAS_SIGMA) / np.maximum(weight, 1e-3)[..., None]
    # compare each query pixel with the range of the corrected stored image within one pixel,
    # so a sub-pixel misalignment along edges is not a disagreement but a changed detail is
    s_img = np.zeros((qh, qw, 3), np.float32)
    s_img.reshape(-1, 3)[idx] = sv
    s_fit_grey = _grey(s_img)
    s_img += bias
    s_hi, s_lo = cv2.dilate(s_img, _SHIFT_KERNEL), cv2.erode(s_img, _SHIFT_KERNEL)
    # per-channel excess of the query over the stored range; only compared with the levels
    d = np.maximum(q - s_hi, s_lo - q)
    local = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])
    # an opening keeps a subset of its input, which is inside the overlap: count it all
    bad_img = cv2.morphologyEx(
        ((local > _DIFF_LEVEL) & valid).view(np.uint8), cv2.MORPH_OPEN, _OPEN_KERNEL
    )
    bad = cv2.countNonZero(bad_img) / n_valid
    x0, y0, bw, bh = cv2.boundingRect(valid_u8)
    y1, x1 = y0 + bh - 1, x0 + bw - 1
    cy0, cy1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4
    cx0, cx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
    n_central = cv2.countNonZero(valid_u8[cy0 : cy1 + 1, cx0 : cx1 + 1])
    bad_center = (
        cv2.countNonZero(bad_img[cy0 : cy1 + 1, cx0 : cx1 + 1]) / n_central if n_central else 1.0
    )
    faint = cv2.morphologyEx(
        ((local > _FAINT_DIFF_LEVEL) & valid).view(np.uint8), cv2.MORPH_OPEN, _OPEN_KERNEL
    )
    bad_faint = cv2.countNonZero(faint) / n_valid
    q_grey, s_grey = _grey(q), _grey(s_img)
    detail_ncc = _detail_ncc(q_grey, s_grey, valid_u8)
    overlay, overlays = (
        _overlay_blobs(
            faint,
            bad_img,
            valid_u8,
            query_thumb,
            stored_thumb,
            affine,
            (q_grey, s_grey),
            s_fit_grey,
        )
        if bad > 0
        else (None, None)
    )
    return PixelCheck(
        cover_small,
        cover_large,
        ncc,
        bad,
        bad_center,
        bad_faint,
        detail_ncc,
        overlay,
        colour,
        _ncc(q_grey, s_grey, valid_u8),
        overlays,
    )


def _overlap(img: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The N x 3 values of a 3-channel image at flat pixel indices ``idx``; ``take`` gathers
    them ~3x faster than fancy indexing, with the same values."""
    return np.take(img.reshape(-1, 3), idx, axis=0)


def _opponent(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Opponent colour axes (red-green, yellow-blue) of N x 3 BGR values in [0, 1]: grey is 0."""
    b, g, r = bgr[:, 0], bgr[:, 1], bgr[:, 2]
    return (r - g) / np.sqrt(2.0), (r + g - 2.0 * b) / np.sqrt(6.0)


def _colour_shift(q: np.ndarray, s: np.ndarray) -> ColourShift:
    """Compare the chroma of aligned query and stored pixels (N x 3 BGR in [0, 1]) on an even
    sample of them: two fractions and a mean angle need thousands of pixels, not all."""
    step = max(1, q.shape[0] // _COLOUR_SHIFT_SAMPLES)
    qs, ss = q[::step], s[::step]
    q1, q2 = _opponent(qs)
    s1, s2 = _opponent(ss)
    cq, cs = np.hypot(q1, q2), np.hypot(s1, s2)
    strong, grey = _STRONG_CHROMA, _GREY_CHROMA
    flipped = ((cq >= strong) & (cs <= grey)) | ((cs >= strong) & (cq <= grey))
    flip = float(np.mean(flipped))
    sides = _greyscale_sides(qs, ss, cq, cs)
    gap = _greyscale_gap(sides, flipped)
    ink = _ink_flip(sides, flipped)
    both = (cq >= _HUE_CHROMA) & (cs >= _HUE_CHROMA)
    if int(both.sum()) < _MIN_HUE_PIXELS:
        return ColourShift(flip, 0.0, gap, ink)
    rotation = np.arctan2(q2[both], q1[both]) - np.arctan2(s2[both], s1[both])
    mean = complex(np.mean(np.exp(1j * rotation)))
    return ColourShift(flip, abs(float(np.degrees(np.angle(mean)))), gap, ink)


def _greyscale_sides(
    q: np.ndarray, s: np.ndarray, cq: np.ndarray, cs: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(grey side, colour side) of the sampled pixels when one side is a greyscale picture
    (``cq``/``cs``: their chroma); None when neither is."""
    if float(np.mean(cq <= _GREY_CHROMA)) >= _GREYSCALE_SHARE:
        return q, s
    if float(np.mean(cs <= _GREY_CHROMA)) >= _GREYSCALE_SHARE:
        return s, q
    return None


def _ink_flip(sides: tuple[np.ndarray, np.ndarray] | None, flipped: np.ndarray) -> float:
    """When one side is a greyscale picture: the share of its ink (pixels away from its
    background level, the median grey) that is strongly coloured on the other side. A pasted
    logo covers ink and background alike, so its share of the ink is its share of the picture;
    a red suit over a black one covers mostly ink."""
    if sides is None:
        return 0.0
    level = sides[0].mean(axis=1)
    ink = np.abs(level - np.median(level)) >= _INK_CONTRAST
    if int(ink.sum()) < _MIN_HUE_PIXELS:
        return 0.0
    return float(np.mean(flipped[ink]))


def _luma_image(img: np.ndarray) -> np.ndarray:
    """A float BGR image as its luma in all three channels."""
    luma = np.tensordot(img, _LUMA_BGR.astype(np.float32), axes=([2], [0]))
    return np.ascontiguousarray(np.repeat(luma[..., None], 3, axis=2), np.float32)


def _greyscale_gap(
    sides: tuple[np.ndarray, np.ndarray] | None, flipped: np.ndarray
) -> float | None:
    """When one side is a greyscale picture: the median distance, over the pixels coloured on
    the other side, between its grey level and the luma of that colour (what a greyscale
    conversion would give) after the brightness and contrast change that maps the luma of the
    pixels that did not flip to their grey levels (a copy may be both greyscale and brightened);
    None when neither side is greyscale or nothing flipped. The map is learnt where both sides
    agree that there is no strong colour and is affine, not any tone curve: fitted on the
    flipped pixels too, or free to bend, it would turn a red crown's luma into black and excuse
    the king of spades."""
    if sides is None or not flipped.any():
        return None
    grey_side, colour_side = sides
    luma = colour_side @ _LUMA_BGR
    level = grey_side.mean(axis=1)
    gain, offset = _robust_line(luma[~flipped], level[~flipped])
    return float(np.median(np.abs(level[flipped] - (gain * luma[flipped] + offset))))


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares y ~ gain * x + offset, refitted without the worst residuals (an overlay,
    the changed part); the identity when x has too few pixels or too little spread to say."""
    keep = np.ones(x.shape[0], bool)
    gain, offset = 1.0, 0.0
    for _ in range(2):
        xs, ys = x[keep], y[keep]
        if xs.size < _MIN_HUE_PIXELS or float(xs.std()) < _TONE_FIT_MIN_STD:
            return 1.0, 0.0
        gain, offset = (float(v) for v in np.polyfit(xs, ys, 1))
        res = np.abs(gain * x + offset - y)
        keep = res <= np.quantile(res, _COLOUR_FIT_KEEP)
    return gain, offset


def _overlay_blobs(
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
    blobs = _Blobs(faint, strong, valid, labels, stats, query_thumb, stored_thumb, affine,
                   aligned_grey, fitted_grey)
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


# A single blob leaving less than this share of the disagreement outside it needs no others.
_MULTI_MIN_OUTSIDE_SHARE = 0.05
# Blobs are added, largest first, until this share or less of the disagreement is outside.
_MULTI_TARGET_OUTSIDE_SHARE = 0.05
# Several separate overlays: a meme's caption bands, a few stickers; more parts are a different
# picture disagreeing all over.
MAX_OVERLAY_PARTS = 6
# A blob's point reflection must fall this much on another blob to be its half-turn repeat.
_HALF_TURN_MIN_OVERLAP = 0.3


@dataclass(frozen=True)
class _Blobs:
    """What ``_overlay_blobs`` measures a set of blobs on."""

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
        detail = _detail_ncc(ag[0], ag[1], valid & cv2.erode(away, _BLOB_KERNEL))
        total = cv2.countNonZero(faint)
        boxes = [self._boxes(label) for label in parts]
        area = sum(int(self.stats[label, cv2.CC_STAT_WIDTH] * self.stats[label, cv2.CC_STAT_HEIGHT])
                   for label in parts)
        oblique = min(
            max(_oblique_share(self.query_thumb, qbox), _oblique_share(self.stored_thumb, sbox))
            for qbox, sbox in boxes
        )
        self_mirrored = self._half_turn_repeat(boxes, chosen) if len(parts) > 1 else 0.0

        def motifs() -> list[float]:
            # each blob's own motif (the least-repeating side's), the worst blob deciding; and
            # the most a blob repeats on either side
            per_blob = [self._motifs(label, qbox, sbox) for label, (qbox, sbox)
                        in zip(parts, boxes, strict=True)]
            least = [min(m) for m in per_blob if m]
            most = [max(m) for m in per_blob if m]
            return [max(least), max(most)] if least else []

        return OverlayBlob(
            area / n_valid,
            outside / total,
            oblique,
            _ncc(ag[0], self.fitted_grey, valid & away),
            detail,
            outside / n_valid,
            outside_strong,
            mirrored,
            motifs,
            parts=len(parts),
            self_mirrored=self_mirrored,
        )

    def _half_turn_repeat(
        self, boxes: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]],
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

    def _boxes(
        self, label: int
    ) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
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
        mapped = _map_points(_invert(self.affine), corners)
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
        sblob = _warp(blob, _invert(self.affine), (sw, sh), cv2.INTER_NEAREST, 0)
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


def _self_match(
    img: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray
) -> float | None:
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


def _content_cover(img: np.ndarray, covered: np.ndarray) -> float:
    """Fraction of an image's content pixels (not flat background) inside ``covered`` (uint8).

    Content is where the grey level varies within a _FLAT_WINDOW window by more than _FLAT_STD;
    an image with almost no content (under _MIN_CONTENT of its pixels) gets 0, so the caller
    keeps the plain area coverage.
    """
    grey = _grey(img)
    k = (_FLAT_WINDOW, _FLAT_WINDOW)
    mean = cv2.blur(grey, k)
    var = cv2.blur(grey * grey, k) - mean * mean
    content = (var > _FLAT_STD**2).view(np.uint8)
    n = cv2.countNonZero(content)
    if n < _MIN_CONTENT * content.size:
        return 0.0
    return float(cv2.countNonZero(content & covered)) / n


def _ncc(q: np.ndarray, s: np.ndarray, mask: np.ndarray) -> float:
    """Normalised correlation of two grey images on ``mask`` (uint8)."""
    on = mask > 0
    if int(on.sum()) < 64:
        return 0.0
    return correlation(q[on].astype(np.float64), s[on].astype(np.float64))


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised correlation of two value arrays, in their own precision."""
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 1e-9 else 0.0


def _detail_ncc(q: np.ndarray, s: np.ndarray, valid: np.ndarray) -> float:
    """NCC of the high-pass (image minus its blur) of two aligned grey images on ``valid`` (uint8).

    A smooth blob and a detailed picture of the same outline agree in layout, tone and colour
    once histograms are matched and the smooth residual is removed; only their detail differs.
    """
    inner_u8 = cv2.erode(valid, _DETAIL_ERODE_KERNEL)
    if cv2.countNonZero(inner_u8) < 64:
        return 0.0
    qd = q - cv2.GaussianBlur(q, (0, 0), _DETAIL_SIGMA)
    sd = s - cv2.GaussianBlur(s, (0, 0), _DETAIL_SIGMA)
    inner = inner_u8 > 0
    return correlation(qd[inner], sd[inner])
