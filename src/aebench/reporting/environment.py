"""The software a report was built with: the versions of the packages that computed it.

Read without importing the packages themselves (importlib.metadata), so the
report stage never loads torch. The machine, the git commit and the wall
times are not here: they differ between two runs of the same computation, so
they go to the run-info records and `reports/timings.md` (`timings`), not
into the report DVC hashes.
"""

from __future__ import annotations

from importlib import metadata

PACKAGES = (
    "aebench", "torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn",
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
