"""Prometheus metrics of the Faust worker (extract and decide agents)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Decode + signature takes milliseconds to a few hundred ms; a decision microseconds to tens of ms.
EXTRACT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
DECIDE_BUCKETS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
# An upload's way through the pipeline: tens of ms when idle, seconds behind a backlog.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

UPLOADS = Counter("picnix_uploads_total", "Upload events consumed by the extract agent")
UPLOAD_BYTES = Counter("picnix_upload_bytes_total", "Image bytes consumed by the extract agent")
DLQ = Counter("picnix_dlq_total", "Events sent to the dead-letter topic", ["reason"])
DECISIONS = Counter("picnix_decisions_total", "Decisions emitted", ["decision"])
REDELIVERED = Counter(
    "picnix_decisions_redelivered_total",
    "Feature events already decided (re-delivery): the stored decision was re-emitted",
)
BYTES_SAVED = Counter(
    "picnix_bytes_saved_total",
    "Bytes of duplicate uploads that are not stored again (not a copy that keeps its own)",
)
EXTRACT_SECONDS = Histogram(
    "picnix_extract_seconds", "Decode + signature time per upload", buckets=EXTRACT_BUCKETS
)
DECIDE_SECONDS = Histogram(
    "picnix_decide_seconds",
    "Engine time per decision: its match on a replica plus its commit",
    buckets=DECIDE_BUCKETS,
)
MATCH_SECONDS = Histogram(
    "picnix_match_seconds", "Evaluation of one upload on this worker's replica",
    buckets=DECIDE_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "picnix_commit_seconds",
    "The sequential step per input: settling its match, applying it, writing the tables",
    buckets=DECIDE_BUCKETS,
)
REEVALUATED = Counter(
    "picnix_commit_reevaluated_total",
    "Matches the commit evaluated again: a change since the match could have altered it",
)
COMMIT_QUERIES = Counter(
    "picnix_commit_index_queries_total",
    "Evaluations again that queried the index: their match's answers could not be merged with"
    " the entries added since (a removal, a new word-statistics epoch, a stage it never reached)",
)
COMMIT_CHECKS = Counter(
    "picnix_commit_checks_total",
    "Verifications the commit ran itself in evaluating again: those its match had not run",
)
# How far behind the commit a match's replica was, in index changes: 0 in step, a few in flight
LAG_BUCKETS = (0, 1, 2, 4, 8, 16, 64, 256, 1024, 4096)
MATCH_LAG = Histogram(
    "picnix_match_lag_positions",
    "Index-log positions between a match's replica and the commit that settled it",
    buckets=LAG_BUCKETS,
)
MATCH_CATCH_UP = Histogram(
    "picnix_match_catch_up_positions",
    "Index-log positions a worker settled its own match across before sending it",
    buckets=LAG_BUCKETS,
)
MATCH_CATCH_UP_REEVALUATED = Counter(
    "picnix_match_catch_up_reevaluated_total",
    "Matches a worker evaluated again in catching them up (a change since could alter them)",
)
PACING_BUCKETS = (0.0, 0.002, 0.01, 0.05, 0.1, 0.25)
MATCH_PACED_SECONDS = Histogram(
    "picnix_match_paced_seconds",
    "Time a match waited for the commit to come within its window before evaluating",
    buckets=PACING_BUCKETS,
)
REPLICA_RECORDS = Counter(
    "picnix_replica_records_total", "Index-log records this worker's replica applied"
)
LIFECYCLE = Counter(
    "picnix_lifecycle_total", "Post updates and deletions applied by decide", ["event"]
)
UPLOAD_TO_DECISION_SECONDS = Histogram(
    "picnix_upload_to_decision_seconds",
    "From the upload's timestamp (set by the producer) to its decision being emitted",
    buckets=LATENCY_BUCKETS,
)
SEARCHES = Counter(
    "picnix_searches_total", "Searches answered by this worker's engine", ["outcome"]
)
SEARCH_SECONDS = Histogram(
    "picnix_search_seconds", "Decode + signature + engine evaluate per search",
    buckets=EXTRACT_BUCKETS,
)
