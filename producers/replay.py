"""Replay a crawled dataset (a folder or a manifest CSV) into ``picnix.uploads``.

Upload ids are derived from the file's relative path and content, so replaying the same dataset
twice produces the same ids and the pipeline's idempotence makes the second replay a no-op.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from infra.settings import Settings
from producers import metrics
from producers.publisher import PublishedUpload, UploadPublisher, UploadRefused, build_upload

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
UPLOAD_ID_NAMESPACE = uuid.UUID("6f1c2d4e-9a55-4e8b-8a57-0d1f3c0b7a11")
IN_FLIGHT = 32
DEFAULT_AUTHOR = "anonymous"


@dataclass(frozen=True)
class ReplayItem:
    path: Path
    relative: str
    author: str
    title: str


@dataclass
class ReplaySummary:
    published: int = 0
    bytes_published: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    upload_ids: list[str] = field(default_factory=list)

    def render(self) -> str:
        rate = self.published / self.seconds if self.seconds else 0.0
        lines = [
            f"published {self.published} uploads ({self.bytes_published / 1e6:.1f} MB) "
            f"in {self.seconds:.1f} s ({rate:.0f}/s)"
        ]
        for reason, count in sorted(self.refused.items()):
            lines.append(f"refused {count} ({reason})")
        return "\n".join(lines)


def upload_id_for(relative: str, data: bytes) -> str:
    return str(uuid.uuid5(UPLOAD_ID_NAMESPACE, f"{relative}:{hashlib.sha256(data).hexdigest()}"))


def discover(source: Path, author: str | None = None) -> list[ReplayItem]:
    """A folder (recursive, image suffixes) or a manifest CSV with a ``path`` column."""
    if source.is_dir():
        return list(_walk_folder(source, author))
    if source.suffix.lower() == ".csv":
        return list(_read_manifest(source, author))
    raise FileNotFoundError(f"{source}: neither a folder nor a manifest .csv")


def _walk_folder(root: Path, author: str | None) -> Iterator[ReplayItem]:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        relative = path.relative_to(root).as_posix()
        parts = Path(relative).parts
        owner = author or (parts[0] if len(parts) > 1 else DEFAULT_AUTHOR)
        yield ReplayItem(path, relative, owner, path.stem)


def _read_manifest(manifest: Path, author: str | None) -> Iterator[ReplayItem]:
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ValueError(f"{manifest}: a manifest needs a 'path' column")
        for row in reader:
            relative = row["path"]
            owner = author or row.get("author") or _author_from_source(row.get("source", ""))
            title = row.get("title") or Path(relative).stem
            yield ReplayItem(manifest.parent / relative, relative, owner, title)


def _author_from_source(source: str) -> str:
    """``github:owner/repo@sha:file`` → ``github:owner``: the uploader a crawl can attribute."""
    if not source:
        return DEFAULT_AUTHOR
    head = source.split("@", 1)[0]
    return head.split("/", 1)[0] or DEFAULT_AUTHOR


async def replay(
    settings: Settings,
    items: list[ReplayItem],
    progress: TextIO | None = sys.stderr,
    rate: float | None = None,
    in_flight: int = IN_FLIGHT,
) -> ReplaySummary:
    """Publish every item; ``rate`` (uploads per second) paces a replay like live traffic.

    ``in_flight`` bounds unacknowledged sends. With 1, uploads reach each partition in file
    order even when a send is retried after a broker outage, so decisions are reproducible.
    """
    summary = ReplaySummary()
    started = time.perf_counter()
    pending: set[asyncio.Task[PublishedUpload]] = set()
    async with UploadPublisher(settings) as publisher:
        for index, item in enumerate(items, 1):
            if rate:
                await asyncio.sleep(max(0.0, started + (index - 1) / rate - time.perf_counter()))
            data = item.path.read_bytes()
            try:
                upload = build_upload(
                    upload_id_for(item.relative, data), item.author, item.title, data,
                    settings.max_image_bytes, filename=item.relative,
                )
            except UploadRefused as exc:
                summary.refused[exc.reason] += 1
                metrics.REFUSED.labels(reason=exc.reason).inc()
                if progress:
                    print(f"\nrefused {exc}", file=progress)
                continue
            pending.add(asyncio.create_task(publisher.publish(upload)))
            summary.upload_ids.append(upload.upload_id)
            summary.bytes_published += len(data)
            if len(pending) >= in_flight:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failed send stops the replay with its error
            if progress:
                _draw(progress, index, len(items))
        await asyncio.gather(*pending)
    summary.published = len(summary.upload_ids)
    summary.seconds = time.perf_counter() - started
    if progress:
        print(file=progress)
    return summary


def _draw(out: TextIO, done: int, total: int, width: int = 30) -> None:
    """Redraw in place on a terminal; in a log, one line per tenth of the way."""
    filled = width * done // max(total, 1)
    bar = f"replay [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if out.isatty():
        out.write("\r" + bar)
        out.flush()
    elif done == total or done % max(total // 10, 1) == 0:
        print(bar, file=out)
