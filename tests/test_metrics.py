"""The metrics JSON schema: documented keys, types, nulls for the AE, consistency."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aebench.evaluation.metrics import (
    AE_NOTE,
    METRIC_DOCS,
    METRICS,
    MetricsError,
    check_metrics,
    metric_scalars,
    metric_series,
)

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def vae_payload() -> dict:
    return {
        "dataset": "mnist",
        "model": "vae",
        "latent_dim": 3,
        "mlflow_run_id": "0123abcd",
        "test": {
            "images": 100, "recon_bce": 80.5, "recon_mse": 12.0, "neg_elbo": 101.2,
            "nll_iw": 96.3, "iw_samples": 200, "note": None,
        },
        "latent": {
            "active_units": 2, "au_threshold": 0.01, "kl_total": 20.7,
            "activity": [1.1, 0.9, 0.001], "kl_per_dim": [10.0, 10.7, 0.0],
        },
        "probe": {"method": "logistic_regression", "accuracy": 0.91},
        "samples": {
            "count": 20, "class_histogram": [2] * 10, "class_entropy": 1.0,
            "mean_confidence": 0.8, "frechet_distance": 3.5,
        },
        "timing": {"seconds": 12.5},
    }


def ae_payload() -> dict:
    payload = vae_payload()
    payload["model"] = "ae"
    payload["test"].update(neg_elbo=None, nll_iw=None, note=AE_NOTE)
    payload["latent"].update(kl_total=None, kl_per_dim=None)
    return payload


def flat_keys(payload: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in payload.items():
        if isinstance(value, dict):
            keys |= flat_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_every_key_of_the_contract_is_documented_and_nothing_else():
    block = re.search(r"\*\*Evaluation metrics\*\*.*?```json\n(.*?)```", CONTRIBUTING.read_text(), re.S)
    contract = json.loads(block.group(1))
    assert flat_keys(contract) == set(METRICS) == set(METRIC_DOCS)
    assert all(len(doc) > 20 for doc in METRIC_DOCS.values())


def test_valid_payloads_pass():
    check_metrics(vae_payload())
    check_metrics(ae_payload())
    payload = vae_payload()
    payload["mlflow_run_id"] = None  # a model trained without a reachable MLflow store
    check_metrics(payload)


def broken(change) -> dict:
    payload = vae_payload()
    change(payload)
    return payload


@pytest.mark.parametrize(
    "payload, culprit",
    [
        (broken(lambda p: p["test"].pop("nll_iw")), "test.nll_iw: missing"),
        (broken(lambda p: p.pop("probe")), "probe: missing"),
        (broken(lambda p: p["latent"].update(extra=1)), "latent.extra: not a documented metric"),
        (broken(lambda p: p.update(elapsed=1)), "elapsed: not a documented metric"),
        (broken(lambda p: p["test"].update(recon_bce="80")), "test.recon_bce: expected float"),
        (broken(lambda p: p["test"].update(nll_iw=float("nan"))), "test.nll_iw: must be finite"),
        (broken(lambda p: p["test"].update(nll_iw=None)), "test.nll_iw: must not be null"),
        (broken(lambda p: p["latent"].update(active_units=True)), "latent.active_units: expected int"),
        (broken(lambda p: p["latent"].update(active_units=2.0)), "latent.active_units: expected int"),
        (broken(lambda p: p["latent"].update(activity=[1.0, 2.0])), "latent.activity: expected 3 values"),
        (broken(lambda p: p["latent"].update(activity=[1.0, -0.5, 2.0])), "latent.activity: must be >= 0"),
        (broken(lambda p: p["latent"].update(active_units=4)), "latent.active_units: 4 exceeds"),
        (broken(lambda p: p["probe"].update(accuracy=91.0)), "probe.accuracy: must be <= 1"),
        (broken(lambda p: p["samples"].update(class_histogram=[2] * 9)), "samples.class_histogram: expected 10"),
        (broken(lambda p: p["samples"].update(count=21)), "samples.class_histogram: counts sum to 20"),
        (broken(lambda p: p["samples"].update(class_entropy=1.2)), "samples.class_entropy: must be <= 1"),
        (broken(lambda p: p.update(test=[])), "test: expected a mapping"),
    ],
)
def test_schema_violations_are_named(payload, culprit):
    with pytest.raises(MetricsError, match=re.escape(culprit)):
        check_metrics(payload)


@pytest.mark.parametrize("key", ["neg_elbo", "nll_iw"])
def test_the_ae_must_have_null_likelihoods(key):
    payload = ae_payload()
    payload["test"][key] = 90.0
    with pytest.raises(MetricsError, match=f"test.{key}: must be null for the AE"):
        check_metrics(payload)


def test_the_ae_must_say_why():
    payload = ae_payload()
    payload["test"]["note"] = None
    with pytest.raises(MetricsError, match="test.note"):
        check_metrics(payload)


def test_scalars_for_mlflow_skip_nulls_strings_and_lists():
    scalars = metric_scalars(ae_payload())
    assert scalars["test.recon_bce"] == 80.5 and scalars["latent.active_units"] == 2.0
    assert "test.nll_iw" not in scalars and "probe.method" not in scalars and "latent.activity" not in scalars
    assert metric_series(ae_payload()) == {"latent.activity": [1.1, 0.9, 0.001], "samples.class_histogram": [2.0] * 10}
    assert set(metric_series(vae_payload())) == {"latent.activity", "latent.kl_per_dim", "samples.class_histogram"}


def test_check_does_not_modify_the_payload():
    payload = vae_payload()
    before = copy.deepcopy(payload)
    check_metrics(payload)
    assert payload == before


def test_the_schema_module_loads_without_torch():
    # The report stage reads METRIC_DOCS and check_metrics; it must not pay for importing torch.
    code = "import sys, aebench.evaluation.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
