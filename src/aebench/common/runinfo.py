"""Run-info files: what differs between two runs of the same computation.

Wall times, MLflow run ids, the machine and the git commit change from one run
to the next even when every number is the same, so they stay out of every file
DVC hashes (which must be a pure function of code, params and data). They go
to MLflow and to small JSON files under a `runinfo/` folder that dvc.yaml
passes to the stages but does not declare, and that git ignores:

    runinfo/<stage kind>/<dataset>/<variant>/latent-<D>/seed-<s>.json   (per trained model)
    runinfo/<stage kind>/<name>.json                                    (per dataset, report)

The report stage turns them into `reports/timings.md`, beside the report, not in it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from pathlib import Path
from typing import Any

from aebench.common.files import write_json


def host_facts() -> dict[str, Any]:
    """The machine a stage ran on (read from /proc and platform; no torch import)."""
    return {
        "hostname": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_runinfo(path: str | Path, payload: dict[str, Any]) -> None:
    """Write one run-info record (with the host facts and the time it was written)."""
    write_json(path, {**payload, "host": host_facts(), "written": now()})


def read_runinfos(root: str | Path) -> list[dict[str, Any]]:
    """Every run-info record under `root` with its relative path as `file`; unreadable ones are skipped."""
    records = []
    root = Path(root)
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append({**record, "file": path.relative_to(root).as_posix()})
    return records


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)  # kB -> GiB
    except (OSError, ValueError):
        pass
    return None
