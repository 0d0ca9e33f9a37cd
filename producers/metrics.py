"""Prometheus metrics of the producers (replay CLI and the producer API)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PUBLISH_BUCKETS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)

PUBLISHED = Counter("picnix_producer_published_total", "Upload events acknowledged by Kafka")
PUBLISHED_BYTES = Counter("picnix_producer_published_bytes_total", "Image bytes published")
REFUSED = Counter(
    "picnix_producer_refused_total", "Uploads refused before publishing", ["reason"]
)
RETRIES = Counter("picnix_producer_retries_total", "Sends retried after a Kafka error")
PUBLISH_SECONDS = Histogram(
    "picnix_producer_publish_seconds", "Time until Kafka acknowledged an upload",
    buckets=PUBLISH_BUCKETS,
)
