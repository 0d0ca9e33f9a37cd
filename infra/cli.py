"""`picnix`: one command line for the stack, the pipeline, replays, reports and evaluation."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.settings import Settings, get_settings

log = logging.getLogger("picnix")


def _cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from infra.pipeline import pipeline_down
    from infra.stack import manager

    if args.action == "up":
        statuses = manager.stack_up(settings)
    elif args.action == "status":
        statuses = manager.stack_status(settings)
    elif args.action == "down":
        pipeline_down(settings)
        manager.stack_down(settings)
        print("stack stopped (data kept)")
        return 0
    else:
        pipeline_down(settings)
        manager.stack_reset(settings)
        print("stack stopped and data wiped (caches kept)")
        return 0
    for st in statuses:
        health = "healthy" if st.healthy else "DOWN"
        print(f"{st.name:<12} {health:<8} {st.endpoint:<40} {st.detail}")
    return 0 if all(st.healthy for st in statuses) else 1


def _cmd_pipeline(args: argparse.Namespace, settings: Settings) -> int:
    from infra.pipeline import PipelineError, pipeline_down, pipeline_status, pipeline_up

    if args.action == "up":
        try:
            started = pipeline_up(settings, workers=args.workers)
        except PipelineError as exc:
            print(f"pipeline up failed: {exc}", file=sys.stderr)
            return 1
        print("started:", ", ".join(started) or "nothing (all running)", "- all consuming")
    elif args.action == "down":
        print("stopped:", ", ".join(pipeline_down(settings)) or "nothing was running")
    else:
        statuses = pipeline_status(settings)
        for st in statuses:
            state = f"running pid {st.pid}" if st.pid else "DOWN"
            print(f"{st.name:<18} {state:<18} {st.detail}")
        return 0 if all(st.up for st in statuses) else 1
    return 0


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.migrate import migrate

    applied = migrate(settings.pg_dsn)
    print("applied:", ", ".join(applied) if applied else "nothing (up to date)")
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import discover, replay
    from sinks.report import build_report, nothing_consumes, wait_drained

    reason = nothing_consumes(settings, drain=args.wait or args.report)
    if reason:
        print(f"replay refused: {reason}", file=sys.stderr)
        return 1
    items = discover(Path(args.path), args.author)
    if args.limit:
        items = items[: args.limit]
    _serve_metrics(settings, settings.metrics_port_replay, required=False)
    summary = asyncio.run(replay(settings, items, rate=args.rate))
    print(summary.render())
    drain = args.wait or args.report
    if drain and wait_drained(settings, summary.upload_ids, idle_timeout=args.idle_timeout):
        return 1  # wait_drained has said which stage stopped moving
    if args.report:
        print(build_report(settings).render(settings, uploads=summary.published))
    return 0


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.report import build_report

    print(build_report(settings).render(settings))
    return 0


def _cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.dead_letters_view import read_dead_letters

    events = read_dead_letters(settings)
    for e in events:
        where = f"{e.source.topic}/{e.source.partition}@{e.source.offset}"
        upload = e.upload_id or "-"
        print(f"{e.failed_at}  {where:<26} {e.stage:<8} {e.reason:<22} {upload}  {e.detail}")
    print(f"{len(events)} dead letters")
    return 0


def _cmd_post(args: argparse.Namespace, settings: Settings) -> int:
    from producers.publisher import UploadPublisher

    async def send() -> None:
        async with UploadPublisher(settings) as publisher:
            if args.action == "delete":
                await publisher.delete_post(args.post_id)
            else:
                await publisher.update_post(args.post_id, args.title, args.description)

    asyncio.run(send())
    print(f"{args.action} of post {args.post_id} published")
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from web.server import serve

    if args.host:
        settings = dataclasses.replace(settings, http_host=args.host)
    if args.port:
        settings = dataclasses.replace(settings, http_port=args.port)
    serve(settings, log_level=args.loglevel)
    return 0


def _cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from web.keys import Role, create_key

    try:
        new = create_key(settings.pg_dsn, args.name, Role(args.role))
    except ValueError as exc:
        print(f"keys create refused: {exc}", file=sys.stderr)
        return 1
    print(f"{new.key.role.value} key {new.key.key_id} for {new.key.name!r} (shown once, only its "
          "hash is stored):")
    print(new.plaintext)
    return 0


def _serve_metrics(settings: Settings, port: int, required: bool = True) -> None:
    """Expose this process's metrics; a replay may run beside another and then goes without."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        if required:
            raise
        log.warning("metrics port %d unavailable (%s): this run is not scraped", port, exc)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from infra.readiness import set_ready
    from infra.worker_state import ensure_worker_state
    from stream_processors.app import create_app

    if args.index is not None:
        settings = dataclasses.replace(settings, worker_index=args.index)
    _serve_metrics(settings, settings.worker_metrics_port)
    set_ready(False)
    ensure_worker_state(settings)  # state ahead of its log is dropped, not a crash in recovery
    app = create_app(dataclasses.replace(settings, faust_web_port=settings.worker_web_port))

    # ready once recovery is done and the agents consume; not ready while a rebalance moves them
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a union
    def _rebalancing(sender: Any, *_args: Any, signal: Any, **kwargs: Any) -> None:
        set_ready(False)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types a union
    def _consuming(sender: Any, *_args: Any, signal: Any, **kwargs: Any) -> None:
        set_ready(True)

    sys.argv = ["picnix-worker", "worker", "--loglevel", args.loglevel]
    app.main()
    return 0


def _cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.blob_sink import BlobSink
    from sinks.pg_sink import PostgresSink

    if args.kind == "postgres":
        _serve_metrics(settings, settings.metrics_port_pg_sink)
        runner: Callable[[asyncio.Event], object] = PostgresSink(settings).run
    else:
        _serve_metrics(settings, settings.metrics_port_blob_sink)
        runner = BlobSink(settings).run

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner(stop)  # type: ignore[misc]

    asyncio.run(main())
    return 0


def _cmd_dataset(args: argparse.Namespace, settings: Settings) -> int:
    from scripts.datasets import fetch

    dataset = fetch(settings, args.name)
    state = "reused" if dataset.reused else "fetched"
    print(f"{dataset.name}: {dataset.count} images ({state}, version {dataset.version})")
    print(f"manifest: {dataset.manifest}")
    return 0


def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from scripts.evaluate import main as evaluate_main

    return evaluate_main(args.rest)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from infra.pipeline import pipeline_up
    from infra.stack.manager import stack_up
    from scripts.make_sample_dataset import build_sample_dataset
    from sinks.migrate import migrate
    from web.keys import Role, create_key

    for st in stack_up(settings):
        print(f"{st.name:<12} {'healthy' if st.healthy else 'DOWN':<8} {st.endpoint}")
    migrate(settings.pg_dsn)
    dataset = build_sample_dataset(settings.data_dir / "sample-dataset")
    print(f"sample dataset: {dataset.count} images in {dataset.root}")
    pipeline_up(settings)
    replay_args = argparse.Namespace(
        path=str(dataset.root), author=None, limit=0, rate=None, wait=True, report=True,
        idle_timeout=args.idle_timeout,
    )
    code = _cmd_replay(replay_args, settings)
    operator = create_key(settings.pg_dsn, "demo-operator", Role.OPERATOR)
    print(f"\nweb page      {settings.http_url}/  (sign in with the operator key below)")
    print(f"HTTP API      {settings.http_url}  (schema: {settings.http_url}/openapi.json)")
    print(f"operator key  {operator.plaintext}  (shown once; make more with `picnix keys create`)")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picnix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stack", help="the local services: Kafka, PostgreSQL, MinIO, Prometheus")
    p.add_argument("action", choices=["up", "down", "status", "reset"])
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("pipeline", help="PicNix's own processes: workers, sinks, API server")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--workers", type=int, help="Faust worker processes (default: one per core)")
    p.set_defaults(func=_cmd_pipeline)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["migrate"])
    p.set_defaults(func=_cmd_db)

    p = sub.add_parser("replay", help="publish a folder or manifest CSV of images as uploads")
    p.add_argument("path")
    p.add_argument("--author", help="author of every upload (default: first sub-folder)")
    p.add_argument("--limit", type=int, default=0, help="publish at most this many")
    p.add_argument("--rate", type=float, help="uploads per second (default: as fast as possible)")
    p.add_argument("--wait", action="store_true", help="wait until the pipeline has drained")
    p.add_argument("--report", action="store_true", help="wait, then print the dedup report")
    p.add_argument("--idle-timeout", type=float, default=120.0)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("report", help="print the dedup report")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("dlq", help="the dead-letter topic")
    p.add_argument("action", choices=["list"])
    p.set_defaults(func=_cmd_dlq)

    p = sub.add_parser("post", help="update or delete a post (events through Kafka)")
    post = p.add_subparsers(dest="action", required=True)
    update = post.add_parser("update")
    update.add_argument("post_id")
    update.add_argument("--title", required=True)
    update.add_argument("--description", default="")
    delete = post.add_parser("delete")
    delete.add_argument("post_id")
    p.set_defaults(func=_cmd_post)

    p = sub.add_parser("serve", help="run the HTTP API server in the foreground")
    p.add_argument("--host", help="bind address (default: settings.http_host)")
    p.add_argument("--port", type=int, help="port (default: settings.http_port)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("keys", help="API keys (the plaintext is printed once)")
    keys = p.add_subparsers(dest="action", required=True)
    create = keys.add_parser("create")
    create.add_argument("name", help="the platform (or operator) the key belongs to")
    create.add_argument("--role", choices=["platform", "operator"], default="platform")
    p.set_defaults(func=_cmd_keys)

    p = sub.add_parser("worker", help="run the Faust worker (extract, match, commit)")
    p.add_argument("--loglevel", default="info")
    p.add_argument(
        "--index", type=int, default=None,
        help="which of the W workers (datadir, ports); default PICNIX_WORKER_INDEX",
    )
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("sink", help="run a sink")
    p.add_argument("kind", choices=["postgres", "blob"])
    p.set_defaults(func=_cmd_sink)

    p = sub.add_parser("dataset", help="fetch a crawl to replay into the cache (unlabelled)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("name", choices=["openclipart"])
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser("eval", help="evaluate the engine on a manifest", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="stack up, sample dataset, replay, report")
    p.add_argument("--idle-timeout", type=float, default=180.0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args, get_settings()))


if __name__ == "__main__":
    sys.exit(main())
