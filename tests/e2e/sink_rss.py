"""The sinks' memory and CPU per stored image, measured on the real stack without a worker.

Uploads are published as usual; the decisions that store them are written straight to the
decisions topic, so the two sinks run at their own pace (hundreds of images a second) and
nothing else on the box competes for the figures. RSS is read from ``/proc`` after a warm-up
share of the images and at the end: its growth over the remaining images is what a sink keeps
per image it has handled. ``--checkout`` runs the sinks of another checkout (a ``git
worktree`` of an older commit) for a before/after comparison on the same images.

    flock /tmp/picnix-stack.lock .venv/bin/python -m tests.e2e.sink_rss \\
        ~/.cache/picnix/datasets/openclipart/images --images 1500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.kafka_clients import reliable_producer
from infra.pipeline import SINK_MALLOC_ENV, SINKS
from infra.settings import Settings
from infra.stack.process import http_get, running_pid, start_detached, stop_service, tcp_open
from producers.publisher import PublishedUpload, UploadPublisher, build_upload
from producers.replay import IMAGE_SUFFIXES
from schemas.events import DecisionEvent, DecisionInfo, ImageInfo, PostInfo, UploadRef
from sinks.report import DrainProbe, StagePosition
from stream_processors.engine.decision import DecisionKind
from stream_processors.engine.decode import sniff_format
from tests.conftest import fresh_namespace

KIB = 1024
WARMUP_SHARE = 0.2
SINK_START_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SINK_STAGES = {"postgres sink", "blob sink"}
BLOB_GROUP_SUFFIX = "-blob-sink"
BENCH_PG_SINK_PORT = 29102
BENCH_BLOB_SINK_PORT = 29103


@dataclass(frozen=True)
class SinkSample:
    rss_bytes: int
    cpu_seconds: float


def sample(pid: int) -> SinkSample:
    """VmRSS and user+system CPU of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return SinkSample(rss_kib * KIB, ticks / 100.0)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (0, 0 for other formats: the sinks only store them)."""
    if not data.startswith(PNG_SIGNATURE):
        return 0, 0
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def bench_name(component: str) -> str:
    """Pid files and logs of their own: a running pipeline's stay untouched."""
    return component.replace("picnix-", "sinkbench-")


def _start_sinks(settings: Settings, checkout: Path, malloc_env: bool) -> dict[str, int]:
    ports = [sink.metrics_port(settings) for sink in SINKS]
    busy = [port for port in ports if tcp_open("127.0.0.1", port)]
    if busy:
        raise RuntimeError(f"metrics ports {busy} are taken: stop the pipeline that runs there")
    pids = {}
    for sink in SINKS:
        env = settings.to_env()
        if malloc_env:
            env.update(SINK_MALLOC_ENV)
        argv = [sys.executable, "-m", "infra.cli", *sink.args]
        pids[sink.name] = start_detached(settings, bench_name(sink.name), argv, env=env,
                                         cwd=checkout)
    deadline = time.monotonic() + SINK_START_SECONDS
    for sink in SINKS:
        port = sink.metrics_port(settings)
        while http_get(f"http://127.0.0.1:{port}/metrics")[0] != 200:
            if running_pid(settings, bench_name(sink.name), sink.marker) is None:
                raise RuntimeError(f"{sink.name} exited; see its log {bench_name(sink.name)}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sink.name} metrics :{port} not answering")
            time.sleep(POLL_SECONDS)
    return pids


async def _publish_uploads(settings: Settings, images: list[bytes]) -> list[PublishedUpload]:
    async with UploadPublisher(settings) as publisher:
        return list(await asyncio.gather(*(
            publisher.publish(build_upload(f"rss-{i}", "bench", f"rss-{i}", data,
                                           settings.max_image_bytes))
            for i, data in enumerate(images)
        )))


async def _publish_decisions(
    settings: Settings, uploads: list[PublishedUpload], images: list[bytes], first_seq: int
) -> None:
    producer = reliable_producer(settings, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for seq, (upload, data) in enumerate(zip(uploads, images, strict=True), first_seq):
            width, height = png_size(data)
            event = DecisionEvent(
                upload_id=upload.upload_id,
                decision=DecisionInfo(DecisionKind.NEW_CLUSTER.value, upload.upload_id,
                                      upload.upload_id, None, "sink-rss"),
                post=PostInfo("bench", upload.upload_id, "", "2026-12-02T00:00:00+00:00"),
                image=ImageInfo(hashlib.sha256(data).hexdigest(), len(data), width, height,
                                sniff_format(data)),
                upload_ref=UploadRef(settings.topic_uploads, upload.partition, upload.offset),
                seq=seq,
            )
            sends.append(await producer.send(settings.topic_decisions, event.to_record(),
                                             key=upload.upload_id.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _wait_sinks(settings: Settings, blob_group: str | None) -> list[StagePosition]:
    if blob_group:  # an older checkout's sink: its group is not yet named after the namespace
        settings = dataclasses.replace(
            settings, faust_app_id=blob_group.removesuffix(BLOB_GROUP_SUFFIX)
        )
    probe = DrainProbe(settings)
    await probe.start()
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while True:
            sinks = [p for p in await probe.positions() if p.stage in SINK_STAGES]
            if not any(p.behind for p in sinks):
                return sinks
            if time.monotonic() > deadline:
                raise AssertionError(f"sinks did not drain: {sinks}")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await probe.close()


def measure(
    base: Settings, images: list[bytes], checkout: Path, malloc_env: bool = True,
    blob_group: str | None = None,
) -> dict[str, object]:
    """RSS growth and CPU per stored image of each sink, after a warm-up share."""
    warm = max(int(len(images) * WARMUP_SHARE), 1)
    # ports of their own: a pipeline running on the default ones stays untouched
    ports = dataclasses.replace(base, metrics_port_pg_sink=BENCH_PG_SINK_PORT,
                                metrics_port_blob_sink=BENCH_BLOB_SINK_PORT)
    with fresh_namespace(ports) as settings:
        uploads = asyncio.run(_publish_uploads(settings, images))
        pids = _start_sinks(settings, checkout, malloc_env)
        try:
            asyncio.run(_publish_decisions(settings, uploads[:warm], images[:warm], 0))
            asyncio.run(_wait_sinks(settings, blob_group))
            before = {name: sample(pid) for name, pid in pids.items()}
            started = time.monotonic()
            asyncio.run(_publish_decisions(settings, uploads[warm:], images[warm:], warm))
            asyncio.run(_wait_sinks(settings, blob_group))
            seconds = time.monotonic() - started
            after = {name: sample(pid) for name, pid in pids.items()}
        finally:
            for sink in SINKS:
                stop_service(settings, bench_name(sink.name), sink.marker)
    measured = len(images) - warm
    return {
        "images": len(images),
        "measured": measured,
        "image_bytes_mean": sum(map(len, images[warm:])) // max(measured, 1),
        "checkout": str(checkout),
        "malloc_env": malloc_env,
        "seconds": round(seconds, 1),
        "sinks": {
            name: {
                "rss_start_bytes": before[name].rss_bytes,
                "rss_end_bytes": after[name].rss_bytes,
                "rss_bytes_per_stored": round(
                    (after[name].rss_bytes - before[name].rss_bytes) / measured),
                "cpu_ms_per_stored": round(
                    1000 * (after[name].cpu_seconds - before[name].cpu_seconds) / measured, 2),
            }
            for name in pids
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of images (searched recursively)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--checkout", type=Path, default=Path.cwd())
    parser.add_argument("--no-malloc-env", action="store_true")
    parser.add_argument("--blob-group", help="the blob sink's consumer group, if fixed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    paths = paths[: args.images]
    result = measure(Settings.from_env(), [p.read_bytes() for p in paths], args.checkout,
                     malloc_env=not args.no_malloc_env, blob_group=args.blob_group)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
