"""The real prepare stage on the real data, through the offline sources.

Runs `stages/prepare.py` as DVC would, with a fresh cache, for both datasets.
Needs Debian's dataset-fashion-mnist and npm (`make data-sources`); when they
are missing this fails, on purpose: CI has them, and a skipped test proves
nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from aebench.common.config import read_yaml
from aebench.data.prepared import load_prepared

REPO = Path(__file__).resolve().parents[1]

# Official label counts (../shared/data-sources.md): what the verified files must hold.
OFFICIAL_LABEL_COUNTS = {
    "mnist": {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    },
    "fashion_mnist": {"train": [6000] * 10, "test": [1000] * 10},
}

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_prepare_stage_on_the_real_data(tmp_path, dataset):
    params = read_yaml(REPO / "params.yaml")
    params["data"]["source_dir"] = None  # the offline sources are what this test is about
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {key: value for key, value in os.environ.items() if key != "AEBENCH_DATA_DIR"}
    out, info_path = tmp_path / f"{dataset}.npz", tmp_path / f"{dataset}.json"

    result = subprocess.run(
        [
            sys.executable, str(REPO / "stages" / "prepare.py"),
            "--dataset", dataset,
            "--cache", str(tmp_path / "cache"),
            "--out", str(out),
            "--info", str(info_path),
            "--runinfo", str(tmp_path / "runinfo"),
            "--params", str(tmp_path / "params.yaml"),
        ],  # fmt: skip
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"prepare {dataset} failed; are the offline sources installed (`make data-sources`)?\n{result.stderr}"
    )

    data = load_prepared(out)
    info = json.loads(info_path.read_text())
    val_size = params["data"]["val_size"]
    official = OFFICIAL_LABEL_COUNTS[dataset]
    counts = {split: np.bincount(labels, minlength=10).tolist() for split, labels in data.labels.items()}
    assert [t + v for t, v in zip(counts["train"], counts["val"], strict=True)] == official["train"]
    assert counts["test"] == official["test"]
    assert len(data.labels["val"]) == val_size
    assert info["label_counts"] == counts
    assert info["splits"] == {"train": 60_000 - val_size, "val": val_size, "test": 10_000}
    assert sorted(path.name for path in (tmp_path / "cache" / dataset).iterdir() if path.name != "source.json") == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]
    # Where the files came from is a fact of the machine: in the run-info record, not in the hashed info file.
    source = json.loads((tmp_path / "runinfo" / "prepare" / f"{dataset}.json").read_text())["source"]
    assert source["name"] and "source" not in info
