"""`reports/timings.md`: wall times, machines, MLflow runs and data sources, from the run-info records.

These facts change from one run of the same computation to the next, so
they stay out of the report that DVC hashes (and that `make verify` compares
byte for byte); the report stage writes this page beside it, undeclared in
dvc.yaml and ignored by git.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aebench.reporting.render import Block, Bullets, Heading, Paragraph, Table


def _seconds(value: Any) -> str:
    return f"{float(value):,.1f}" if isinstance(value, (int, float)) else ""


def timing_blocks(records: list[dict[str, Any]]) -> list[Block]:
    """The page: per-stage totals, then one row per record (model or dataset), then the machines."""
    if not records:
        return [Heading("Timings", 1), Paragraph("No run-info records found: run the pipeline first.")]
    by_stage: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_stage[str(record.get("stage", "?"))].append(record)
    totals = [[stage, str(len(group)), _seconds(sum(float(r.get("seconds") or 0) for r in group))]
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
        Table(header=["stage", "records", "seconds"], rows=totals),
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
