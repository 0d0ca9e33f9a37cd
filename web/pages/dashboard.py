"""The live dashboard's data: fixed PromQL panels answered by the real Prometheus's
``/api/v1/query_range``, proxied through the server.

Proxied rather than called from the browser: Prometheus listens on loopback beside the stack
and needs no CORS, and the page can only ask for the panels named here (no arbitrary PromQL
reaches Prometheus through a signed-in browser).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Path, Query

from infra.settings import Settings
from web.pages.auth import SignedInFetch
from web.problems import Problem
from web.services import Svc

router = APIRouter(include_in_schema=False)

PROMETHEUS_TIMEOUT_SECONDS = 5.0
POINTS_PER_CHART = 120  # one chart's width in samples: the step follows from the window
MIN_STEP_SECONDS = 2  # Prometheus scrapes every 2 s; a finer step repeats samples
MAX_WINDOW_MINUTES = 24 * 60


@dataclass(frozen=True)
class Series:
    """One query of a panel and how its legend names each line: ``legend`` is formatted with
    the result's labels ("sink {sink}")."""

    query: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # how the page formats values: per-s, ratio, bytes, seconds, records, count
    series: tuple[Series, ...]
    empty: str = "no data in this window"


_DUPLICATES = 'sum(picnix_decisions_total{decision="duplicate-reference"})'
_DEAD_LETTERS = '"picnix_dlq_total|picnix_sink_dead_letters_total"'
_LATENCY = "sum by (le) (rate(picnix_upload_to_decision_seconds_bucket[1m]))"

def _topics_regex(settings: Settings) -> str:
    """A PromQL regex literal matching this server's own topics: the lag exporter reports every
    consumer group of the cluster, other namespaces' (tests, benchmarks) too."""
    topics = (settings.topic_uploads, settings.topic_features, settings.topic_decisions)
    pattern = "|".join(re.escape(t) for t in topics)
    return '"' + pattern.replace("\\", "\\\\") + '"'


def panels(settings: Settings) -> dict[str, Panel]:
    """The dashboard's panels; the lag panel limited to this server's namespace."""
    topics = _topics_regex(settings)
    return {
        "uploads": Panel("Uploads / s", "per-s", (
            Series("sum(rate(picnix_uploads_total[1m]))", "uploads/s"),
        )),
        "dedup": Panel("Dedup rate (share of decisions that are duplicates)", "ratio", (
            # counters since the workers started: a rate over a few decisions is mostly empty
            Series(f"({_DUPLICATES} or vector(0)) / sum(picnix_decisions_total)", "dedup rate"),
        )),
        "bytes_saved": Panel("Bytes saved (duplicates not stored again)", "bytes", (
            Series("sum(picnix_bytes_saved_total)", "bytes saved"),
        )),
        "latency": Panel("Upload → decision latency", "seconds", (
            Series(f"histogram_quantile(0.5, {_LATENCY})", "p50"),
            Series(f"histogram_quantile(0.99, {_LATENCY})", "p99"),
        )),
        "lag": Panel("Consumer lag (records behind the log end)", "records", (
            Series(
                f"sum by (group, topic) (picnix_consumer_lag_records{{topic=~{topics}}})",
                "{group} ← {topic}",
            ),
            Series("max by (sink) (picnix_sink_lag_records)", "sink {sink}"),
        )),
        "dlq": Panel("Dead letters by reason (the workers' and the sinks')", "count", (
            Series(f"sum by (reason) ({{__name__=~{_DEAD_LETTERS}}})", "{reason}"),
        ), empty="no dead letters in this window"),
    }


def _legend(series: Series, labels: dict[str, str]) -> str:
    try:
        return series.legend.format_map(labels)
    except KeyError:  # a result without the label (an empty aggregation)
        return series.legend


def _query_range(base_url: str, query: str, start: float, end: float, step: int) -> Any:
    params = urllib.parse.urlencode(
        {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"}
    )
    url = f"{base_url}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT_SECONDS) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise Problem(
            502, "prometheus-refused", f"Prometheus refused {query!r}: {exc.code} {detail}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Problem(
            503, "prometheus-unavailable",
            f"Prometheus at {base_url} did not answer within {PROMETHEUS_TIMEOUT_SECONDS} s: "
            f"{exc}", headers={"Retry-After": "10"},
        ) from exc
    if body.get("status") != "success":
        raise Problem(502, "prometheus-error", f"Prometheus answered {query!r} with {body}")
    return body["data"]["result"]


@router.get("/web/dashboard/{panel}")
async def panel_data(
    session: SignedInFetch, svc: Svc,
    panel: str = Path(pattern="^[a-z_]+$"),
    minutes: int = Query(15, ge=1, le=MAX_WINDOW_MINUTES),
) -> dict[str, Any]:
    """One panel's lines over the last ``minutes``: [[unix seconds, value], ...] each."""
    every = panels(svc.settings)
    spec = every.get(panel)
    if spec is None:
        raise Problem(404, "unknown-panel", f"no dashboard panel {panel!r}; panels: "
                      f"{', '.join(every)}")
    end = time.time()
    start = end - minutes * 60
    step = max(MIN_STEP_SECONDS, minutes * 60 // POINTS_PER_CHART)
    lines = []
    for series in spec.series:
        result = await asyncio.to_thread(
            _query_range, svc.settings.prometheus_url, series.query, start, end, step
        )
        for item in result:
            points = [[float(t), float(v)] for t, v in item["values"] if v not in ("NaN", "+Inf")]
            lines.append({"label": _legend(series, item["metric"]), "points": points})
    return {
        "panel": panel, "title": spec.title, "unit": spec.unit, "empty": spec.empty,
        "start": start, "end": end, "lines": lines,
    }
