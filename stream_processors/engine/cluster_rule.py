"""The seed's rule for an upload that copies nothing: a new cluster when no center is near, else
it joins the nearest.

Why a module of its own: it is the one part of a decision that depends on every image stored
just before (each new image moves a center), so the commit applies it itself, against the
clusters as they are now, from the nearest cluster the match found on its replica
(``cluster_rule_since``); candidate search and verification (engine.candidates, pair_checks)
are settled by engine.delta instead.
"""

from __future__ import annotations

import numpy as np

from stream_processors.engine.candidates import Evidence
from stream_processors.engine.clusters import ClusterIndex, NearestCluster
from stream_processors.engine.decision import Decision, DecisionKind, RefusedCandidate
from stream_processors.engine.delta import ChangeLog


def cluster_decision(
    upload_id: str, near: NearestCluster | None, refused: tuple[RefusedCandidate, ...]
) -> Decision:
    """The upload founds a cluster (``near`` None) or joins ``near``; ``refused``: the
    candidates the verifier refused on the way."""
    if near is None:
        return Decision(
            upload_id, DecisionKind.NEW_CLUSTER, upload_id, upload_id, None, Evidence.CLUSTER,
            refused=refused,
        )
    return Decision(
        upload_id,
        DecisionKind.MERGE_CENTER,
        upload_id,
        near.cluster_id,
        float(near.distance),
        Evidence.CLUSTER,
        refused=refused,
    )


def cluster_rule(
    clusters: ClusterIndex, upload_id: str, code: np.ndarray, refused: tuple[RefusedCandidate, ...]
) -> Decision:
    """The rule against every cluster center (``code``: the upload's 256-bit hash)."""
    return cluster_decision(upload_id, clusters.nearest(code), refused)


def cluster_rule_since(
    clusters: ClusterIndex,
    changes: ChangeLog,
    upload_id: str,
    code: np.ndarray,
    matched: Decision,
    position: int,
    refused: tuple[RefusedCandidate, ...],
) -> Decision:
    """The rule now, from a match's at ``position`` (``matched``, which copied nothing): the
    nearest cluster then is still the nearest of those no change touched since, so only the
    touched ones are measured again (the nearest search costs ~10 ms at a million clusters).
    ``refused``: the candidates refused on the way now (the match's, when no change since
    brought or took a candidate: engine.delta)."""
    changed = changes.clusters_since(position)
    if matched.kind is DecisionKind.MERGE_CENTER and matched.cluster_id in changed:
        # the nearest itself moved
        return cluster_rule(clusters, upload_id, code, refused)
    best = None
    if matched.kind is DecisionKind.MERGE_CENTER:
        assert matched.distance is not None
        best = NearestCluster(matched.cluster_id, int(matched.distance))
    near = clusters.nearest_of(code, changed)
    if near is not None and clusters.founded_before(near, best):
        best = near
    return cluster_decision(upload_id, best, refused)
