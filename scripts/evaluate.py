"""`picnix eval MANIFEST [--method default|seed] [--seed N] [--split calib|holdout|all] [--json]`.

Streams a manifest's images, in a pseudo-random order fixed by --seed, through the same
extract / evaluate / apply code the pipeline runs, and scores every upload as it arrives:
an upload is a true duplicate iff an earlier upload shares its group_id, and a
duplicate-reference is correct iff the referenced image shares its group_id.

--split: a deterministic split by a hash of the group (a distractor goes with the group it is a
hard negative of, so hard negatives stay beside their originals): thresholds are calibrated on
`calib` and reported on `holdout`; `all` (the default) uses every row.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_processors.engine.checks import CheckMemo
from stream_processors.engine.decision import Decision, DecisionKind
from stream_processors.engine.decode import ImageRejected, decode_image
from stream_processors.engine.method import METHOD_NAMES, build_method

SPLITS = ("all", "calib", "holdout")
_SPLIT_SALT = b"picnix-eval-split-v1"

# first word of an edit -> family reported by recall_by_family
_FAMILY_ALIASES = {
    "gaussian": "blur",
    "gauss": "noise",
    "pad": "pad",
    "text": "text",
    "logo": "logo",
    "jpeg": "jpeg",
}
_FORMAT_FAMILIES = {"webp": "webp", "jpeg": "jpeg", "png": "format"}
_EDIT_SPLIT = re.compile(r"\+(?=[a-z])")  # '+' also appears inside "rotate_+3.3deg"


@dataclass(frozen=True)
class Row:
    path: Path
    group_id: str
    kind: str
    transform: str
    split_group: str

    @property
    def upload_id(self) -> str:
        return self.path.stem


def families(transform: str) -> list[str]:
    """Transform families of a manifest `transform` cell (empty for originals/distractors)."""
    edits = transform.split(";")[0]
    if edits in ("", "none"):
        return []
    out: list[str] = []
    for edit in _EDIT_SPLIT.split(edits):
        parts = edit.split("_")
        word = parts[0]
        if word == "format" and len(parts) > 1:
            fam = _FORMAT_FAMILIES.get(parts[1], "format")
        else:
            fam = _FAMILY_ALIASES.get(word, word)
        if fam not in out:
            out.append(fam)
    return out


def split_of(split_group: str) -> str:
    h = hashlib.sha256(_SPLIT_SALT + split_group.encode()).digest()
    return "calib" if h[0] % 2 == 0 else "holdout"


def read_manifest(path: Path, split: str = "all") -> list[Row]:
    rows = []
    with path.open(newline="") as f:
        for rec in csv.DictReader(f):
            transform = rec["transform"]
            m = re.search(r"hard_negative_of=([^;]+)", transform)
            split_group = m.group(1) if m else rec["group_id"]
            row = Row(
                path.parent / rec["path"], rec["group_id"], rec["kind"], transform, split_group
            )
            if split == "all" or split_of(split_group) == split:
                rows.append(row)
    return rows


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _share_summary(values: list[float]) -> dict[str, float]:
    """The distribution of one family's unexplained shares, as the threshold was read off it."""
    return {
        "n": len(values),
        "min": round(min(values), 4),
        "p10": round(_pct(values, 10), 4),
        "p50": round(_pct(values, 50), 4),
        "p90": round(_pct(values, 90), 4),
        "max": round(max(values), 4),
    }


def run(rows: list[Row], method_name: str, seed: int, in_flight: int = 1) -> dict[str, Any]:
    """Stream rows in a seeded order through a fresh method; return the metrics.

    ``in_flight``: the split decide of the pipeline, with this many uploads matched before the
    oldest is committed (1: each is committed right after its match, as one sequential decide).
    The decisions must be the same at any window (the commit settles each match against the
    changes since, engine.delta); ``commit_reevaluated`` counts the commits that evaluated the
    upload again (``commit_index_queried`` those of them that queried the index, not merging the
    match's answers: engine.index_queries), ``commit_ms_p50``/``p99`` the commit's own time
    (settle + apply)."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    method = build_method(method_name)
    group_of_image: dict[str, str] = {}
    seen_groups: set[str] = set()
    tp = fp = true_dups = 0
    distractor_fp = 0
    fam_total: dict[str, int] = defaultdict(int)
    fam_hit: dict[str, int] = defaultdict(int)
    decode_ms: list[float] = []
    extract_ms: list[float] = []
    decide_ms: list[float] = []
    kinds: dict[str, int] = defaultdict(int)
    errors: list[dict[str, str]] = []
    # upload id of each false positive -> the wrong decision it traces back to: itself, or,
    # when it matched an alias that is itself a false positive, that alias's root
    fp_root: dict[str, str] = {}
    rejected: list[dict[str, str]] = []
    t_start = time.perf_counter()
    commit_ms: list[float] = []
    reevaluated = 0
    checks_run = 0
    index_queried = 0
    # the unexplained share of each true positive whose edits are of one family (how the
    # threshold engine.decision.KEEP_OWN_BYTES_SHARE was chosen), and the kept copies by family
    shares: dict[str, list[float]] = defaultdict(list)
    kept: dict[str, int] = defaultdict(int)
    kept_total = 0  # duplicate references (right or wrong) that keep their own bytes
    # uploads matched (evaluated on the index as it was) and not yet committed: the split
    # decide's window; each commit settles its match against what the ones before it changed
    pending: deque[tuple[Row, Any, Decision, int, CheckMemo, float]] = deque()

    def commit_oldest() -> None:
        nonlocal tp, fp, true_dups, distractor_fp, reevaluated, checks_run, index_queried
        nonlocal kept_total
        row, sig, matched, position, checks, match_ms = pending.popleft()
        t = time.perf_counter()
        settled = method.settle(row.upload_id, sig, matched, position, checks)
        method.apply(settled.decision, sig)
        commit_ms.append(1e3 * (time.perf_counter() - t))
        decide_ms.append(match_ms + commit_ms[-1])
        reevaluated += settled.reevaluated
        checks_run += settled.checks_run
        index_queried += settled.index_queried
        decision = settled.decision
        kinds[str(decision.kind)] += 1
        is_true = row.group_id in seen_groups
        fams = families(row.transform) if is_true else []
        if is_true:
            true_dups += 1
            for fam in fams or ["none"]:
                fam_total[fam] += 1
        if decision.kind is DecisionKind.DUPLICATE_REFERENCE:
            kept_total += decision.keeps_own_bytes
            ref_group = group_of_image.get(decision.image_id)
            if ref_group == row.group_id:
                tp += 1
                for fam in fams or ["none"]:
                    fam_hit[fam] += 1
                    kept[fam] += decision.keeps_own_bytes
                if len(fams) <= 1 and decision.unexplained_share is not None:
                    shares[fams[0] if fams else "none"].append(decision.unexplained_share)
            else:
                fp += 1
                via = decision.via
                fp_root[row.upload_id] = fp_root.get(via, row.upload_id) if via else row.upload_id
                if row.kind == "distractor":
                    distractor_fp += 1
                errors.append(
                    {
                        "upload": row.path.name,
                        "group": row.group_id,
                        "referenced": decision.image_id,
                        "referenced_group": str(ref_group),
                        "method": decision.method,
                        "reason": decision.reason,
                        "unexplained_share": str(decision.unexplained_share),
                        "via": str(decision.via),
                        "root": fp_root[row.upload_id],
                    }
                )
        else:
            group_of_image[decision.image_id] = row.group_id
        seen_groups.add(row.group_id)

    for row in order:
        t0 = time.perf_counter()
        try:
            image = decode_image(row.path.read_bytes())
        except ImageRejected as exc:
            rejected.append({"upload": row.path.name, "reason": str(exc)})
            continue
        t1 = time.perf_counter()
        sig = method.extract(image)
        t2 = time.perf_counter()
        position = method.position
        checks = CheckMemo()
        matched: Decision = method.evaluate(row.upload_id, sig, checks)
        t3 = time.perf_counter()
        decode_ms.append(1e3 * (t1 - t0))
        extract_ms.append(1e3 * (t2 - t1))
        pending.append((row, sig, matched, position, checks, 1e3 * (t3 - t2)))
        if len(pending) >= in_flight:
            commit_oldest()
    while pending:
        commit_oldest()
    elapsed = time.perf_counter() - t_start
    n_dup = tp + fp
    precision = tp / n_dup if n_dup else 1.0
    recall = tp / true_dups if true_dups else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "method": method_name,
        "seed": seed,
        "uploads": len(order),
        "true_duplicates": true_dups,
        "duplicate_references": n_dup,
        "true_positives": tp,
        "false_positives": fp,
        "false_positive_roots": len(set(fp_root.values())),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "recall_by_family": {
            fam: round(fam_hit[fam] / fam_total[fam], 4) for fam in sorted(fam_total)
        },
        "family_counts": dict(sorted(fam_total.items())),
        "unexplained_share_by_family": {
            fam: _share_summary(values) for fam, values in sorted(shares.items())
        },
        "own_bytes_kept": kept_total,
        "own_bytes_kept_by_family": dict(sorted(kept.items())),
        "distractor_false_positives": distractor_fp,
        "distractors": sum(1 for r in order if r.kind == "distractor"),
        "clusters": kinds[str(DecisionKind.NEW_CLUSTER)],
        "decisions": dict(kinds),
        "images_per_s": round(len(order) / elapsed, 2) if elapsed > 0 else 0.0,
        "decode_ms_p50": round(_pct(decode_ms, 50), 3),
        "extract_ms_p50": round(_pct(extract_ms, 50), 3),
        "decide_ms_p50": round(_pct(decide_ms, 50), 3),
        "decide_ms_p99": round(_pct(decide_ms, 99), 3),
        "in_flight": in_flight,
        "commit_ms_p50": round(_pct(commit_ms, 50), 3),
        "commit_ms_p99": round(_pct(commit_ms, 99), 3),
        "commit_reevaluated": reevaluated,
        "commit_checks_run": checks_run,
        "commit_index_queried": index_queried,
        "rejected": rejected,
        "false_positive_examples": errors[:20],
    }


def _print_text(res: dict[str, Any]) -> None:
    print(f"method {res['method']}  seed {res['seed']}  uploads {res['uploads']}")
    print(
        f"precision {res['precision']:.4f}  recall {res['recall']:.4f}  f1 {res['f1']:.4f}  "
        f"(tp {res['true_positives']}, fp {res['false_positives']} from "
        f"{res['false_positive_roots']} wrong decisions, "
        f"true duplicates {res['true_duplicates']})"
    )
    print("recall by family:")
    for fam, r in res["recall_by_family"].items():
        print(f"  {fam:<11} {r:.3f}  (n={res['family_counts'][fam]})")
    print(
        f"distractor false positives {res['distractor_false_positives']} / {res['distractors']}"
        f"   clusters {res['clusters']}"
    )
    print(
        f"images/s {res['images_per_s']}  decode ms p50 {res['decode_ms_p50']}  extract ms p50 "
        f"{res['extract_ms_p50']}  decide ms p50 {res['decide_ms_p50']} p99 {res['decide_ms_p99']}"
    )
    print(
        f"in flight {res['in_flight']}: commit ms p50 {res['commit_ms_p50']} p99 "
        f"{res['commit_ms_p99']}, evaluated again {res['commit_reevaluated']} "
        f"(running {res['commit_checks_run']} verifications their matches had not; "
        f"{res['commit_index_queried']} queried the index)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="picnix eval", description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path)
    p.add_argument("--method", default="default", choices=METHOD_NAMES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="all", choices=SPLITS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--in-flight", type=int, default=1,
        help="uploads matched before the oldest is committed (the split decide's window)",
    )
    args = p.parse_args(argv)
    if args.in_flight < 1:
        p.error("--in-flight must be at least 1")
    rows = read_manifest(args.manifest, args.split)
    try:
        res = run(rows, args.method, args.seed, args.in_flight)
    except ValueError as exc:
        print(f"picnix eval: {exc}", file=sys.stderr)
        return 2
    res["split"] = args.split
    if args.json:
        print(json.dumps(res))
    else:
        _print_text(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
