"""Global signatures: border trimming and a PDQ-class 256-bit DCT hash with its 8 dihedral variants.

Why these choices:

* Padding, letter-boxing and solid borders move every pixel of a global hash; trimming near-uniform
  borders first (twice, so a pad around a clip-art's own white margin also goes) makes those edits
  almost free for the hash, the thumbnails and the keypoints alike.
* The hash follows PDQ: a 64x64 box-filtered luminance image, its 2-D DCT-II, the 16x16 block of
  the lowest non-DC frequencies, each bit = coefficient above the block's median. 256 bits keep
  random pairs near distance 128 while re-encodes, resizes, blur and noise stay within ~20.
* A DCT-II coefficient of a mirrored signal only changes sign at odd frequencies, and transposing
  the image transposes the coefficients; so the 8 dihedral variants (mirror, flips, 90-degree
  rotations) are derived from one DCT without touching pixels again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
N_DIHEDRAL = 8
_DCT_SIDE = 64
_BLOCK = 16

# Border trimming (computed on a small copy; see trim_uniform_border).
TRIM_ANALYSIS_SIDE = 256
TRIM_COLOUR_TOLERANCE = 24.0
TRIM_FRAME_AGREEMENT = 0.85
TRIM_MIN_CONTENT_FRACTION = 0.2
TRIM_LINE_CONTENT_FRACTION = 0.02
TRIM_PASSES = 2

# Odd DCT frequencies 1..16 change sign under a mirror of that axis.
_SIGNS = np.where(np.arange(1, _BLOCK + 1) % 2 == 1, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class TrimBox:
    """Content box of an image, half-open pixel coordinates in the image it was computed on."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def _trim_once(small: np.ndarray) -> tuple[int, int, int, int] | None:
    """One trimming pass: the box of pixels unlike the (near-uniform) outer frame, or None."""
    h, w = small.shape[:2]
    frame = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]]).astype(np.float32)
    colour = np.median(frame, axis=0)
    agree = np.max(np.abs(frame - colour), axis=1) <= TRIM_COLOUR_TOLERANCE
    if agree.mean() < TRIM_FRAME_AGREEMENT:
        return None
    diff = np.max(np.abs(small.astype(np.float32) - colour), axis=2) > TRIM_COLOUR_TOLERANCE
    rows = np.flatnonzero(diff.mean(axis=1) > TRIM_LINE_CONTENT_FRACTION)
    cols = np.flatnonzero(diff.mean(axis=0) > TRIM_LINE_CONTENT_FRACTION)
    if rows.size == 0 or cols.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (x1 - x0) < TRIM_MIN_CONTENT_FRACTION * w or (y1 - y0) < TRIM_MIN_CONTENT_FRACTION * h:
        return None
    return x0, y0, x1, y1


def trim_uniform_border(bgr: np.ndarray) -> TrimBox:
    """Box of the content inside near-uniform borders (padding, letter-box, solid frame).

    Analysed on a blurred copy with long side TRIM_ANALYSIS_SIDE so noise and JPEG ringing do not
    count as content; the box is mapped back to ``bgr``'s coordinates.
    """
    h, w = bgr.shape[:2]
    scale = min(1.0, TRIM_ANALYSIS_SIDE / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1.0 else bgr
    small = cv2.blur(small, (3, 3))
    x0, y0, x1, y1 = 0, 0, sw, sh
    for _ in range(TRIM_PASSES):
        sub = small[y0:y1, x0:x1]
        if min(sub.shape[:2]) < 8:
            break
        box = _trim_once(sub)
        if box is None:
            break
        bx0, by0, bx1, by1 = box
        x0, y0, x1, y1 = x0 + bx0, y0 + by0, x0 + bx1, y0 + by1
    fx, fy = w / sw, h / sh
    return TrimBox(
        x0=int(np.floor(x0 * fx)),
        y0=int(np.floor(y0 * fy)),
        x1=min(w, int(np.ceil(x1 * fx))),
        y1=min(h, int(np.ceil(y1 * fy))),
    )


def dct_block(gray: np.ndarray) -> np.ndarray:
    """The 16x16 lowest non-DC DCT-II coefficients of a 64x64 area-resampled copy (float32)."""
    small = cv2.resize(gray, (_DCT_SIDE, _DCT_SIDE), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(small.astype(np.float32))
    return np.ascontiguousarray(coeffs[1 : _BLOCK + 1, 1 : _BLOCK + 1])


def _bits(block: np.ndarray) -> np.ndarray:
    flat = block.reshape(-1)
    return np.packbits(flat > np.median(flat))


def dihedral_blocks(block: np.ndarray) -> list[np.ndarray]:
    """The DCT block of op_k(image) for k in 0..7, where op_k = h-mirror (bit 0), v-flip (bit 1),
    then transpose (bit 2), applied in that order (see apply_dihedral)."""
    out = []
    for k in range(N_DIHEDRAL):
        b = block
        if k & 1:
            b = b * _SIGNS[None, :]
        if k & 2:
            b = b * _SIGNS[:, None]
        if k & 4:
            b = b.T
        out.append(b)
    return out


def apply_dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """Apply dihedral op k to an image, matching dihedral_blocks' k."""
    out = img
    if k & 1:
        out = out[:, ::-1]
    if k & 2:
        out = out[::-1, :]
    if k & 4:
        out = np.swapaxes(out, 0, 1)
    return np.ascontiguousarray(out)


def dct_hash(gray: np.ndarray) -> np.ndarray:
    """256-bit PDQ-class hash of a grayscale image, as 32 packed bytes."""
    return _bits(dct_block(gray))


def dihedral_hashes(gray: np.ndarray) -> np.ndarray:
    """(8, 32) uint8: row k is the hash of apply_dihedral(gray, k); row 0 is dct_hash(gray)."""
    return np.stack([_bits(b) for b in dihedral_blocks(dct_block(gray))])


COARSE_SIDE = 8
COARSE_BITS = COARSE_SIDE * COARSE_SIDE


def coarse_hashes(gray: np.ndarray) -> np.ndarray:
    """(8, 8) uint8: a 64-bit mean-layout hash (8x8 area means above their median) per dihedral op.

    Why a second hash: images with a symmetric layout have near-zero odd DCT coefficients, whose
    bits the 256-bit hash then draws from noise (a noisy and a clean copy of a symmetric icon
    differ in ~60 bits). The 8x8 layout has no such blind spot; it is coarse, so it only
    shortlists and verification decides.
    """
    small = cv2.resize(gray, (COARSE_SIDE, COARSE_SIDE), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    return np.stack(
        [
            np.packbits(apply_dihedral(small, k).reshape(-1) > np.median(small))
            for k in range(N_DIHEDRAL)
        ]
    )


def hamming(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> int:
    """Hamming distance between two packed codes."""
    return int(np.bitwise_count(np.bitwise_xor(a, b)).sum())


def hamming_many(codes: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> np.ndarray:
    """Hamming distance of each row of ``codes`` to ``b``."""
    return np.bitwise_count(np.bitwise_xor(codes, b[None, :])).sum(axis=1)
