"""The stress-set builder: dev manifest format, every edit family, same seed -> same bytes.

The stress set is only useful as a yardstick if it is reproducible and if the evaluator reads
its families the way they were meant; both are checked here on a tiny generated manifest.
"""

from __future__ import annotations

import csv
import dataclasses
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
    read_colour,
)
from scripts.stress_negatives import (
    NEGATIVE_FAMILIES,
    PoolPicture,
    low_information,
    make_negatives,
    most_alike,
    pool_size,
    shared_background,
    shared_frame,
)
from scripts.stress_sources import PYSIOGAME, index_pictures
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


# --------------------------------------------------------------------------------------------
# issue 15: the new families and the hard negatives


ISSUE15_FAMILIES = ("meme", "stickers", "bigcaption", "biglogo", "bigwatermark", "wideframe",
                    "colourfilter", "decolour", "lowjpeg", "lowwebp")


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 30


@pytest.mark.parametrize("family", ISSUE15_FAMILIES)
def test_issue15_families_are_registered(family: str) -> None:
    assert family in FAMILIES


def test_meme_changes_top_and_bottom_not_the_middle() -> None:
    img = artwork(300, 300)
    for seed in range(6):
        out, name = EDITS["meme"](img, np.random.default_rng(seed))
        assert families(name) == ["meme"]
        if name.startswith("meme_outside"):
            assert out.shape[0] > img.shape[0] and out.shape[1] == img.shape[1]
            continue
        diff = _changed(out, img)
        rows = np.asarray(diff.any(axis=1))
        assert rows[: 300 // 5].any() and rows[-300 // 5 :].any()  # both bands drawn
        assert not rows[int(0.3 * 300) : int(0.7 * 300)].any()  # the middle untouched


def test_stickers_are_several_separate_regions() -> None:
    img = np.full((400, 400, 3), 90, np.uint8)
    for seed in range(5):
        out, name = EDITS["stickers"](img, np.random.default_rng(seed))
        count = int(name.split("_")[1])
        assert 3 <= count <= 5
        regions, _ = cv2.connectedComponents(_changed(out, img).astype(np.uint8))
        assert regions - 1 == count  # one component each: none touch


def test_bigcaption_and_biglogo_are_larger_than_the_dev_families() -> None:
    img = np.full((400, 400, 3), 90, np.uint8)
    for seed in range(5):
        big, _ = EDITS["biglogo"](img, np.random.default_rng(seed))
        small, _ = EDITS["logo"](img, np.random.default_rng(seed))
        assert _changed(big, img).sum() > _changed(small, img).sum()
        caption, name = EDITS["bigcaption"](img, np.random.default_rng(seed))
        assert int(name.rsplit("_h", 1)[1].removesuffix("pct")) >= 14
        assert _changed(caption, img).any()


def test_wideframe_is_wider_than_a_quarter_of_the_side() -> None:
    img = artwork(200, 300)
    for seed in range(8):
        out, name = EDITS["wideframe"](img, np.random.default_rng(seed))
        assert families(name) == ["wideframe"]
        added_h, added_w = out.shape[0] - 200, out.shape[1] - 300
        assert added_h >= 0.25 * 200 and added_w >= 0.25 * 200 * 0.9


def test_colour_filters_keep_structure_and_decolour_drops_colour() -> None:
    img = artwork(120, 160)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    for seed in range(8):
        out, name = EDITS["colourfilter"](img, np.random.default_rng(seed))
        assert families(name) == ["colourfilter"] and out.shape == img.shape
        flat, _ = EDITS["decolour"](img, np.random.default_rng(seed))
        hsv = cv2.cvtColor(flat, cv2.COLOR_BGR2HSV)
        assert float(hsv[..., 1].mean()) < 40  # (almost) no colour left
        g = cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY).astype(np.float32)
        assert np.corrcoef(g.ravel(), grey.ravel())[0, 1] > 0.3  # the picture is still there


@pytest.mark.parametrize("family", ("lowjpeg", "lowwebp"))
def test_low_quality_at_most_25_and_half_size(family: str) -> None:
    img = artwork(400, 600)
    sizes = set()
    for seed in range(10):
        data, _, transform = make_variant(img, [family], np.random.default_rng(seed))
        quality = int(transform.split("_q")[1].split("_")[0])
        assert 8 <= quality <= 25
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None
        assert decoded.shape[:2] == ((200, 300) if transform.endswith("_half") else (400, 600))
        sizes.add(decoded.shape[:2])
    assert len(sizes) == 2  # both full-size and halved copies occur


def _many_originals(tmp_path: Path, count: int) -> Path:
    src = tmp_path / "many"
    (src / "images").mkdir(parents=True)
    lines = ["path,group_id,kind,transform,source"]
    for k in range(count):
        rng = np.random.default_rng(k)
        img = np.full((160, 160, 3), 255, np.uint8)
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        cv2.circle(img, (int(rng.integers(50, 110)), int(rng.integers(50, 110))),
                   int(rng.integers(20, 45)), colour, -1)
        cv2.rectangle(img, (10, 120), (int(rng.integers(40, 150)), 150), colour[::-1], -1)
        cv2.imwrite(str(src / "images" / f"o{k}.png"), img)
        lines.append(f"images/o{k}.png,S{k:03d},original,none,gen:o{k}")
    (src / "manifest.csv").write_text("\n".join(lines) + "\n")
    return src / "manifest.csv"


def test_negative_pairs_are_disjoint_from_originals_and_split_together(tmp_path: Path) -> None:
    pairs = 2
    source = _many_originals(tmp_path, pool_size(pairs) + 6)
    rows = build(source, tmp_path / "out", seed=1, per_original=1, negative_pairs=pairs)
    negatives = [r for r in rows if "family=neg_" in r.transform]
    for fam in NEGATIVE_FAMILIES:
        # a grayscale pair is one negative row beside a true grayscale variant of an original
        wanted = pairs if fam == "neg_grayscale_style" else 2 * pairs
        assert sum(f"family={fam}" in r.transform for r in negatives) == wanted
    originals = {r.group_id for r in rows if r.kind == "original"}
    assert len(originals) == 6  # the pool's pictures are not originals any more
    pool_sources = {r.source for r in negatives}
    assert not pool_sources & {r.source for r in rows if r.kind == "original"}
    # every grayscale negative sits beside an original that has a grayscale variant
    for r in negatives:
        if "neg_grayscale_style" in r.transform:
            target = r.transform.split("hard_negative_of=")[1].split(";")[0]
            assert target in originals
            assert any(v.group_id == target and v.transform == "grayscale" for v in rows)
    eval_rows = read_manifest(tmp_path / "out" / "manifest.csv")
    split = {r.path.name: r.split_group for r in eval_rows}
    for r in negatives:
        if "hard_negative_of=" in r.transform:
            partner = r.transform.split("hard_negative_of=")[1].split(";")[0]
            assert split[Path(r.path).name] == partner


def test_negative_builders() -> None:
    rng = np.random.default_rng(0)
    one = PoolPicture("A", "gen:a", artwork(200, 200))
    two = PoolPicture("B", "gen:b", cv2.flip(artwork(200, 200), 0))
    bg = PoolPicture("C", "gen:c", np.full((300, 400, 3), 60, np.uint8))
    a, b = shared_background(bg, one, two, rng)
    assert a.shape == b.shape and (_changed(a, b).mean() < 0.5) and _changed(a, b).any()
    a, b = shared_frame(one, two, rng)
    assert a.shape == b.shape
    edge = np.zeros(a.shape[:2], bool)
    edge[:20], edge[-20:], edge[:, :20], edge[:, -20:] = True, True, True, True
    assert not _changed(a, b)[edge].any()  # one and the same frame
    disk = low_information(one, "disk", "transparent", 256, rng)
    assert disk.shape == (256, 256, 4) and disk[0, 0, 3] == 0 and disk[128, 128, 3] == 255
    assert int(disk[..., :3].max()) < 80  # dark
    sil = low_information(one, "silhouette", "white", 256, rng)
    assert sil.shape == (256, 256, 3)
    pool = [two, bg, PoolPicture("D", "gen:d", artwork(200, 200))]
    assert most_alike(cv2.cvtColor(artwork(200, 200), cv2.COLOR_BGR2GRAY), pool) == 2
    with pytest.raises(ValueError, match="pool pictures"):
        make_negatives(pool, pool, 1, rng)


def test_read_colour_composites_alpha_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (0, 0, 255, 255)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgba)
    img = read_colour(path)
    assert img.shape == (20, 20, 3)
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[10, 10]) == (0, 0, 255)


def test_source_index_drops_small_flat_and_near_copies(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "b").mkdir()
    big = artwork(200, 260)
    cv2.imwrite(str(tree / "a" / "one.png"), big)
    cv2.imwrite(str(tree / "b" / "one_small.jpg"), cv2.resize(big, (195, 150)))  # near copy
    cv2.imwrite(str(tree / "a" / "other.png"), cv2.flip(big, -1))
    cv2.imwrite(str(tree / "a" / "icon.png"), artwork(64, 64))  # too small
    cv2.imwrite(str(tree / "b" / "flat.png"), np.full((200, 200, 3), 77, np.uint8))
    spec = dataclasses.replace(PYSIOGAME, subdirs=("a", "b"))
    root = tmp_path / "root"
    assert index_pictures(spec, tree, root, "deb:x=1:/t", limit=10) == 2
    rows = list(csv.DictReader((root / "manifest.csv").open(newline="")))
    assert {r["kind"] for r in rows} == {"original"}
    assert len({r["group_id"] for r in rows}) == 2
    assert all((root / r["path"]).is_file() for r in rows)
    assert index_pictures(spec, tree, tmp_path / "one", "deb:x=1:/t", limit=1) == 1
    without = dataclasses.replace(spec, excluded=frozenset({"a/other.png"}))
    assert index_pictures(without, tree, tmp_path / "two", "deb:x=1:/t", limit=10) == 1
