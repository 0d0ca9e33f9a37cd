"""The aligned pixel check (verify.pixels) on synthetic pairs built from scikit-image pictures:
the figures it measures, and the verdict the rules give on them."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from skimage import data

from stream_processors.engine.verify import PixelRule, PixelThresholds, Verdict, pixel_check
from stream_processors.engine.verify.pixels import content_cover
from stream_processors.engine.verify.rules.overlay import clean_outside
from tests.unit.verify_fixtures import (
    THUMB,
    ace,
    caption,
    card,
    court_card,
    identity,
    inset,
    pixel_art,
    refusal,
    rotate_hue,
    thumb,
)

PIXELS = PixelThresholds()


def test_identical_thumbnails_pass() -> None:
    t = thumb(data.astronaut())
    ev = pixel_check(t, t, identity(t, t))
    assert ev.passes(PIXELS)
    assert ev.cover_small > 0.9 and ev.ncc > 0.99


def test_jpeg_reencode_passes() -> None:
    t = thumb(data.chelsea())
    ok, buf = cv2.imencode(".jpg", t, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    q = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert q is not None
    assert pixel_check(q, t, identity(q, t)).passes(PIXELS)


def test_changed_trait_of_pixel_art_fails() -> None:
    """A few cells of another colour on the art's grid (a punk's trait) is another artwork."""
    t = pixel_art(0)
    q = t.copy()
    q[64:88, 96:120] = (20, 200, 40)  # 3 x 3 cells
    ev = pixel_check(q, t, identity(q, t))
    assert ev.bad > PIXELS.max_bad
    assert ev.overlay is not None and ev.overlay.oblique < PIXELS.min_overlay_oblique
    assert not ev.passes(PIXELS)


def test_captions_in_several_places_are_several_overlays() -> None:
    """Two separate captions on a photo are not one overlay, but two: the photo around them
    agrees, and neither repeats the other turned half round (a card's rank in its two corners
    does, and is refused: test_card_index_changed_in_both_corners_fails)."""
    t = thumb(data.astronaut())
    q = caption(caption(t, "7", (8, 24)), "7", (170, 180))
    ev = pixel_check(q, t, identity(q, t))
    assert ev.overlay is not None and ev.overlay.outside_share > PIXELS.max_outside_share
    assert refusal(ev.verdict(PIXELS), "overlay") is not None
    assert ev.overlays is not None and ev.overlays.parts == 2
    assert ev.overlays.self_mirrored <= PIXELS.max_half_turn_repeat
    assert ev.verdict(PIXELS) == Verdict(True, PixelRule.OVERLAYS)


def test_large_change_fails() -> None:
    """A disagreement over a large part of the picture is a different picture, even if compact."""
    t = thumb(data.astronaut())
    q = t.copy()
    cv2.circle(q, (96, 96), 48, (20, 200, 40), -1, cv2.LINE_AA)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.overlay is not None and ev.overlay.box > PIXELS.max_overlay_box
    assert not ev.passes(PIXELS)


def test_caption_on_a_photo_passes() -> None:
    t = thumb(data.astronaut())
    q = caption(t, "for sale", (20, 170))
    ev = pixel_check(q, t, identity(q, t))
    assert ev.bad > PIXELS.max_bad  # a disagreement the strict rule alone would reject
    assert ev.passes(PIXELS)


def test_caption_on_pixel_art_passes() -> None:
    t = pixel_art(1)
    q = caption(t, "mint now", (30, 40))
    ev = pixel_check(q, t, identity(q, t))
    assert ev.bad > PIXELS.max_bad
    assert ev.passes(PIXELS)


def test_flat_margin_outside_the_overlap_is_not_uncovered() -> None:
    """A picture inside a wide flat (vignetted) margin: all content is covered."""
    stored = thumb(data.coffee(), 128)
    yy, xx = np.mgrid[0:THUMB, 0:THUMB].astype(np.float32)
    r = np.hypot(yy - THUMB / 2, xx - THUMB / 2) / THUMB
    margin = np.clip(235 - 60 * r * r, 0, 255).astype(np.uint8)  # a smooth vignette
    canvas = np.repeat(margin[..., None], 3, axis=2)
    query, affine = inset(stored, canvas, 0.6)
    area_cover = affine[0, 0] * affine[1, 1] * stored.shape[0] * stored.shape[1] / THUMB**2
    assert area_cover < PIXELS.min_cover_large  # the plain area fraction alone would reject
    ev = pixel_check(query, stored, affine)
    assert ev.cover_large >= PIXELS.min_cover_large
    assert ev.passes(PIXELS)


def test_a_screenshot_of_the_picture_passes() -> None:
    """The picture at 40% of the side in an app's frame (a bar, an icon, caption lines)."""
    stored = thumb(data.coffee(), 128)
    canvas = np.full((THUMB, THUMB, 3), 250, np.uint8)
    canvas[: THUMB // 9] = (60, 40, 30)
    cv2.circle(canvas, (THUMB // 18, THUMB // 18), THUMB // 30, (200, 200, 200), -1)
    for i in range(4):
        y = THUMB - 8 - 9 * i
        cv2.rectangle(canvas, (10, y - 3), (10 + (THUMB - 40) // (i + 1), y), (90, 90, 90), -1)
    query, affine = inset(stored, canvas, 0.6)
    ev = pixel_check(query, stored, affine)
    assert ev.cover_small == 1.0 and ev.cover_large < 0.35  # the app's frame has content
    assert ev.passes(PIXELS)


def test_content_outside_the_overlap_still_counts() -> None:
    """The same inset inside another picture is a small part of a different image."""
    stored = thumb(data.coffee(), 128)
    canvas = thumb(data.astronaut())[:THUMB, :THUMB]
    query, affine = inset(stored, canvas, 0.6)
    ev = pixel_check(query, stored, affine)
    assert ev.cover_large < PIXELS.min_cover_large
    assert not ev.passes(PIXELS)


def test_content_cover_ignores_flat_pixels() -> None:
    img = np.full((64, 64, 3), 0.5, np.float32)
    assert content_cover(img, np.ones((64, 64), bool)) == 0.0  # no content at all
    img[16:48, 16:48] = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    covered = np.zeros((64, 64), bool)
    covered[12:52, 12:52] = True
    assert content_cover(img, covered) > 0.99


def test_extra_pip_of_a_card_fails() -> None:
    """The 5 of a suit is the 4 plus a centre pip: one compact, curved blob that repeats the
    card's own motif, so it is the card's content and not a pasted overlay."""
    corners = [(34, 40), (102, 40), (34, 140), (102, 140)]
    four = card(corners)
    five = card([*corners, (68, 90)])
    ev = pixel_check(five, four, identity(five, four))
    assert ev.overlay is not None and ev.overlay.motif > PIXELS.max_overlay_motif
    assert not ev.passes(PIXELS)


def test_hue_filter_passes() -> None:
    t = thumb(data.astronaut())
    q = rotate_hue(t, 20)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.colour is not None and 10 < ev.colour.hue_shift_deg < PIXELS.max_hue_shift_deg
    assert ev.passes(PIXELS)


def test_recoloured_picture_fails() -> None:
    """Another colourway of the same drawing (a green wallpaper made orange) is another
    picture: no hue filter a re-poster applies turns the palette that far."""
    t = thumb(data.astronaut())
    q = rotate_hue(t, 90)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.colour is not None and ev.colour.hue_shift_deg > PIXELS.max_hue_shift_deg
    assert not ev.passes(PIXELS)


def test_black_motif_painted_red_fails() -> None:
    """The king of spades and the king of diamonds share the drawing; one crown is black, the
    other red. A global colour fit could map one onto the other; colour from grey cannot."""
    spades = np.full((192, 136, 3), 255, np.uint8)
    cv2.fillPoly(spades, [np.array([[28, 60], [108, 60], [96, 140], [40, 140]])], (0, 0, 0))
    diamonds = spades.copy()
    diamonds[np.all(spades == 0, axis=2)] = (60, 60, 210)
    ev = pixel_check(diamonds, spades, identity(diamonds, spades))
    assert ev.colour is not None and ev.colour.chroma_flip > PIXELS.max_chroma_flip
    assert not ev.passes(PIXELS)


def test_keystoned_copy_passes_with_its_homography() -> None:
    """A copy photographed at an angle is a perspective warp: no affine aligns it, the
    homography does."""
    t = thumb(data.astronaut())
    h, w = t.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[12, 6], [w - 12, 0], [w, h], [0, h - 4]], np.float32)
    homography = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    q = cv2.warpPerspective(t, homography, (w, h), flags=cv2.INTER_LINEAR)
    ev = pixel_check(q, t, homography)
    assert ev.passes(PIXELS)
    assert not pixel_check(q, t, identity(q, t)).passes(PIXELS)


def test_greyscale_copy_passes_either_way() -> None:
    """A black-and-white copy keeps each colour's luma, which a recoloured motif does not."""
    t = thumb(data.astronaut())
    grey = cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    grey = np.ascontiguousarray(grey)
    ev = pixel_check(grey, t, identity(grey, t))
    assert ev.colour is not None and ev.colour.chroma_flip > PIXELS.max_chroma_flip
    assert ev.passes(PIXELS)
    assert pixel_check(t, grey, identity(t, grey)).passes(PIXELS)


def test_red_pips_over_black_ink_fail() -> None:
    """The ace of diamonds against the ace of spades: the red pips flip only a few per cent of
    all pixels, but most of the black card's ink."""
    spades, diamonds = ace((0, 0, 0)), ace((60, 60, 210))
    ev = pixel_check(diamonds, spades, identity(diamonds, spades))
    assert ev.colour is not None and ev.colour.chroma_flip < PIXELS.max_chroma_flip
    assert ev.colour.ink_flip > PIXELS.max_ink_flip
    assert not ev.passes(PIXELS)


def test_colour_logo_on_a_greyscale_picture_passes() -> None:
    """A coloured sticker pasted on a black-and-white photo covers ink and background alike."""
    t = thumb(np.repeat(data.camera()[..., None], 3, axis=2))
    q = t.copy()
    cv2.circle(q, (150, 40), 14, (40, 160, 230), -1, cv2.LINE_AA)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.colour is not None and ev.colour.ink_flip <= PIXELS.max_ink_flip
    assert ev.passes(PIXELS)


def test_caption_with_faint_residue_elsewhere_passes() -> None:
    """A caption on a filtered copy: the filter leaves faint residue away from the caption that
    outweighs the caption itself, but apart from the caption the pair is as clean as a clean
    copy. A second strong change elsewhere is no longer one overlay: the pair passes only as
    two separate ones, on the strong agreement of the rest."""
    t = thumb(data.astronaut())
    q = caption(t, "ok", (140, 170)).astype(np.float32)
    q[20:36, 20:36] += 60  # faint: above the faint level, below the strong one
    q = np.clip(q, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.overlay is not None and ev.overlay.outside_share > PIXELS.max_outside_share
    assert clean_outside(ev.overlay, PIXELS) and ev.passes(PIXELS)

    q = caption(t, "ok", (140, 170))
    q[20:40, 20:40] = 0
    ev = pixel_check(q, t, identity(q, t))
    assert ev.overlay is not None and not clean_outside(ev.overlay, PIXELS)
    assert refusal(ev.verdict(PIXELS), "overlay") is not None
    assert ev.overlays is not None and ev.overlays.parts == 2
    assert ev.verdict(PIXELS) == Verdict(True, PixelRule.OVERLAYS)


def test_card_index_changed_in_both_corners_fails() -> None:
    """J of hearts vs J of diamonds: the changed suit is one small blob, and the rest of the
    disagreement is the same change at the point-symmetric corner, not residue of an edit."""
    hearts, diamonds = court_card("hearts"), court_card("diamonds")
    ev = pixel_check(diamonds, hearts, identity(diamonds, hearts))
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
    overlays = refusal(ev.verdict(PIXELS), "overlays")
    assert overlays is not None and overlays.why.startswith("self_mirrored")


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
    ev = pixel_check(q, art, identity(q, art))
    assert ev.ncc < PIXELS.min_ncc
    assert ev.overlay is not None and ev.overlay.ncc >= PIXELS.min_ncc
    assert ev.overlay.motif_both <= PIXELS.max_overlay_motif
    assert ev.passes(PIXELS)


def test_strong_vignette_passes_on_the_unshaded_layout() -> None:
    """A dark vignette on a low-contrast photo lowers the whole-picture correlation below the
    limit; what it leaves after the colour fit is a smooth residual, which is no change."""
    t = thumb(data.chelsea())
    h, w = t.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    gain = np.clip(1 - 0.4 * r2, 0.1, 1)[..., None]
    q = np.clip(t.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.ncc < PIXELS.min_ncc <= ev.ncc_unshaded
    assert ev.passes(PIXELS)


def test_greyscale_and_brightened_copy_passes() -> None:
    """A copy both made black-and-white and brightened keeps each colour's luma up to the
    brightness change, which the pixels that had no colour to lose tell."""
    t = thumb(data.astronaut())
    grey = cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    q = np.clip(grey.astype(np.float32) * 1.4, 0, 255).astype(np.uint8)
    ev = pixel_check(q, t, identity(q, t))
    assert ev.colour is not None and ev.colour.greyscale_copy
    assert ev.passes(PIXELS)
