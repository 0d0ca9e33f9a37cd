"""Prometheus metrics of the sinks; the ``sink`` label tells the Postgres and blob sinks apart."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_BUCKETS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

RECORDS = Counter("picnix_sink_records_total", "Decision records consumed", ["sink"])
WRITES = Counter(
    "picnix_sink_writes_total", "Rows or objects actually written (not already present)", ["sink"]
)
FAILURES = Counter(
    "picnix_sink_failures_total", "Batches that failed and will be retried", ["sink"]
)
BATCH_SECONDS = Histogram(
    "picnix_sink_batch_seconds", "Time to make one batch durable", ["sink"], buckets=BATCH_BUCKETS
)
BYTES_STORED = Counter(
    "picnix_blob_bytes_stored_total", "Bytes written to the object store (distinct images)"
)
DELETES = Counter("picnix_blob_deletes_total", "Objects deleted because no post shows them")
# Alerts are decided where the Postgres sink writes them (the original's author is a row
# there); counted once their batch is committed, so a batch retried after a failure counts once.
ALERTS = Counter(
    "picnix_alerts_total", "IP-theft alerts raised: a duplicate of an image another author posted"
)
# Not picnix_dlq_total (the workers'): one process may import both modules, and a name can be
# registered once; the dashboard adds the two by reason.
DEAD_LETTERS = Counter(
    "picnix_sink_dead_letters_total", "Records a sink sent to the dead-letter topic",
    ["sink", "reason"],
)
LAG = Gauge(
    "picnix_sink_lag_records", "Records between the sink's position and the log end", ["sink"]
)


def set_lag(sink: str, highwater: int | None, next_offset: int) -> None:
    """Records left to the end of the log; unknown until the first fetch response."""
    if highwater is not None:
        LAG.labels(sink=sink).set(max(highwater - next_offset, 0))
