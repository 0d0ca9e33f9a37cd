"""The stress-set builder: dev manifest format, every edit family, same seed -> same bytes.

The stress set is only useful as a yardstick if it is reproducible and if the evaluator reads
its families the way they were meant; both are checked here on a tiny generated manifest.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from scripts.evaluate import families, read_manifest
from scripts.make_stress_set import (
    EDITS,
    ENCODINGS,
    FAMILIES,
    MAX_SIDE,
    build,
    main,
    make_variant,
)
from tests.imagegen import artwork

PER_ORIGINAL = 4


def _source(tmp_path: Path) -> Path:
    """Two originals and one hard-negative distractor, generated, in the dev format."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    photo = artwork(240, 320)
    clipart = np.full((200, 150, 3), 255, np.uint8)
    cv2.rectangle(clipart, (30, 40), (120, 160), (0, 0, 200), -1)
    cv2.circle(clipart, (75, 60), 25, (0, 180, 0), -1)
    negative = clipart.copy()
    cv2.circle(negative, (75, 140), 20, (200, 0, 0), -1)
    cv2.imwrite(str(src / "images" / "a.jpg"), photo)
    cv2.imwrite(str(src / "images" / "b.png"), clipart)
    cv2.imwrite(str(src / "images" / "x.png"), negative)
    manifest = src / "manifest.csv"
    manifest.write_text(
        "path,group_id,kind,transform,source\n"
        "images/a.jpg,G1,original,none,gen:a\n"
        "images/b.png,G2,original,none;family=cards,gen:b\n"
        "images/v.png,G2,variant,hflip,gen:b\n"
        "images/x.png,GX1,distractor,none;hard_negative_of=G2;family=cards,gen:x\n"
    )
    return manifest


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_manifest_format(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(_source(tmp_path), out, seed=3, per_original=PER_ORIGINAL)
    with (out / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["path", "group_id", "kind", "transform", "source"]
        rows = list(reader)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("original") == 2
    assert kinds.count("distractor") == 1
    assert kinds.count("variant") == 2 * PER_ORIGINAL  # the source's own variant is dropped
    distractor = next(r for r in rows if r["kind"] == "distractor")
    assert distractor["group_id"] == "GX1"
    assert distractor["transform"] == "none;hard_negative_of=G2;family=cards"
    for r in rows:
        path = out / r["path"]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert img is not None, r
        assert max(img.shape[:2]) <= MAX_SIDE
        assert path.suffix in (".png", ".jpg", ".webp")
        if r["kind"] == "variant":
            assert r["group_id"] in ("G1", "G2")
            assert 1 <= len(families(r["transform"])) <= 3
            assert r["source"] == {"G1": "gen:a", "G2": "gen:b"}[r["group_id"]]
        else:
            assert families(r["transform"]) == []
    # the evaluator reads it, and keeps the hard negative beside its original
    eval_rows = read_manifest(out / "manifest.csv")
    assert len(eval_rows) == len(rows)
    assert next(r for r in eval_rows if r.kind == "distractor").split_group == "G2"


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert main([str(source), str(tmp_path / "one"), "--seed", "7", "--per-original", "3"]) == 0
    assert main([str(source), str(tmp_path / "two"), "--seed", "7", "--per-original", "3"]) == 0
    main([str(source), str(tmp_path / "other"), "--seed", "8", "--per-original", "3"])
    one = _files(tmp_path / "one")
    assert one == _files(tmp_path / "two")
    assert one != _files(tmp_path / "other")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_read_by_the_evaluator(family: str) -> None:
    """Each edit runs on a small and a large image and its name maps to its own family
    (gaussian_blur -> blur, gauss_noise -> noise, format_webp -> webp in the evaluator)."""
    for img in (artwork(40, 30), artwork(700, 1000)):
        rng = np.random.default_rng(0)
        data, ext, transform = make_variant(img, [family], rng)
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and ext in (".png", ".jpg", ".webp")
        assert max(decoded.shape[:2]) <= MAX_SIDE
        assert families(transform) == [family]
    assert family in EDITS or family in ENCODINGS
