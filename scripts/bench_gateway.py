"""Benchmark: the upload gateway on loopback, beside a bare uvicorn hello-world:
`python scripts/bench_gateway.py --json`.

What a platform integrating PicNix meets first is ``POST /v1/uploads``: how many 50 KB uploads a
second it accepts and how long each waits for its 202 (validation, the Idempotency-Key row in
Postgres, the publish with acks=all). A hello-world on uvicorn, on the same box, sent the same
bodies by the same client, is the floor that loopback HTTP, uvicorn and a Python client set on
this machine; the gap between the two is what the gateway itself costs.

Setup: the stack (started when not up) and a namespace of the benchmark's own (topics and a
database named ``picnix-bench-gw-<tag>``), on which it starts ``picnix serve`` on a free port
with a fresh platform key (``web.keys.create_key``, what ``picnix keys create`` runs), and which
it drops after. No pipeline consumes that namespace: this measures accepting, not deciding. The
per-key rate limit is raised out of the way, since it is a policy and not the gateway's capacity.

Load: ``--count`` distinct photo-like JPEGs of about ``--image-kb`` KB (smooth shading, shapes,
sensor-like noise; each with a patch of its own, so no two share bytes), framed as multipart
bodies before timing so the client spends its CPU on HTTP only. ``--concurrency`` requests stay
in flight from one ``httpx.AsyncClient``; each upload carries an Idempotency-Key of its own, as a
platform sends it. ``--warmup`` requests go first, untimed. ``uploads_per_s`` is the 202s over
the timed phase's wall time; ``p50_ms``/``p99_ms`` are per request, send to full response, of
the accepted ones; any other answer counts in ``errors`` by status.

CPU: utime+stime of the server process from ``/proc/<pid>/stat`` over the timed phase, per
accepted upload (``server_cpu_ms_per_upload``), and the client's own from ``os.times()``
(``client_cpu_ms_per_request``): on a small box the client competes with the server for cores.
``stack_cpu_ms_per_upload`` is the broker's and Postgres's share over the same phase (process
trees from the stack's pid files, as ``bench_pipeline`` samples them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import httpx
import numpy as np

from infra.namespaces import drop_namespace, free_port, namespaced
from infra.settings import Settings, get_settings
from infra.stack.manager import stack_up
from infra.stack.postgres import Postgres
from infra.stack.topics import ensure_topics
from scripts.bench_stats import POSTGRES_GROUP, read_proc, sample_groups
from sinks.migrate import migrate
from web.keys import Role, create_key

DEFAULT_COUNT = 2000
DEFAULT_CONCURRENCY = 16
DEFAULT_WARMUP = 100
DEFAULT_IMAGE_KB = 50
DEFAULT_SEED = 13
# 640x480 photo-like scenes land near 50 KB at JPEG quality ~85; the quality is searched per
# scene, these bound the search.
IMAGE_SIZE = (640, 480)
JPEG_QUALITIES = range(40, 96)
BASE_SCENES = 8
PATCH_PX = 16
NOISE_SIGMA = 6.0
ELLIPSES = 12
BOUNDARY = "picnix-bench-gateway-boundary"
# High enough that the token bucket never answers 429 during a run of any sensible length.
UNLIMITED_RATE_PER_MINUTE = 10**9
START_TIMEOUT_SECONDS = 90.0
START_POLL_SECONDS = 0.2
LOG_TAIL_CHARS = 3000
STOP_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 60.0
ACCEPTED = 202
HELLO_OK = 200
STACK_GROUPS = ("kafka", POSTGRES_GROUP)


@dataclass
class LoadResult:
    """One timed load phase against one server."""

    requests: int
    accepted: int
    wall_seconds: float
    latencies_ms: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    stack_cpu_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        per = max(self.accepted, 1)
        return {
            "uploads_per_s": round(self.accepted / self.wall_seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "accepted": self.accepted,
            "requests": self.requests,
            "errors": dict(self.errors),
            "wall_s": round(self.wall_seconds, 2),
            "server_cpu_ms_per_upload": round(1000 * self.server_cpu_seconds / per, 3),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_seconds / self.requests, 3),
            **({"stack_cpu_ms_per_upload": {
                group: round(1000 * seconds / per, 3)
                for group, seconds in self.stack_cpu_seconds.items()
            }} if self.stack_cpu_seconds else {}),
        }


# --- the images and bodies -------------------------------------------------------------------


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A photo-like picture: smooth shading in each channel, shapes with soft edges, noise."""
    w, h = IMAGE_SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(1.0, 3.0), rng.uniform(1.0, 3.0), rng.uniform(0, np.pi)
        img[..., c] = 128 + 60 * np.sin(x / w * np.pi * fx + phase) * np.cos(y / h * np.pi * fy)
    out = img.astype(np.uint8)
    for _ in range(ELLIPSES):
        center = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(10, 90)), int(rng.integers(10, 90)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(out, center, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1,
                    cv2.LINE_AA)
    noisy = out + rng.normal(0.0, NOISE_SIGMA, out.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {img.shape} JPEG at quality {quality}")
    return buf.tobytes()


def _quality_for(img: np.ndarray, target_bytes: int) -> int:
    """The JPEG quality whose file is closest to ``target_bytes`` (size grows with quality)."""
    lo, hi = JPEG_QUALITIES.start, JPEG_QUALITIES.stop - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_jpeg(img, mid)) < target_bytes:
            lo = mid + 1
        else:
            hi = mid
    below = max(lo - 1, JPEG_QUALITIES.start)
    return min((below, lo), key=lambda q: abs(len(_jpeg(img, q)) - target_bytes))


def make_images(count: int, target_bytes: int, seed: int) -> list[bytes]:
    """``count`` distinct JPEGs near ``target_bytes``: a few scenes, each copy with a random
    patch of its own (distinct bytes and hashes), at the scene's calibrated quality."""
    rng = np.random.default_rng(seed)
    scenes = [_scene(rng) for _ in range(min(BASE_SCENES, count))]
    qualities = [_quality_for(s, target_bytes) for s in scenes]
    images = []
    for i in range(count):
        img = scenes[i % len(scenes)].copy()
        y = int(rng.integers(0, IMAGE_SIZE[1] - PATCH_PX))
        x = int(rng.integers(0, IMAGE_SIZE[0] - PATCH_PX))
        img[y:y + PATCH_PX, x:x + PATCH_PX] = rng.integers(
            0, 256, (PATCH_PX, PATCH_PX, 3), dtype=np.uint8
        )
        images.append(_jpeg(img, qualities[i % len(scenes)]))
    return images


def multipart_body(image: bytes, author: str, title: str) -> bytes:
    """The upload form as a platform's client sends it: image, author and title parts."""
    head = "".join(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        for name, value in (("author", author), ("title", title))
    )
    file_head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
        f"filename=\"bench.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    return head.encode() + file_head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


# --- the load loop ---------------------------------------------------------------------------


async def _load(
    url: str, headers: dict[str, str], bodies: Sequence[bytes], concurrency: int,
    ok_status: int, idempotency: bool,
) -> tuple[list[float], Counter[str], float]:
    """POST every body, ``concurrency`` in flight: (latencies of the ok answers in ms, other
    answers by status or error, wall seconds)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as client:

        async def one_worker() -> None:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = dict(headers)
                if idempotency:
                    sent["Idempotency-Key"] = uuid.uuid4().hex
                started = time.perf_counter()
                try:
                    resp = await client.post(url, content=body, headers=sent)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                elapsed_ms = 1000 * (time.perf_counter() - started)
                if resp.status_code == ok_status:
                    latencies.append(elapsed_ms)
                else:
                    errors[str(resp.status_code)] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


def _client_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _server_cpu_seconds(pid: int) -> float:
    info = read_proc(pid)
    if info is None:
        raise RuntimeError(f"server process {pid} is gone: no /proc/{pid}/stat to read its CPU")
    return info.cpu_seconds


def _stack_cpu_seconds(settings: Settings | None) -> dict[str, float]:
    """CPU so far of the services an upload waits on (the broker, Postgres), by group."""
    if settings is None:
        return {}
    samples = sample_groups(settings)
    return {group: samples[group].cpu_seconds for group in STACK_GROUPS}


def run_load(
    url: str, headers: dict[str, str], bodies: Sequence[bytes], warmup: int, concurrency: int,
    server_pid: int, ok_status: int, idempotency: bool, stack: Settings | None = None,
) -> LoadResult:
    """A warm-up (untimed), then the timed phase with the server's and the client's CPU, and
    with ``stack`` that of the stack's broker and Postgres."""
    if warmup:
        asyncio.run(_load(url, headers, bodies[:warmup], concurrency, ok_status, idempotency))
    timed = bodies[warmup:]
    stack_before = _stack_cpu_seconds(stack)
    server_before, client_before = _server_cpu_seconds(server_pid), _client_cpu_seconds()
    latencies, errors, wall = asyncio.run(
        _load(url, headers, timed, concurrency, ok_status, idempotency)
    )
    return LoadResult(
        requests=len(timed), accepted=len(latencies), wall_seconds=wall,
        latencies_ms=latencies, errors=errors,
        server_cpu_seconds=_server_cpu_seconds(server_pid) - server_before,
        client_cpu_seconds=_client_cpu_seconds() - client_before,
        stack_cpu_seconds={
            group: seconds - stack_before[group]
            for group, seconds in _stack_cpu_seconds(stack).items()
        },
    )


# --- the servers -----------------------------------------------------------------------------


@contextlib.contextmanager
def running(
    argv: list[str], env: dict[str, str], probe_url: str, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, once ``probe_url`` answers 200; terminated (SIGTERM) after. Its log
    goes to a file (a pipe nobody reads would fill and stall the server), shown if it fails."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)

        def tail() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-LOG_TAIL_CHARS:]

        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{what} exited with {proc.returncode} before answering:\n{tail()}"
                    )
                try:
                    if httpx.get(probe_url, timeout=2).status_code == HELLO_OK:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not answer {probe_url} within "
                                       f"{START_TIMEOUT_SECONDS:.0f} s:\n{tail()}")
                time.sleep(START_POLL_SECONDS)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_settings(base: Settings) -> Settings:
    """A namespace of this run's own, the server on a free port, no rate limit in the way."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"picnix-bench-gw-{tag}"
    return namespaced(
        base, prefix, http_host="127.0.0.1", http_port=free_port(),
        pg_database=f"picnix_bench_gw_{tag}",
        api_rate_per_minute=UNLIMITED_RATE_PER_MINUTE, api_rate_burst=UNLIMITED_RATE_PER_MINUTE,
    )


@contextlib.contextmanager
def bench_namespace(base: Settings) -> Iterator[Settings]:
    """Topics and a migrated database for this run on the running stack, dropped after. The
    bucket is the base one: accepting an upload writes no object, and nothing here reads one."""
    settings = bench_settings(base)
    try:
        ensure_topics(settings)
        Postgres(settings).provision()
        migrate(settings.pg_dsn)
        yield settings
    finally:
        drop_namespace(settings)


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, base: Settings) -> dict[str, Any]:
    unhealthy = [s for s in stack_up(base) if not s.healthy]
    if unhealthy:
        raise RuntimeError(f"stack not healthy: {unhealthy}")
    total = args.warmup + args.count
    images = make_images(total, args.image_kb * 1024, args.seed)
    bodies = [multipart_body(img, "bench-author", f"bench upload {i}")
              for i, img in enumerate(images)]
    env = {**os.environ}
    with bench_namespace(base) as settings:
        key = create_key(settings.pg_dsn, "bench-gateway", Role.PLATFORM).plaintext
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        serve = [sys.executable, "-m", "infra.cli", "serve", "--loglevel", "warning"]
        with running(serve, {**env, **settings.to_env()}, f"{settings.http_url}/healthz",
                     "picnix serve") as server:
            gateway = run_load(
                f"{settings.http_url}/v1/uploads", headers, bodies, args.warmup,
                args.concurrency, server.pid, ACCEPTED, idempotency=True, stack=base,
            )
    port = free_port()
    hello = [sys.executable, "-m", "uvicorn", "scripts.hello_asgi:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"]
    with running(hello, env, f"http://127.0.0.1:{port}/", "uvicorn hello-world") as server:
        baseline = run_load(
            f"http://127.0.0.1:{port}/", headers, bodies, args.warmup, args.concurrency,
            server.pid, HELLO_OK, idempotency=False,
        )
    return {
        **gateway.summary(),
        "baseline": baseline.summary(),
        "image_bytes_mean": round(float(np.mean([len(i) for i in images[args.warmup:]]))),
        "count": args.count,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/bench_gateway.py",
                                description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help="timed uploads")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                   help="requests in flight")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed uploads first")
    p.add_argument("--image-kb", type=int, default=DEFAULT_IMAGE_KB)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = p.parse_args(argv)
    if args.count < 1 or args.concurrency < 1 or args.warmup < 0 or args.image_kb < 1:
        p.error("--count, --concurrency and --image-kb must be positive, --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args, get_settings())
    gw, base = result, result["baseline"]
    print(
        f"gateway: {gw['uploads_per_s']} uploads/s, p50 {gw['p50_ms']} ms, p99 {gw['p99_ms']} ms,"
        f" server CPU {gw['server_cpu_ms_per_upload']} ms/upload; hello-world: "
        f"{base['uploads_per_s']} req/s, p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms "
        f"({result['image_bytes_mean']} B images, {result['concurrency']} in flight)",
        file=sys.stderr,
    )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
