"""The aligned pixel check of verify.py on synthetic pairs built from scikit-image pictures."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data

from stream_processors.engine.verify import (
    PixelCheck,
    PixelRule,
    PixelThresholds,
    Verdict,
    _content_cover,
    pixel_check,
)

PIXELS = PixelThresholds()
THUMB = 192


def _thumb(rgb: np.ndarray, long_side: int = THUMB) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))


def _identity(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    qh, qw = query.shape[:2]
    sh, sw = stored.shape[:2]
    return np.array([[qw / sw, 0.0, 0.0], [0.0, qh / sh, 0.0]])


def _inset(stored: np.ndarray, canvas: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``stored`` scaled by ``scale`` into the middle of ``canvas``; return it, affine."""
    ch, cw = canvas.shape[:2]
    sh, sw = stored.shape[:2]
    w, h = round(sw * scale), round(sh * scale)
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    out = canvas.copy()
    out[y0 : y0 + h, x0 : x0 + w] = cv2.resize(stored, (w, h), interpolation=cv2.INTER_AREA)
    affine = np.array([[w / sw, 0.0, float(x0)], [0.0, h / sh, float(y0)]])
    return out, affine


def test_identical_thumbnails_pass() -> None:
    t = _thumb(data.astronaut())
    ev = pixel_check(t, t, _identity(t, t))
    assert ev.passes(PIXELS)
    assert ev.cover_small > 0.9 and ev.ncc > 0.99


def test_jpeg_reencode_passes() -> None:
    t = _thumb(data.chelsea())
    ok, buf = cv2.imencode(".jpg", t, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    q = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert q is not None
    assert pixel_check(q, t, _identity(q, t)).passes(PIXELS)


def _pixel_art(seed: int, cells: int = 24, side: int = THUMB) -> np.ndarray:
    """A CryptoPunk-like picture: a few flat colours on a grid, scaled up without smoothing."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    art = palette[rng.integers(0, 6, (cells, cells))]
    return np.ascontiguousarray(cv2.resize(art, (side, side), interpolation=cv2.INTER_NEAREST))


def _caption(img: np.ndarray, text: str, org: tuple[int, int]) -> np.ndarray:
    """White anti-aliased text with a dark drop shadow, as re-posters stamp on a picture."""
    out = img.copy()
    shadow = (org[0] + 1, org[1] + 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, text, shadow, font, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(out, text, org, font, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def test_changed_trait_of_pixel_art_fails() -> None:
    """A few cells of another colour on the art's grid (a punk's trait) is another artwork."""
    t = _pixel_art(0)
    q = t.copy()
    q[64:88, 96:120] = (20, 200, 40)  # 3 x 3 cells
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.bad > PIXELS.max_bad
    assert ev.overlay is not None and ev.overlay.oblique < PIXELS.min_overlay_oblique
    assert not ev.passes(PIXELS)


def test_captions_in_several_places_are_several_overlays() -> None:
    """Two separate captions on a photo are not one overlay, but two: the photo around them
    agrees, and neither repeats the other turned half round (a card's rank in its two corners
    does, and is refused: test_card_index_changed_in_both_corners_fails)."""
    t = _thumb(data.astronaut())
    q = _caption(_caption(t, "7", (8, 24)), "7", (170, 180))
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.overlay is not None and ev.overlay.outside_share > PIXELS.max_outside_share
    assert not ev.overlay.passes(PIXELS)
    assert ev.overlays is not None and ev.overlays.parts == 2
    assert ev.overlays.self_mirrored <= PIXELS.max_half_turn_repeat
    assert ev.verdict(PIXELS) == Verdict(True, PixelRule.OVERLAYS)


def test_large_change_fails() -> None:
    """A disagreement over a large part of the picture is a different picture, even if compact."""
    t = _thumb(data.astronaut())
    q = t.copy()
    cv2.circle(q, (96, 96), 48, (20, 200, 40), -1, cv2.LINE_AA)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.overlay is not None and ev.overlay.box > PIXELS.max_overlay_box
    assert not ev.passes(PIXELS)


def test_caption_on_a_photo_passes() -> None:
    t = _thumb(data.astronaut())
    q = _caption(t, "for sale", (20, 170))
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.bad > PIXELS.max_bad  # a disagreement the strict rule alone would reject
    assert ev.passes(PIXELS)


def test_caption_on_pixel_art_passes() -> None:
    t = _pixel_art(1)
    q = _caption(t, "mint now", (30, 40))
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.bad > PIXELS.max_bad
    assert ev.passes(PIXELS)


def test_flat_margin_outside_the_overlap_is_not_uncovered() -> None:
    """A picture inside a wide flat (vignetted) margin: all content is covered."""
    stored = _thumb(data.coffee(), 128)
    yy, xx = np.mgrid[0:THUMB, 0:THUMB].astype(np.float32)
    r = np.hypot(yy - THUMB / 2, xx - THUMB / 2) / THUMB
    margin = np.clip(235 - 60 * r * r, 0, 255).astype(np.uint8)  # a smooth vignette
    canvas = np.repeat(margin[..., None], 3, axis=2)
    query, affine = _inset(stored, canvas, 0.6)
    area_cover = affine[0, 0] * affine[1, 1] * stored.shape[0] * stored.shape[1] / THUMB**2
    assert area_cover < PIXELS.min_cover_large  # the plain area fraction alone would reject
    ev = pixel_check(query, stored, affine)
    assert ev.cover_large >= PIXELS.min_cover_large
    assert ev.passes(PIXELS)


def test_a_screenshot_of_the_picture_passes() -> None:
    """The picture at 40% of the side in an app's frame (a bar, an icon, caption lines)."""
    stored = _thumb(data.coffee(), 128)
    canvas = np.full((THUMB, THUMB, 3), 250, np.uint8)
    canvas[: THUMB // 9] = (60, 40, 30)
    cv2.circle(canvas, (THUMB // 18, THUMB // 18), THUMB // 30, (200, 200, 200), -1)
    for i in range(4):
        y = THUMB - 8 - 9 * i
        cv2.rectangle(canvas, (10, y - 3), (10 + (THUMB - 40) // (i + 1), y), (90, 90, 90), -1)
    query, affine = _inset(stored, canvas, 0.6)
    ev = pixel_check(query, stored, affine)
    assert ev.cover_small == 1.0 and ev.cover_large < 0.35  # the app's frame has content
    assert ev.passes(PIXELS)


def test_content_outside_the_overlap_still_counts() -> None:
    """The same inset inside another picture is a small part of a different image."""
    stored = _thumb(data.coffee(), 128)
    canvas = _thumb(data.astronaut())[:THUMB, :THUMB]
    query, affine = _inset(stored, canvas, 0.6)
    ev = pixel_check(query, stored, affine)
    assert ev.cover_large < PIXELS.min_cover_large
    assert not ev.passes(PIXELS)


def test_content_cover_ignores_flat_pixels() -> None:
    img = np.full((64, 64, 3), 0.5, np.float32)
    assert _content_cover(img, np.ones((64, 64), bool)) == 0.0  # no content at all
    img[16:48, 16:48] = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    covered = np.zeros((64, 64), bool)
    covered[12:52, 12:52] = True
    assert _content_cover(img, covered) > 0.99


def _card(pips: list[tuple[int, int]]) -> np.ndarray:
    """A playing card: black club-like pips on white."""
    card = np.full((192, 136, 3), 255, np.uint8)
    for x, y in pips:
        for dx, dy in ((-7, 2), (7, 2), (0, -8)):
            cv2.circle(card, (x + dx, y + dy), 7, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.line(card, (x, y), (x, y + 14), (0, 0, 0), 3, cv2.LINE_AA)
    return card


def test_extra_pip_of_a_card_fails() -> None:
    """The 5 of a suit is the 4 plus a centre pip: one compact, curved blob that repeats the
    card's own motif, so it is the card's content and not a pasted overlay."""
    corners = [(34, 40), (102, 40), (34, 140), (102, 140)]
    four = _card(corners)
    five = _card([*corners, (68, 90)])
    ev = pixel_check(five, four, _identity(five, four))
    assert ev.overlay is not None and ev.overlay.motif > PIXELS.max_overlay_motif
    assert not ev.passes(PIXELS)


def _rotate_hue(bgr: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(degrees / 2)) % 180).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def test_hue_filter_passes() -> None:
    t = _thumb(data.astronaut())
    q = _rotate_hue(t, 20)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.colour is not None and 10 < ev.colour.hue_shift_deg < PIXELS.max_hue_shift_deg
    assert ev.passes(PIXELS)


def test_recoloured_picture_fails() -> None:
    """Another colourway of the same drawing (a green wallpaper made orange) is another
    picture: no hue filter a re-poster applies turns the palette that far."""
    t = _thumb(data.astronaut())
    q = _rotate_hue(t, 90)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.colour is not None and ev.colour.hue_shift_deg > PIXELS.max_hue_shift_deg
    assert not ev.passes(PIXELS)


def test_black_motif_painted_red_fails() -> None:
    """The king of spades and the king of diamonds share the drawing; one crown is black, the
    other red. A global colour fit could map one onto the other; colour from grey cannot."""
    spades = np.full((192, 136, 3), 255, np.uint8)
    cv2.fillPoly(spades, [np.array([[28, 60], [108, 60], [96, 140], [40, 140]])], (0, 0, 0))
    diamonds = spades.copy()
    diamonds[np.all(spades == 0, axis=2)] = (60, 60, 210)
    ev = pixel_check(diamonds, spades, _identity(diamonds, spades))
    assert ev.colour is not None and ev.colour.chroma_flip > PIXELS.max_chroma_flip
    assert not ev.passes(PIXELS)


def test_keystoned_copy_passes_with_its_homography() -> None:
    """A copy photographed at an angle is a perspective warp: no affine aligns it, the
    homography does."""
    t = _thumb(data.astronaut())
    h, w = t.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[12, 6], [w - 12, 0], [w, h], [0, h - 4]], np.float32)
    homography = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    q = cv2.warpPerspective(t, homography, (w, h), flags=cv2.INTER_LINEAR)
    ev = pixel_check(q, t, homography)
    assert ev.passes(PIXELS)
    assert not pixel_check(q, t, _identity(q, t)).passes(PIXELS)


def test_geometry_of_a_keystoned_copy_is_a_homography() -> None:
    """Keypoints of a keystoned copy fit a homography far better than a similarity; the
    estimate switches to it so the pixel check can align the copy."""
    from stream_processors.engine.local_features import detect_orb
    from stream_processors.engine.verify import GeometryThresholds, estimate_geometry

    grey = cv2.cvtColor(_thumb(data.astronaut(), 480), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[40, 20], [w - 40, 0], [w, h], [0, h - 10]], np.float32)
    keystone = cv2.getPerspectiveTransform(src, dst)
    copy = cv2.warpPerspective(grey, keystone, (w, h))
    geo = estimate_geometry(detect_orb(copy), detect_orb(grey), GeometryThresholds())
    assert geo is not None and geo.affine.shape == (3, 3)
    corners = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), geo.affine)
    assert np.abs(corners.reshape(-1, 2) - dst).max() < 6.0


def test_screening_keeps_a_copy_and_refuses_an_unrelated_picture() -> None:
    """Screened geometry is the unscreened one for a copy (the strongest keypoints match), and
    an unrelated picture is refused on its strongest keypoints alone."""
    from stream_processors.engine.local_features import detect_orb
    from stream_processors.engine.verify import GeometryThresholds, estimate_geometry

    grey = cv2.cvtColor(_thumb(data.astronaut(), 480), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    crop = cv2.resize(grey[h // 8 :, w // 10 :], (w, h))
    stored, copy = detect_orb(grey), detect_orb(crop)
    full = estimate_geometry(copy, stored, GeometryThresholds())
    screened = estimate_geometry(copy, stored, GeometryThresholds(), screen=True)
    assert full is not None and screened is not None
    assert (screened.matches, screened.inliers) == (full.matches, full.inliers)
    assert np.array_equal(screened.affine, full.affine)
    other = detect_orb(cv2.cvtColor(_thumb(data.coffee(), 480), cv2.COLOR_BGR2GRAY))
    assert estimate_geometry(other, stored, GeometryThresholds(), screen=True) is None


def test_greyscale_copy_passes_either_way() -> None:
    """A black-and-white copy keeps each colour's luma, which a recoloured motif does not."""
    t = _thumb(data.astronaut())
    grey = cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    grey = np.ascontiguousarray(grey)
    ev = pixel_check(grey, t, _identity(grey, t))
    assert ev.colour is not None and ev.colour.chroma_flip > PIXELS.max_chroma_flip
    assert ev.passes(PIXELS)
    assert pixel_check(t, grey, _identity(t, grey)).passes(PIXELS)


def _ace(colour: tuple[int, int, int]) -> np.ndarray:
    """An ace: a grey frame, a rank glyph and three small pips on white; the pips are a small
    share of the card but most of its ink."""
    card = np.full((192, 136, 3), 255, np.uint8)
    cv2.rectangle(card, (4, 4), (131, 187), (170, 170, 170), 2)
    for x, y, r in ((22, 46, 8), (68, 96, 16), (114, 146, 8)):
        cv2.circle(card, (x, y), r, colour, -1, cv2.LINE_AA)
    cv2.putText(card, "A", (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2, cv2.LINE_AA)
    return card


def test_red_pips_over_black_ink_fail() -> None:
    """The ace of diamonds against the ace of spades: the red pips flip only a few per cent of
    all pixels, but most of the black card's ink."""
    spades, diamonds = _ace((0, 0, 0)), _ace((60, 60, 210))
    ev = pixel_check(diamonds, spades, _identity(diamonds, spades))
    assert ev.colour is not None and ev.colour.chroma_flip < PIXELS.max_chroma_flip
    assert ev.colour.ink_flip > PIXELS.max_ink_flip
    assert not ev.passes(PIXELS)


def test_colour_logo_on_a_greyscale_picture_passes() -> None:
    """A coloured sticker pasted on a black-and-white photo covers ink and background alike."""
    t = _thumb(np.repeat(data.camera()[..., None], 3, axis=2))
    q = t.copy()
    cv2.circle(q, (150, 40), 14, (40, 160, 230), -1, cv2.LINE_AA)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.colour is not None and ev.colour.ink_flip <= PIXELS.max_ink_flip
    assert ev.passes(PIXELS)


def test_caption_with_faint_residue_elsewhere_passes() -> None:
    """A caption on a filtered copy: the filter leaves faint residue away from the caption that
    outweighs the caption itself, but apart from the caption the pair is as clean as a clean
    copy. A second strong change elsewhere is no longer one overlay: the pair passes only as
    two separate ones, on the strong agreement of the rest."""
    t = _thumb(data.astronaut())
    q = _caption(t, "ok", (140, 170)).astype(np.float32)
    q[20:36, 20:36] += 60  # faint: above the faint level, below the strong one
    q = np.clip(q, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.overlay is not None and ev.overlay.outside_share > PIXELS.max_outside_share
    assert ev.overlay.clean_outside(PIXELS) and ev.passes(PIXELS)

    q = _caption(t, "ok", (140, 170))
    q[20:40, 20:40] = 0
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.overlay is not None and not ev.overlay.clean_outside(PIXELS)
    assert not ev.overlay.passes(PIXELS)
    assert ev.overlays is not None and ev.overlays.parts == 2
    assert ev.verdict(PIXELS) == Verdict(True, PixelRule.OVERLAYS)


def _court_card(suit: str) -> np.ndarray:
    """A red court card: a crown in the middle and the suit under the rank in two opposite
    corners, the second turned half round, as on real cards."""
    card = np.full((192, 136, 3), 255, np.uint8)
    red = (60, 60, 200)
    cv2.rectangle(card, (3, 3), (132, 188), (190, 190, 190), 2)
    crown = np.array([[36, 120], [100, 120], [108, 70], [84, 90], [68, 60], [52, 90], [28, 70]])
    cv2.fillPoly(card, [crown], red, cv2.LINE_AA)
    corner = np.full((44, 30, 3), 255, np.uint8)
    cv2.putText(corner, "J", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.7, red, 2, cv2.LINE_AA)
    if suit == "hearts":
        cv2.circle(corner, (10, 28), 5, red, -1, cv2.LINE_AA)
        cv2.circle(corner, (20, 28), 5, red, -1, cv2.LINE_AA)
        cv2.fillPoly(corner, [np.array([[5, 30], [25, 30], [15, 42]])], red, cv2.LINE_AA)
    else:
        cv2.fillPoly(corner, [np.array([[15, 22], [23, 32], [15, 42], [7, 32]])], red, cv2.LINE_AA)
    card[6:50, 6:36] = corner
    card[142:186, 100:130] = corner[::-1, ::-1]
    return card


def test_card_index_changed_in_both_corners_fails() -> None:
    """J of hearts vs J of diamonds: the changed suit is one small blob, and the rest of the
    disagreement is the same change at the point-symmetric corner, not residue of an edit."""
    hearts, diamonds = _court_card("hearts"), _court_card("diamonds")
    ev = pixel_check(diamonds, hearts, _identity(diamonds, hearts))
    assert ev.overlay is not None
    assert ev.overlay.outside_mirrored > PIXELS.max_outside_mirrored
    assert not ev.passes(PIXELS)
    # the reflection alone tells it: were the corner change small enough to pass as residue,
    # the pair would still be refused
    loose = dataclasses.replace(PIXELS, max_outside_strong=1.0)
    assert not ev.passes(loose)
    assert ev.passes(dataclasses.replace(loose, max_outside_mirrored=1.0))
    # taken as two overlays, the two corners are one change turned half round in both cards
    assert ev.overlays is not None and ev.overlays.parts == 2
    assert ev.overlays.self_mirrored > PIXELS.max_half_turn_repeat
    assert not ev.overlays.passes(PIXELS)


def test_bold_caption_on_line_art_passes_on_the_layout_away_from_it() -> None:
    """A bold black caption on thin black-on-white line art owns most of the grey variance, so
    the whole-picture correlation drops below the limit; away from the caption the layout
    agrees, and the caption repeats in neither picture."""
    art = np.full((192, 160, 3), 255, np.uint8)
    cv2.circle(art, (80, 80), 50, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.line(art, (20, 180), (150, 20), (0, 0, 0), 2, cv2.LINE_AA)
    q = art.copy()
    for dx in range(5):  # bold strokes
        cv2.putText(q, "SALE", (36 + dx, 150), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    ev = pixel_check(q, art, _identity(q, art))
    assert ev.ncc < PIXELS.min_ncc
    assert ev.overlay is not None and ev.overlay.ncc >= PIXELS.min_ncc
    assert ev.overlay.motif_both <= PIXELS.max_overlay_motif
    assert ev.passes(PIXELS)


def _sign(bar_vertical: bool = False) -> np.ndarray:
    """Flat, low-texture art: a white disk with a black bar on black."""
    sign = np.zeros((192, 192, 3), np.uint8)
    cv2.circle(sign, (96, 96), 80, (255, 255, 255), -1, cv2.LINE_AA)
    if bar_vertical:
        cv2.rectangle(sign, (84, 40), (108, 152), (0, 0, 0), -1)
    else:
        cv2.rectangle(sign, (40, 84), (152, 108), (0, 0, 0), -1)
    return sign


def test_refinement_recovers_a_rough_rotation_and_keeps_another_picture_out() -> None:
    """Keypoints of a flat sign fix its rotation only roughly (1 degree for a 4 degree turn):
    the copy then disagrees along every edge until ECC refines the alignment. Refining cannot
    make the sign with a vertical bar pass."""
    from stream_processors.engine.verify import refine_alignment

    sign = _sign()
    turned = cv2.getRotationMatrix2D((96, 96), 4.0, 1.0)
    copy = cv2.warpAffine(sign, turned, (192, 192), flags=cv2.INTER_LINEAR)
    rough = cv2.getRotationMatrix2D((96, 96), 1.0, 1.0)
    assert not pixel_check(copy, sign, rough).passes(PIXELS)
    refined = refine_alignment(copy, sign, rough)
    assert refined is not None and np.abs(refined - turned).max() < 0.5
    assert pixel_check(copy, sign, refined).passes(PIXELS)

    other = _sign(bar_vertical=True)
    moved = refine_alignment(copy, other, rough)
    assert moved is None or not pixel_check(copy, other, moved).passes(PIXELS)


def test_strong_vignette_passes_on_the_unshaded_layout() -> None:
    """A dark vignette on a low-contrast photo lowers the whole-picture correlation below the
    limit; what it leaves after the colour fit is a smooth residual, which is no change."""
    t = _thumb(data.chelsea())
    h, w = t.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    gain = np.clip(1 - 0.4 * r2, 0.1, 1)[..., None]
    q = np.clip(t.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.ncc < PIXELS.min_ncc <= ev.ncc_unshaded
    assert ev.passes(PIXELS)


def test_greyscale_and_brightened_copy_passes() -> None:
    """A copy both made black-and-white and brightened keeps each colour's luma up to the
    brightness change, which the pixels that had no colour to lose tell."""
    t = _thumb(data.astronaut())
    grey = cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    q = np.clip(grey.astype(np.float32) * 1.4, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, _identity(q, t))
    assert ev.colour is not None and ev.colour.greyscale_copy
    assert ev.passes(PIXELS)


def _evidence(**fields: float) -> PixelCheck:
    """A clean pair's figures, with the named ones changed: one rule at a time."""
    clean: dict[str, float] = {
        "cover_small": 1.0, "cover_large": 1.0, "ncc": 0.99, "bad": 0.0, "bad_center": 0.0,
        "bad_faint": 0.0, "detail_ncc": 0.9, "ncc_unshaded": 0.99,
    }
    return PixelCheck(**{**clean, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({}, PixelRule.CLEAN_COPY),
        ({"cover_small": PIXELS.min_cover_small - 0.01}, PixelRule.LITTLE_OVERLAP),
        ({"cover_large": PIXELS.min_cover_large - 0.01}, PixelRule.SMALL_PART),
        ({"ncc": PIXELS.min_ncc - 0.01, "ncc_unshaded": 0.0}, PixelRule.LAYOUT_DIFFERS),
        ({"detail_ncc": PIXELS.min_detail_ncc - 0.01}, PixelRule.DETAIL_DIFFERS),
        ({"bad": PIXELS.max_bad * 2}, PixelRule.CHANGED_DETAIL),
        ({"bad_faint": PIXELS.max_bad_faint * 2}, PixelRule.FAINT_CHANGE),
    ],
)
def test_each_pixel_rule_names_itself(fields: dict[str, float], rule: PixelRule) -> None:
    verdict = _evidence(**fields).verdict(PIXELS)
    assert verdict.rule is rule
    assert verdict.accepted is (rule is PixelRule.CLEAN_COPY)


def test_a_vignette_s_layout_is_judged_without_its_shading() -> None:
    shaded = _evidence(ncc=PIXELS.min_ncc - 0.1, ncc_unshaded=PIXELS.min_ncc + 0.05)
    assert shaded.verdict(PIXELS) == Verdict(True, PixelRule.CLEAN_COPY)


def test_real_pairs_are_accepted_and_refused_by_their_named_rule() -> None:
    """The same verdicts as passes() gives, with the rule the evidence records."""
    t = _thumb(data.astronaut())
    caption = _caption(t, "for sale", (20, 170))
    assert pixel_check(caption, t, _identity(caption, t)).verdict(PIXELS) == Verdict(
        True, PixelRule.OVERLAY
    )
    recoloured = t.copy()
    cv2.circle(recoloured, (96, 96), 48, (20, 200, 40), -1, cv2.LINE_AA)
    refused = pixel_check(recoloured, t, _identity(recoloured, t)).verdict(PIXELS)
    assert not refused.accepted and refused.rule is PixelRule.CHANGED_DETAIL
