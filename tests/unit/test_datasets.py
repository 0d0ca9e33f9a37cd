"""`picnix dataset fetch`: the manifest of an unpacked package and the fetch's idempotence.

No network: the apt and dpkg commands are replaced by a fake that writes a tiny package tree of
generated PNGs, so the test checks what the fetch does with what apt hands back.
"""

from __future__ import annotations

import csv
import dataclasses
import subprocess
from pathlib import Path

import pytest

from infra.settings import Settings
from producers.replay import discover
from scripts.datasets import (
    MANIFEST_NAME,
    MARKER_NAME,
    OPENCLIPART,
    DatasetError,
    derive_authors,
    fetch,
    write_manifest,
)
from tests.imagegen import distinct_png

VERSION = "1:0.18+dfsg-19"
AUTHOR_FILES = (
    "animals/acquila_architetto_franc_01.png",
    "animals/birds/cigno_architetto_fra_01.png",
    "buildings/casa_architetto_francesco_02.png",
)
OTHER_FILES = ("unsorted/preverror.png", "unsorted/star_71pt16step.png")


def _write_tree(images: Path) -> None:
    for seed, rel in enumerate(AUTHOR_FILES + OTHER_FILES):
        path = images / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(distinct_png(seed))
    (images / "unsorted" / "README.txt").write_text("not an image")


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_paths_authors_titles(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _write_tree(images)
    count = write_manifest(tmp_path, images, "deb:pkg=1:/usr/share/png")
    rows = _rows(tmp_path / MANIFEST_NAME)
    assert count == len(rows) == len(AUTHOR_FILES) + len(OTHER_FILES)
    assert [r["path"] for r in rows] == sorted(f"images/{f}" for f in AUTHOR_FILES + OTHER_FILES)
    by_path = {r["path"]: r for r in rows}
    casa = by_path["images/buildings/casa_architetto_francesco_02.png"]
    # one author, whatever the truncation, named by its longest spelling
    assert {by_path[f"images/{f}"]["author"] for f in AUTHOR_FILES} == {"architetto_francesco"}
    assert casa["title"] == "casa"
    assert casa["category"] == "buildings"
    assert casa["source"] == "deb:pkg=1:/usr/share/png/buildings/casa_architetto_francesco_02.png"
    star = by_path["images/unsorted/star_71pt16step.png"]
    assert star["author"] == "openclipart"
    assert star["title"] == "star 71pt16step"
    # replay takes the manifest as any other: paths resolve, authors and titles carried
    items = discover(tmp_path / MANIFEST_NAME)
    assert all(item.path.is_file() for item in items)
    assert {item.author for item in items} == {"architetto_francesco", "openclipart"}


def test_a_common_last_word_is_no_author() -> None:
    names = [["red", "icon"], ["blue", "icon"], ["green", "icon"], ["big", "red", "icon"]]
    assert derive_authors(names) == {}


class FakeApt:
    """apt-cache/apt-get/dpkg-deb as the fetch calls them, on a generated package tree."""

    def __init__(self, *, candidate: str = VERSION, fail_unpack: bool = False) -> None:
        self.candidate = candidate
        self.fail_unpack = fail_unpack
        self.calls: list[str] = []

    def __call__(self, argv: list[str], cwd: Path | None = None, **_: object) -> (
        subprocess.CompletedProcess[str]
    ):
        self.calls.append(" ".join(argv[:2]))
        out, code = "", 0
        if argv[:2] == ["apt-cache", "policy"]:
            out = f"{argv[2]}:\n  Installed: (none)\n  Candidate: {self.candidate}\n"
        elif argv[:2] == ["apt-get", "update"]:
            self.candidate = VERSION
        elif argv[:2] == ["apt-get", "download"]:
            assert cwd is not None
            (cwd / "openclipart-png_0.18_all.deb").write_bytes(b"!<arch>\n")
        elif argv[:2] == ["dpkg-deb", "-x"]:
            if self.fail_unpack:
                return subprocess.CompletedProcess(argv, 2, "", "dpkg-deb: corrupt archive")
            _write_tree(Path(argv[3]) / OPENCLIPART.image_root)
        else:
            raise AssertionError(f"unexpected command {argv}")
        return subprocess.CompletedProcess(argv, code, out, "")


def test_fetch_is_idempotent_and_redoes_a_half_finished_one(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path)
    with pytest.raises(DatasetError, match="corrupt archive"):
        fetch(settings, "openclipart", run=FakeApt(fail_unpack=True))
    root = tmp_path / "datasets" / "openclipart"
    assert not (root / MARKER_NAME).exists()

    apt = FakeApt(candidate="(none)")  # apt's lists are empty until apt-get update
    first = fetch(settings, "openclipart", run=apt)
    assert not first.reused
    assert first.count == len(AUTHOR_FILES) + len(OTHER_FILES)
    assert first.version == VERSION
    assert "apt-get update" in apt.calls
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["images", MANIFEST_NAME, MARKER_NAME]
    )

    again = FakeApt()
    second = fetch(settings, "openclipart", run=again)
    assert second.reused and second.count == first.count
    assert again.calls == []  # nothing downloaded the second time

    (root / MARKER_NAME).unlink()  # as if the last fetch stopped before it was complete
    third = fetch(settings, "openclipart", run=FakeApt())
    assert not third.reused and third.count == first.count


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        fetch(dataclasses.replace(Settings(), home=tmp_path), "nope", run=FakeApt())
