"""`reports/timings.md`: wall times, machines, MLflow runs and data sources, from the run-info records.

These facts change from one run of the same computation to the next, so
they stay out of the report that DVC hashes (and that `make verify` compares
byte for byte); the report stage writes this page beside it, undeclared in
dvc.yaml, and it is committed with the results it timed.

Besides each stage's seconds, the page gives each stage's share of the study's
compute (the performance target: evaluation at most 15%) and how a training
epoch's time drifts from the second epoch to the last (a slowdown there, such
as subnormal floats in Adam's state, costs every later epoch).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aebench.reporting.render import Block, Bullets, Heading, Paragraph, Table


def _seconds(value: Any) -> str:
    return f"{float(value):,.1f}" if isinstance(value, (int, float)) else ""


def compute_shares(totals: dict[str, float]) -> dict[str, float]:
    """Each stage's share of the summed compute seconds, in percent."""
    whole = sum(totals.values())
    return {stage: 100.0 * seconds / whole if whole > 0 else 0.0 for stage, seconds in totals.items()}


def epoch_drift(epoch_seconds: Sequence[Sequence[float]]) -> dict[str, float] | None:
    """Last epoch's seconds over the second's, across models: median, min and max, and the models counted.

    The second epoch, not the first: the first also pays for warm-up (allocations, caches). Models with
    fewer than three epochs timed in one process (a resumed run) are left out. None when none is left.
    """
    ratios = [float(times[-1]) / float(times[1]) for times in epoch_seconds if len(times) >= 3 and times[1] > 0]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "models": len(ratios)}


def _drift_paragraph(records: list[dict[str, Any]]) -> Paragraph | None:
    drift = epoch_drift([r["epoch_seconds"] for r in records if isinstance(r.get("epoch_seconds"), list)])
    if drift is None:
        return None
    return Paragraph(
        f"Training epochs, last against second (seconds of the last epoch over those of the second, "
        f"over {drift['models']} models): median {drift['median']:.2f}, range {drift['min']:.2f} to "
        f"{drift['max']:.2f}. A ratio near 1 means later epochs cost what early ones do; jobs sharing the "
        "machine with other work spread it."
    )


def timing_blocks(records: list[dict[str, Any]]) -> list[Block]:
    """The page: per-stage totals, then one row per record (model or dataset), then the machines."""
    if not records:
        return [Heading("Timings", 1), Paragraph("No run-info records found: run the pipeline first.")]
    by_stage: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_stage[str(record.get("stage", "?"))].append(record)
    seconds = {stage: sum(float(r.get("seconds") or 0) for r in group) for stage, group in by_stage.items()}
    shares = compute_shares(seconds)
    totals = [[stage, str(len(group)), _seconds(seconds[stage]), f"{shares[stage]:.1f}"]
              for stage, group in by_stage.items()]
    rows = [
        [str(r.get("stage", "")), str(r.get("model") or r.get("dataset") or ""), _seconds(r.get("seconds")),
         str(r.get("device", "")), str(r.get("mlflow_run_id") or ""), str(r.get("written", ""))]
        for r in records
    ]
    hosts = {(r["host"].get("hostname"), r["host"].get("cpu"), r["host"].get("cpu_cores"), r["host"].get("memory_gib"))
             for r in records if isinstance(r.get("host"), dict)}
    sources = [f"{r.get('dataset')}: {r.get('source')}" for r in by_stage.get("prepare", [])]
    commits = sorted({str(r.get("git_commit")) for r in records if r.get("git_commit")})
    blocks: list[Block] = [
        Heading("Timings", 1),
        Paragraph("Wall times of the last run of each stage, from the run-info records under `runinfo/` "
                  "(compute time of each job, without start-up; seconds). Not part of the report DVC hashes."),
        Table(header=["stage", "records", "seconds", "share of compute (%)"], rows=totals),
        *([drift] if (drift := _drift_paragraph(records)) else []),
        Heading("Per model or dataset", 2),
        Table(header=["stage", "model", "seconds", "device", "MLflow run", "written"], rows=rows, label_columns=2),
        Heading("Machines", 2),
        Bullets([f"{host}: {cpu}, {cores} cores, {memory} GiB" for host, cpu, cores, memory in sorted(hosts, key=str)]),
    ]
    if sources:
        blocks += [Heading("Data sources", 2), Bullets(sources)]
    if commits:
        blocks += [Heading("Git commits", 2), Bullets([f"`{c}`" for c in commits])]
    return blocks
