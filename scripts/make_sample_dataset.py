"""Builds the demo's sample dataset from scikit-image's bundled images.

Originals are posted by their owners; near-duplicates (re-encodes, resizes, crops, flips,
filters) are posted by the owner again or by someone else, which the pipeline must flag as
possible IP theft. A ``manifest.csv`` beside the images gives the ground truth in the dev-set
format. Generation is deterministic and skipped when the folder is already complete.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data

SOURCES = (
    "astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "horse", "brick", "grass", "retina",
)
OWNERS = ("alice", "bob", "carol")
COPYIST = "mallory"
MAX_SIDE = 640


@dataclass(frozen=True)
class Variant:
    name: str
    edit: Callable[[np.ndarray], np.ndarray]
    encoding: tuple[str, list[int]]
    by_copyist: bool


def _crop(img: np.ndarray, fraction: float = 0.12) -> np.ndarray:
    h, w = img.shape[:2]
    dy, dx = int(h * fraction / 2), int(w * fraction / 2)
    return img[dy : h - dy, dx : w - dx]


def _gamma(img: np.ndarray, gamma: float = 0.8) -> np.ndarray:
    lut = (255 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return cv2.LUT(img, lut)


Encoding = tuple[str, list[int]]
JPEG_Q50: Encoding = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 50])
JPEG_Q90: Encoding = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
PNG: Encoding = (".png", [])
VARIANTS = (
    Variant("copy", lambda im: im, PNG, by_copyist=True),
    Variant("jpeg_q50", lambda im: im, JPEG_Q50, by_copyist=False),
    Variant("resize_0.5x", lambda im: cv2.resize(im, None, fx=0.5, fy=0.5,
                                                 interpolation=cv2.INTER_AREA), PNG, True),
    Variant("crop_12pct", _crop, JPEG_Q90, by_copyist=True),
    Variant("hflip", lambda im: cv2.flip(im, 1), PNG, by_copyist=True),
    Variant("gamma_0.8", _gamma, JPEG_Q90, by_copyist=False),
    Variant("gaussian_blur_s1.5", lambda im: cv2.GaussianBlur(im, (0, 0), 1.5), PNG, True),
)
# Each original gets a few variants, rotating through the list so every edit appears.
VARIANTS_PER_ORIGINAL = 3


@dataclass(frozen=True)
class SampleDataset:
    root: Path
    manifest: Path
    count: int


def _load(name: str) -> np.ndarray:
    rgb = np.asarray(getattr(skimage.data, name)())
    if rgb.ndim == 2:
        bgr = cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    else:
        bgr = cv2.cvtColor(rgb[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = MAX_SIDE / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return bgr


def _write(path: Path, image: np.ndarray, params: list[int]) -> None:
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def build_sample_dataset(root: Path) -> SampleDataset:
    manifest = root / "manifest.csv"
    if manifest.exists():
        with manifest.open() as fh:
            count = sum(1 for _ in csv.DictReader(fh))
        return SampleDataset(root, manifest, count)
    rows: list[dict[str, str]] = []
    for index, name in enumerate(SOURCES):
        original = _load(name)
        owner = OWNERS[index % len(OWNERS)]
        group = f"G{index:03d}"
        path = root / owner / f"{name}.png"
        _write(path, original, [])
        rows.append({"path": path.relative_to(root).as_posix(), "group_id": group,
                     "kind": "original", "transform": "none", "author": owner})
        for k in range(VARIANTS_PER_ORIGINAL):
            variant = VARIANTS[(index * VARIANTS_PER_ORIGINAL + k) % len(VARIANTS)]
            author = COPYIST if variant.by_copyist else owner
            suffix, params = variant.encoding
            path = root / author / f"{name}_{variant.name}{suffix}"
            _write(path, variant.edit(original), params)
            rows.append({"path": path.relative_to(root).as_posix(), "group_id": group,
                         "kind": "variant", "transform": variant.name, "author": author})
    tmp = manifest.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "group_id", "kind", "transform", "author"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.rename(manifest)  # written last: a complete manifest means a complete dataset
    return SampleDataset(root, manifest, len(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    ds = build_sample_dataset(args.out)
    print(f"{ds.count} images in {ds.root} (manifest {ds.manifest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
