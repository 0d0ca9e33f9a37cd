"""Clean copy: the whole overlap agrees once tone, colour and smooth shading are fitted.

Why: re-encoding, resizing, brightness, gamma, blur and colour filters change every pixel a
little and no pixel much; a changed trait, an extra pip or another drawing of the same outline
changes a few pixels much, or the fine detail. The rule refuses on the first figure a clean
copy would not reach; the refusal is not final, as a caption or a sticker breaks this rule and
is judged by the overlay rules after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_processors.engine.verify.verdict import Finding, PixelRule

if TYPE_CHECKING:
    from stream_processors.engine.verify.evidence import PixelCheck
    from stream_processors.engine.verify.thresholds import PixelThresholds

# The grey layouts must correlate this much (set with the first default method, 6e18503; no
# measurement recorded); the overlay rules compare the layout against it too.
MIN_NCC = 0.80
# one pixel of a 24x24 artwork is 1/400 of the image: a changed detail that small must fail
MAX_BAD = 0.0005
# The strong disagreement in the central box of the overlap: 1.0 leaves it to MAX_BAD (since
# the calibration of 58e866c, which set it from 0.10; no measurement recorded).
MAX_BAD_CENTER = 1.0
# a low-contrast changed detail (a cheek tint, a trait in a similar colour) counts too
MAX_BAD_FAINT = 0.01
# below every calibration positive (min 0.59); a smooth blob vs a detailed picture is ~0.4
MIN_DETAIL_NCC = 0.5


def judge(check: PixelCheck, t: PixelThresholds) -> Finding:
    """Accepted as a clean copy, or refused (not finally) on the first figure that breaks it.

    The layout is judged on the better of its two correlations: a vignette or uneven tint
    lowers a clean copy's, and the smooth residual it leaves is no change of the picture."""
    ncc = max(check.ncc, check.ncc_unshaded)
    if ncc < t.min_ncc:
        return Finding(PixelRule.LAYOUT_DIFFERS, why=f"ncc {ncc:.3f} < min_ncc {t.min_ncc}")
    if check.detail_ncc < t.min_detail_ncc:
        why = f"detail_ncc {check.detail_ncc:.3f} < min_detail_ncc {t.min_detail_ncc}"
        return Finding(PixelRule.DETAIL_DIFFERS, why=why)
    if check.bad > t.max_bad:
        return Finding(PixelRule.CHANGED_DETAIL, why=f"bad {check.bad:.4f} > max_bad {t.max_bad}")
    if check.bad_center > t.max_bad_center:
        why = f"bad_center {check.bad_center:.4f} > max_bad_center {t.max_bad_center}"
        return Finding(PixelRule.CHANGED_DETAIL, why=why)
    if check.bad_faint > t.max_bad_faint:
        why = f"bad_faint {check.bad_faint:.4f} > max_bad_faint {t.max_bad_faint}"
        return Finding(PixelRule.FAINT_CHANGE, why=why)
    return Finding(PixelRule.CLEAN_COPY, accepted=True)
