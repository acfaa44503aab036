"""The software and machine a report was built with: package versions, git commit, hardware.

Read without importing the packages themselves (importlib.metadata), so the
report stage never loads torch. Hardware is the machine that ran the report
stage, which under `dvc repro` is the one that ran the whole pipeline.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from aebench.common.tracking import git_commit

PACKAGES = (
    "aebench", "torch", "torchvision", "numpy", "pandas", "scikit-learn",
    "matplotlib", "seaborn", "mlflow", "dvc",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
                return int(line.split()[1]) / 1024**2  # kB -> GiB
    except (OSError, ValueError):
        pass
    return None


def _gpus() -> list[str]:
    """GPU names from nvidia-smi when there is one (asking torch would import it)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def hardware() -> dict[str, str]:
    memory = _memory_gib()
    gpus = _gpus()
    return {
        "cpu": _cpu_model(),
        "cpu cores": str(os.cpu_count()),
        "memory": f"{memory:.1f} GiB" if memory is not None else "unknown",
        "gpu": "; ".join(gpus) if gpus else "none found",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def environment() -> dict[str, dict[str, str] | str]:
    return {"git commit": git_commit(), "packages": package_versions(), "hardware": hardware()}
