"""Verification of one upload against one stored entry: is the upload a copy of it?

Why a module of its own: these checks are the expensive part of a decision (tens of
milliseconds each) and the part that decides precision; each is a pure function of the
upload's features and the stored entry's local-features record, which is what lets a commit
reuse a match's outcomes (engine.checks). Which candidates get which check, in which order, is
engine.candidates; the aligned-pixel rules themselves are engine.verify.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_processors.engine.candidates import SHORTLIST
from stream_processors.engine.checks import Outcome, Refused, Verified
from stream_processors.engine.decision import Region, RuleRefusal
from stream_processors.engine.local_features import (
    Keypoints,
    LocalFeatures,
    local_features_from_bytes,
    record_keypoints,
    record_thumb,
)
from stream_processors.engine.quick_check import quick_clean_copy
from stream_processors.engine.signatures import apply_dihedral
from stream_processors.engine.verify import (
    REFINE_MIN_NCC,
    GeometryThresholds,
    NoGeometry,
    PixelCheck,
    PixelThresholds,
    Verdict,
    fit_geometry,
    pixel_check,
    refine_alignment,
    region_shown,
    thumb_affine,
)
from stream_processors.engine.verify.rules.silhouette import SILHOUETTE_OFF
from stream_processors.engine.verify.unexplained import unexplained_share

# The reason of the check that is no aligned-pixel rule (those are verify.PixelRule).
REASON_QUICK_CLEAN_COPY = "quick-clean-copy"
QUICK_CLEAN = Verified(REASON_QUICK_CLEAN_COPY)
# The quick check only accepts: what it does not accept goes on, unjudged, to the cascade, so
# its refusals say nothing and are no part of a decision's evidence
NOT_QUICK_CLEAN = Refused()

# The refusals made before any aligned-pixel rule ran (those are named by verify.RULES): the
# keypoints aligned nothing, or the hash's dihedral alignment would stretch one picture too far
GEOMETRY_RULE = "geometry"
NO_GEOMETRY = "no-geometry"
DIHEDRAL_RULE = "dihedral-alignment"
ASPECT_CHANGED = "aspect-changed"
# how a refusal on the mirrored view of a keypoint check starts its figure
MIRRORED_VIEW = "mirrored"

GEOMETRY = GeometryThresholds()
# The silhouette rule judges the hash's dihedral alignment only (verify.rules.silhouette): on
# the keypoint path it refused 7 dev copies of flat art (754 -> 747 true positives), on the hash
# path none, while the stress sets' false references fall 18 -> 12 (pysiogame) and 8 -> 6
# (neverball), recall unchanged.
PIXELS = PixelThresholds(silhouette_share=SILHOUETTE_OFF)
FAST_PIXELS = PixelThresholds()


@dataclass(frozen=True)
class Aligned:
    """One view's aligned-pixel evidence and the stored region that alignment puts it on."""

    check: PixelCheck
    region: Region
    mirrored: bool = False


@dataclass(frozen=True)
class Unaligned:
    """A view that could not be aligned for the pixel check, and why."""

    why: str
    mirrored: bool = False


def rule_refusals(verdict: Verdict, mirrored: bool = False) -> tuple[RuleRefusal, ...]:
    """A verdict's refusals as a decision records them (``mirrored``: on the mirrored view)."""
    view = f"{MIRRORED_VIEW}: " if mirrored else ""
    return tuple(RuleRefusal(r.check, str(r.rule), view + r.why) for r in verdict.refusals)


def unaligned_refusal(unaligned: Unaligned, rule: str, finding: str) -> RuleRefusal:
    view = f"{MIRRORED_VIEW}: " if unaligned.mirrored else ""
    return RuleRefusal(rule, finding, view + unaligned.why)


def quick_check(thumb: np.ndarray, record: bytes, variant: int) -> Outcome:
    """The quick clean-copy check of the upload's thumbnail under dihedral op ``variant``."""
    clean = quick_clean_copy(apply_dihedral(thumb, variant), record_thumb(record))
    return QUICK_CLEAN if clean else NOT_QUICK_CLEAN


def fast_evidence(thumb: np.ndarray, record: bytes, variant: int) -> PixelCheck | Unaligned:
    """Pixel check of the thumbnails aligned by the hash's dihedral op (no keypoints)."""
    stored, _ = local_features_from_bytes(record)
    q = apply_dihedral(thumb, variant)
    qh, qw = q.shape[:2]
    sh, sw = stored.thumb.shape[:2]
    change = abs(float(np.log((qw / qh) / (sw / sh))))
    if change > SHORTLIST.fast_max_aspect_change:
        limit = SHORTLIST.fast_max_aspect_change
        return Unaligned(f"aspect change {change:.2f} > fast_max_aspect_change {limit}")
    affine = np.array([[qw / sw, 0.0, 0.0], [0.0, qh / sh, 0.0]])
    return pixel_check(q, stored.thumb, affine)


def fast_check(thumb: np.ndarray, record: bytes, variant: int) -> Outcome:
    ev = fast_evidence(thumb, record, variant)
    if isinstance(ev, Unaligned):
        return Refused((unaligned_refusal(ev, DIHEDRAL_RULE, ASPECT_CHANGED),))
    verdict = ev.verdict(FAST_PIXELS)
    if verdict.accepted:
        share = unexplained_share(ev, verdict, FAST_PIXELS)
        return Verified(verdict.rule, refusals=rule_refusals(verdict), unexplained_share=share)
    return Refused(rule_refusals(verdict))


def keypoint_evidence(
    local: LocalFeatures,
    mirror: Keypoints,
    record: bytes,
    views: tuple[bool, ...] = (False, True),
    stop: PixelThresholds | None = None,
    screen: bool = False,
) -> list[Aligned | Unaligned]:
    """Pixel checks for each view (False: as uploaded, True: mirrored: ``mirror`` the upload's
    mirrored keypoints), or why its geometry did not verify; with ``stop``, later views are
    skipped once one passes those thresholds; ``screen``: the geometry may refuse on the
    strongest keypoints first."""
    stored_keypoints = record_keypoints(record)
    stored: LocalFeatures | None = None  # the thumbnail is decoded once geometry holds
    out: list[Aligned | Unaligned] = []
    for mirrored in views:
        keypoints = mirror if mirrored else local.keypoints
        geo = fit_geometry(keypoints, stored_keypoints, GEOMETRY, screen)
        if isinstance(geo, NoGeometry):
            out.append(Unaligned(geo.why, mirrored))
            continue
        if stored is None:
            stored, _ = local_features_from_bytes(record)
        thumb = np.ascontiguousarray(local.thumb[:, ::-1]) if mirrored else local.thumb
        affine = thumb_affine(geo.affine, local, stored)
        ev = pixel_check(thumb, stored.thumb, affine)
        if not ev.passes(PIXELS) and ev.ncc >= REFINE_MIN_NCC:
            refined = refine_alignment(thumb, stored.thumb, affine)
            if refined is not None:
                again = pixel_check(thumb, stored.thumb, refined)
                if again.passes(PIXELS):
                    ev, affine = again, refined
        (qh, qw), (sh, sw) = thumb.shape[:2], stored.thumb.shape[:2]
        out.append(Aligned(ev, region_shown(affine, (qw, qh), (sw, sh)), mirrored))
        if stop is not None and ev.passes(stop):
            break
    return out


def keypoint_check(
    local: LocalFeatures, mirror: Keypoints, record: bytes, views: tuple[bool, ...], screen: bool
) -> Outcome:
    """The first view that passes, or every view's refusals in the order tried."""
    refusals: list[RuleRefusal] = []
    for view in keypoint_evidence(local, mirror, record, views, PIXELS, screen):
        if isinstance(view, Unaligned):
            refusals.append(unaligned_refusal(view, GEOMETRY_RULE, NO_GEOMETRY))
            continue
        verdict = view.check.verdict(PIXELS)
        if verdict.accepted:
            share = unexplained_share(view.check, verdict, PIXELS)
            before = rule_refusals(verdict, view.mirrored)
            return Verified(verdict.rule, view.region, before, share)
        refusals.extend(rule_refusals(verdict, view.mirrored))
    return Refused(tuple(refusals))
