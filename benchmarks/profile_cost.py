"""What each article profile's training costs on this machine, measured on its first epochs.

For every profile of `replicate/params.yaml` it runs the real train stage on a
copy of the profile with seeds cut to one and `--epochs` epochs (default 1),
into a scratch folder, with the stage's usual workers (one per core, one
thread each), and reads each job's per-epoch seconds from its run-info record.
It prints, per profile, the seconds per epoch of each model, and the
extrapolated training time of the whole profile: every model of the profile
(variants x latent sizes x seeds) for its full epochs, spread over the
workers. Evaluation and figures add ~20-30 s per model on 2 cores (see the
study's reports/timings.md).

    python benchmarks/profile_cost.py                  # every profile, 1 epoch each
    python benchmarks/profile_cost.py --profiles emae --epochs 2

The extrapolation assumes later epochs cost what the first did (the work per
epoch does not change); compare numbers measured in one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from aebench.common.config import read_yaml

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "replicate" / "profiles"


def write_yaml(path: Path, data: dict) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with path.open("w") as handle:
        yaml.dump(data, handle)


def measure(name: str, epochs: int, scratch: Path) -> dict:
    profile = read_yaml(PROFILES / f"{name}.yaml")
    full_epochs, seeds = profile["train"]["epochs"], len(profile["seeds"])
    short = dict(profile, seeds=profile["seeds"][:1], train=dict(profile["train"], epochs=epochs))
    params = scratch / f"{name}.yaml"
    write_yaml(params, short)
    out = scratch / name
    subprocess.run(
        [sys.executable, "stages/train.py", "--params", str(params), "--prepared", "data/prepared",
         "--models", str(out / "models"), "--history", str(out / "history"), "--resume", str(out / "resume"),
         "--runinfo", str(out / "runinfo")],
        cwd=REPO, check=True, env=dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{scratch / 'mlflow.db'}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    per_model = {}
    for record in sorted((out / "runinfo" / "train").rglob("*.json")):
        info = json.loads(record.read_text())
        per_model[str(record.relative_to(out / "runinfo" / "train").with_suffix(""))] = (
            sum(info["epoch_seconds"]) / len(info["epoch_seconds"]))
    workers = min(len(os.sched_getaffinity(0)), len(per_model) * seeds)
    # Every model runs `seeds` times for `full_epochs`; the jobs share the workers.
    total = sum(seconds * full_epochs * seeds for seconds in per_model.values()) / workers
    return {"per_epoch": per_model, "epochs": full_epochs, "seeds": seeds, "workers": workers,
            "training_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="*", help="profile names (default: every profile)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs measured per model")
    args = parser.parse_args()
    names = args.profiles or read_yaml(REPO / "replicate" / "params.yaml")["profiles"]
    with tempfile.TemporaryDirectory(prefix="aebench-profile-cost-") as scratch:
        for name in names:
            result = measure(name, args.epochs, Path(scratch))
            models = ", ".join(f"{model} {seconds:.1f} s/epoch" for model, seconds in result["per_epoch"].items())
            minutes = result["training_s"] / 60
            print(f"{name}: {models}; {result['epochs']} epochs x {result['seeds']} seeds on "
                  f"{result['workers']} workers: training ~{minutes:.1f} min"
                  + (f" ({minutes / 60:.1f} h)" if minutes >= 60 else ""), flush=True)


if __name__ == "__main__":
    main()
