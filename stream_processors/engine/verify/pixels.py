"""The aligned pixel check: the stored colour thumbnail warped onto the query's, tone and colour
fitted, and the agreement measured on the overlap (``PixelCheck``), which the rules judge.

Why thumbnails: a stored image keeps its 192 px thumbnail (``local_features``), read only for a
decision's candidates. A disagreement counts only when it survives a one-pixel tolerance and a
3x3 opening, so re-encoding noise, JPEG ringing and sub-pixel misalignment along edges are no
change while a changed detail of a few pixels is.
"""

from __future__ import annotations

import cv2
import numpy as np

from stream_processors.engine.verify.agreement import correlation, detail_correlation, masked_ncc
from stream_processors.engine.verify.alignment import (
    DECOLOURING_BY_NAME,
    fit_colours,
    grey_image,
    mean_grey,
    overlap,
    warp,
)
from stream_processors.engine.verify.blobs import overlay_blobs
from stream_processors.engine.verify.chroma import colour_shift
from stream_processors.engine.verify.evidence import PixelCheck
from stream_processors.engine.verify.geometry import invert, mapped_area
from stream_processors.engine.verify.silhouette import silhouette_content

_SMOOTH_SIGMA = 1.0
_DIFF_LEVEL = 0.12  # colour residual (0..1) above which an aligned pixel disagrees
_FAINT_DIFF_LEVEL = 0.07
_VALID_ERODE = 5
_BIAS_SIGMA = 6.0
_NCC_FLOOR = 0.5  # below any acceptance threshold, even away from an overlay
_SHIFT_TOLERANCE = 3  # pixels: a 3x3 neighbourhood
_FLAT_WINDOW = 5  # pixels: window of the local contrast that tells content from flat background
_FLAT_STD = 0.02  # local grey std (0..1) under which a thumbnail pixel is flat background
_MIN_CONTENT = 0.05  # content-weighted coverage needs this fraction of pixels to be content

_ERODE_KERNEL = np.ones((_VALID_ERODE, _VALID_ERODE), np.uint8)
_SHIFT_KERNEL = np.ones((_SHIFT_TOLERANCE, _SHIFT_TOLERANCE), np.uint8)
_OPEN_KERNEL = np.ones((3, 3), np.uint8)


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
    inside = warp(ones, affine, (qw, qh), cv2.INTER_NEAREST, 0)
    valid_u8 = cv2.erode(inside, _ERODE_KERNEL)
    n_valid = cv2.countNonZero(valid_u8)
    stored_area_in_q = max(1e-6, mapped_area(affine, sw, sh))
    cover_q = n_valid / float(qw * qh)
    cover_s = min(1.0, n_valid / stored_area_in_q)
    outside_content = 0.0
    if n_valid >= 64:
        # the part of either image outside the overlap may be flat background (a border, a pad,
        # a vignetted margin that trimming kept): it carries no content, so it is not uncovered
        in_s = warp(np.ones((qh, qw), np.uint8), invert(affine), (sw, sh), cv2.INTER_NEAREST, 0)
        valid_s = cv2.erode(in_s, _ERODE_KERNEL)
        q_content = content_mask(q)
        cover_q = max(cover_q, _cover_of(q_content, valid_u8))
        cover_s = max(cover_s, content_cover(s, valid_s))
        outside_content = content_outside(q_content, inside)
    q_area, s_area = float(qw * qh), stored_area_in_q
    cover_small, cover_large = (cover_q, cover_s) if q_area <= s_area else (cover_s, cover_q)
    if n_valid < 64:
        return PixelCheck(cover_small, cover_large, 0.0, 1.0, 1.0)
    warped = warp(s, affine, (qw, qh), cv2.INTER_LINEAR, 0.0)
    idx = np.flatnonzero(valid_u8)  # the overlap's pixels, in the order of a boolean mask
    qv, wv = overlap(q, idx).astype(np.float64), overlap(warped, idx)
    colour = colour_shift(qv, wv)
    if colour.greyscale_copy:
        # one side has no colour to match: compare both in the grey that explains the grey
        # side (the other's luma, one of its channels...), whichever side is the copy
        decolouring = DECOLOURING_BY_NAME[colour.decolouring]
        q, warped = grey_image(q, decolouring), grey_image(warped, decolouring)
        qv, wv = overlap(q, idx).astype(np.float64), overlap(warped, idx)
    sv = fit_colours(wv, qv)
    ncc = correlation(mean_grey(qv), mean_grey(sv))
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
    s_fit_grey = mean_grey(s_img)
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
    q_grey, s_grey = mean_grey(q), mean_grey(s_img)
    detail_ncc = detail_correlation(q_grey, s_grey, valid_u8)
    overlay, overlays = (
        overlay_blobs(
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
        masked_ncc(q_grey, s_grey, valid_u8),
        overlays,
        # the stored side unfitted: the fit and the smooth residual would carry the query's own
        # content into it
        silhouette_content(q_grey, mean_grey(warped), valid_u8),
        outside_content,
    )


def content_mask(img: np.ndarray) -> np.ndarray:
    """Where an image has content (uint8 1/0): its grey level varies within a _FLAT_WINDOW
    window by more than _FLAT_STD; the rest is flat background (a pad, a plain margin)."""
    grey = mean_grey(img)
    k = (_FLAT_WINDOW, _FLAT_WINDOW)
    mean = cv2.blur(grey, k)
    var = cv2.blur(grey * grey, k) - mean * mean
    return (var > _FLAT_STD**2).view(np.uint8)


def _cover_of(content: np.ndarray, covered: np.ndarray) -> float:
    """Fraction of the ``content`` pixels (uint8) inside ``covered`` (uint8); 0 when under
    _MIN_CONTENT of the pixels are content, so the caller keeps the plain area coverage."""
    n = cv2.countNonZero(content)
    if n < _MIN_CONTENT * content.size:
        return 0.0
    return float(cv2.countNonZero(content & covered)) / n


def content_cover(img: np.ndarray, covered: np.ndarray) -> float:
    """Fraction of an image's content pixels (not flat background) inside ``covered`` (uint8).

    Content is where the grey level varies within a _FLAT_WINDOW window by more than _FLAT_STD;
    an image with almost no content (under _MIN_CONTENT of its pixels) gets 0, so the caller
    keeps the plain area coverage.
    """
    return _cover_of(content_mask(img), covered)


def content_outside(content: np.ndarray, inside: np.ndarray) -> float:
    """Share of the query's pixels that have content (``content``, uint8) and lie outside
    ``inside`` (uint8: where the stored picture maps into the query), grown by the overlap's
    erosion so the mapping's own edge (rounding, a resampled border line) is not counted:
    what a frame, a page or a collage around the picture adds. Flat fill (a rotation's
    corners, plain paper) carries nothing of its own and is not counted."""
    mapped = cv2.dilate(inside, _ERODE_KERNEL)
    return float(cv2.countNonZero(content & (1 - mapped))) / content.size
