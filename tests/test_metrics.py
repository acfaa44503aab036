"""The metrics JSON schema: documented keys, types, nulls (deterministic codes, non-2-D latents), consistency."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aebench.evaluation.metrics import (
    DETERMINISTIC_NOTE,
    METRIC_DOCS,
    METRICS,
    SAMPLE_SOURCES,
    MetricsError,
    check_metrics,
    lookup,
    metric_scalars,
    metric_series,
)

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def samples(count: int = 20, *, judge: bool = True) -> dict:
    """A sample section; the judge's (`samples`) also holds the two judges' agreement."""
    return {
        "count": count, "class_histogram": [count // 10] * 10, "class_entropy": 1.0, "top_class_share": 0.1,
        "mean_confidence": 0.8, "confident_share": 0.6, "frechet_distance": 3.5, "precision": 0.7, "recall": 0.6,
        "density": 0.9, "coverage": 0.5, **({"agreed_share": 0.5} if judge else {}),
    }


def vae_payload(latent_dim: int = 3) -> dict:
    """A valid payload of a stochastic model (a VAE) with a 3-D latent."""
    return {
        "dataset": "mnist", "variant": "vae", "objective": "kl_split", "stochastic": True,
        "latent_dim": latent_dim, "seed": 0,
        "test": {
            "images": 100, "recon_nll": 75.0, "recon_bce": 80.5, "recon_mse": 12.0, "distortion": 81.0,
            "rate": 20.2, "neg_elbo": 101.2, "nll_iw": 96.3, "nll_iw_se": 0.6, "nll_iw_mc_se": 0.02,
            "iw_samples": 200, "iw_images": 2000, "note": None,
        },
        "latent": {
            "activity": [1.1, 0.9, 0.001], "au_threshold": 0.01, "active_units": 2,
            "kl_per_dim": [10.0, 10.2, 0.0], "usage": [3.0, 1.0, 0.0], "usage_share": [0.75, 0.25, 0.0],
            "usage_threshold": 0.01, "used_units": 2, "effective_dims": 1.75, "knn_accuracy": 0.9,
        },
        "aggregate": {"mean_norm": 0.1, "covariance_error": 0.3},
        "probe": {"method": "logistic_regression", "accuracy": 0.91},
        "samples": {source: samples() for source in SAMPLE_SOURCES},
        "samples_mlp_judge": {source: samples(judge=False) for source in SAMPLE_SOURCES},
        "manifold": {"roughness": None, "mean_confidence": None, "corner_confidence": None},
        "interpolation": {"start_label": 0, "end_label": 7, "frame_labels": [0, 0, 6, 7, 7], "classes_between": 1},
        "convergence": {"epochs": 12, "window": 5, "tolerance_nats": 0.1, "slope": -0.03, "flat": True,
                        "used_stable": True, "active_stable": True, "converged": True, "reason": "passed"},
    }


def ae_payload() -> dict:
    payload = vae_payload()
    payload.update(variant="ae", objective="deterministic", stochastic=False)
    payload["test"].update(
        distortion=None, rate=None, neg_elbo=None, nll_iw=None, nll_iw_se=None, nll_iw_mc_se=None,
        note=DETERMINISTIC_NOTE,
    )
    payload["latent"].update(kl_per_dim=None)
    return payload


def two_d_payload() -> dict:
    payload = vae_payload(latent_dim=2)
    payload["latent"].update(activity=[1.1, 0.9], kl_per_dim=[10.0, 10.2], usage=[3.0, 1.0], usage_share=[0.75, 0.25])
    payload["manifold"] = {"roughness": 0.2, "mean_confidence": 0.7, "corner_confidence": 0.4}
    return payload


def flat_keys(payload: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in payload.items():
        if isinstance(value, dict):
            keys |= flat_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_every_key_of_the_contributing_contract_is_documented_and_nothing_else():
    block = re.search(r"\*\*Evaluation metrics\*\*.*?```json\n(.*?)```", CONTRIBUTING.read_text(), re.S)
    contract = json.loads(block.group(1))
    assert flat_keys(contract) == set(METRICS)


def test_every_metric_is_documented_with_its_unit():
    assert list(METRIC_DOCS) == list(METRICS)
    assert all(len(doc) > 20 for doc in METRIC_DOCS.values())
    assert METRIC_DOCS["test.nll_iw"].endswith(" [nats/image]")
    assert METRIC_DOCS["samples.gmm.precision"].endswith(" [fraction]")
    assert "[" not in METRIC_DOCS["dataset"]  # no unit, no brackets


def test_each_sample_source_has_the_same_eleven_metrics_under_both_judges_and_their_agreement_once():
    assert list(SAMPLE_SOURCES) == ["prior", "gaussian", "gmm"]
    per_source = {
        (section, source): {key.split(".")[2] for key in METRICS if key.startswith(f"{section}.{source}.")}
        for source in SAMPLE_SOURCES for section in ("samples", "samples_mlp_judge")
    }
    expected = {"count", "class_histogram", "class_entropy", "top_class_share", "mean_confidence",
                "confident_share", "frechet_distance", "precision", "recall", "density", "coverage"}
    for (section, _), keys in per_source.items():
        assert keys == (expected | {"agreed_share"} if section == "samples" else expected)


@pytest.mark.parametrize("payload", [vae_payload(), ae_payload(), two_d_payload()], ids=["vae", "ae", "2d"])
def test_valid_payloads_pass_and_cover_the_documented_keys(payload):
    check_metrics(payload)
    assert flat_keys(payload) == set(METRICS)


def broken(change, make=vae_payload) -> dict:
    payload = make()
    change(payload)
    return payload


@pytest.mark.parametrize(
    "payload, culprit",
    [
        (broken(lambda p: p["test"].pop("nll_iw")), "test.nll_iw: missing"),
        (broken(lambda p: p.pop("probe")), "probe: missing"),
        (broken(lambda p: p.pop("variant")), "variant: missing"),
        (broken(lambda p: p["samples"].pop("gmm")), "samples.gmm: missing"),
        (broken(lambda p: p["latent"].update(extra=1)), "latent.extra: not a documented metric"),
        (broken(lambda p: p.update(model="vae")), "model: not a documented metric"),
        (broken(lambda p: p.update(mlflow_run_id="abc")), "mlflow_run_id: not a documented metric"),
        (broken(lambda p: p["test"].update(recon_bce="80")), "test.recon_bce: expected float"),
        (broken(lambda p: p["test"].update(nll_iw=float("nan"))), "test.nll_iw: must be finite"),
        (broken(lambda p: p["test"].update(nll_iw=None)), "test.nll_iw: must not be null"),
        (broken(lambda p: p["test"].update(rate=-0.5)), "test.rate: must be >= 0"),
        (broken(lambda p: p.update(stochastic="yes")), "stochastic: expected true or false, got 'yes'"),
        (broken(lambda p: p.update(stochastic=1)), "stochastic: expected true or false, got 1"),
        (broken(lambda p: p.update(seed=-1)), "seed: must be >= 0, got -1"),
        (broken(lambda p: p.update(objective="")), "objective: expected a non-empty string"),
        (broken(lambda p: p["latent"].update(active_units=True)), "latent.active_units: expected int"),
        (broken(lambda p: p["latent"].update(active_units=2.0)), "latent.active_units: expected int"),
        (broken(lambda p: p["latent"].update(activity=[1.0, 2.0])), "latent.activity: expected 3 values"),
        (broken(lambda p: p["latent"].update(usage_share=[0.5, 0.5])), "latent.usage_share: expected 3 values"),
        (broken(lambda p: p["latent"].update(activity=[])), "latent.activity: expected a non-empty list"),
        (broken(lambda p: p["latent"].update(activity=[1.0, -0.5, 2.0])), "latent.activity: must be >= 0"),
        (broken(lambda p: p["latent"].update(active_units=4)), "latent.active_units: 4 exceeds latent_dim 3"),
        (broken(lambda p: p["latent"].update(used_units=5)), "latent.used_units: 5 exceeds latent_dim 3"),
        (broken(lambda p: p["probe"].update(accuracy=91.0)), "probe.accuracy: must be <= 1"),
        (broken(lambda p: p["samples"]["prior"].update(class_histogram=[2] * 9)),
         "samples.prior.class_histogram: expected 10 counts, got 9"),
        (broken(lambda p: p["samples"]["gmm"].update(count=21)),
         "samples.gmm.class_histogram: counts sum to 20, not samples.gmm.count 21"),
        (broken(lambda p: p["samples"]["gaussian"].update(class_entropy=1.2)),
         "samples.gaussian.class_entropy: must be <= 1"),
        (broken(lambda p: p["samples"]["prior"].update(recall=-0.1)), "samples.prior.recall: must be >= 0"),
        (broken(lambda p: p.pop("samples_mlp_judge")), "samples_mlp_judge: missing"),
        (broken(lambda p: p["samples_mlp_judge"]["prior"].pop("coverage")),
         "samples_mlp_judge.prior.coverage: missing"),
        (broken(lambda p: p["samples_mlp_judge"]["gmm"].update(precision=1.5)),
         "samples_mlp_judge.gmm.precision: must be <= 1"),
        (broken(lambda p: p["samples_mlp_judge"]["prior"].update(class_histogram=[3] * 10)),
         "samples_mlp_judge.prior.class_histogram: counts sum to 30, not samples_mlp_judge.prior.count 20"),
        (broken(lambda p: p["samples_mlp_judge"]["prior"].update(count=30, class_histogram=[3] * 10)),
         "samples_mlp_judge.prior.count: 30, not samples.prior.count 20 (both judges judge the same samples)"),
        (broken(lambda p: p["manifold"].update(roughness=0.3)),
         "manifold.roughness: must be null unless the latent is 2-D, got 0.3"),
        (broken(lambda p: p["manifold"].update(corner_confidence=None), two_d_payload),
         "manifold.corner_confidence: must not be null"),
        (broken(lambda p: p["interpolation"].update(frame_labels=[0, -1])), "interpolation.frame_labels: must be >= 0"),
        (broken(lambda p: p.update(test=[])), "test: expected a mapping"),
        (broken(lambda p: p["convergence"].update(flat=False)),
         "convergence.converged: disagrees with epochs, window, flat and the stable sets"),
        (broken(lambda p: p["convergence"].update(epochs=3)), "convergence.converged: disagrees"),
        (broken(lambda p: p["convergence"].update(converged="yes")), "convergence.converged: expected true or false"),
        (broken(lambda p: p["convergence"].update(window=1)), "convergence.window: must be >= 2"),
    ],
)
def test_schema_violations_are_named(payload, culprit):
    with pytest.raises(MetricsError, match=re.escape(culprit)) as caught:
        check_metrics(payload)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("key", ["distortion", "rate", "neg_elbo", "nll_iw", "nll_iw_se", "nll_iw_mc_se"])
def test_a_deterministic_code_must_have_null_likelihoods(key):
    payload = ae_payload()
    payload["test"][key] = 90.0
    with pytest.raises(MetricsError, match=f"^test.{key}: must be null for a deterministic code, got 90.0$"):
        check_metrics(payload)


def test_a_deterministic_code_must_have_null_kl_per_dim():
    payload = ae_payload()
    payload["latent"]["kl_per_dim"] = [0.0, 0.0, 0.0]
    with pytest.raises(MetricsError, match=r"^latent\.kl_per_dim: must be null for a deterministic code"):
        check_metrics(payload)


def test_a_deterministic_code_must_say_why():
    payload = ae_payload()
    payload["test"]["note"] = None
    with pytest.raises(MetricsError, match=r"^test\.note: a deterministic model needs a note"):
        check_metrics(payload)


def test_lookup_follows_dotted_keys():
    payload = vae_payload()
    assert lookup(payload, "test.nll_iw") == 96.3
    assert lookup(payload, "samples.gmm.precision") == 0.7
    with pytest.raises(KeyError):
        lookup(payload, "test.missing")


def test_scalars_for_mlflow_skip_nulls_strings_bools_and_lists():
    scalars = metric_scalars(ae_payload())
    assert scalars["test.recon_bce"] == 80.5 and scalars["latent.active_units"] == 2.0 and scalars["seed"] == 0.0
    assert scalars["samples.gmm.frechet_distance"] == 3.5
    for absent in ("test.nll_iw", "probe.method", "latent.activity", "stochastic", "dataset", "manifold.roughness"):
        assert absent not in scalars
    numeric = {k for k, m in METRICS.items() if m.kind in ("int", "float")}
    manifold = {k for k in METRICS if k.startswith("manifold.")}
    likelihoods = {"test.distortion", "test.rate", "test.neg_elbo", "test.nll_iw", "test.nll_iw_se", "test.nll_iw_mc_se"}
    nulls = {*likelihoods, *manifold}
    assert set(scalars) == numeric - nulls
    assert set(metric_scalars(two_d_payload())) == numeric


def test_series_for_mlflow_are_the_lists_that_are_not_null():
    lists = ["latent.activity", "latent.usage", "latent.usage_share", "samples.prior.class_histogram",
             "samples.gaussian.class_histogram", "samples.gmm.class_histogram", "interpolation.frame_labels",
             *(f"samples_mlp_judge.{source}.class_histogram" for source in SAMPLE_SOURCES)]
    series = metric_series(ae_payload())
    assert sorted(series) == sorted(lists)
    assert series["latent.activity"] == [1.1, 0.9, 0.001]
    assert series["interpolation.frame_labels"] == [0.0, 0.0, 6.0, 7.0, 7.0]
    assert sorted(metric_series(vae_payload())) == sorted([*lists, "latent.kl_per_dim"])


def test_check_does_not_modify_the_payload():
    payload = vae_payload()
    before = copy.deepcopy(payload)
    check_metrics(payload)
    assert payload == before


def test_the_schema_module_loads_without_torch():
    # The report stage reads METRIC_DOCS and check_metrics; it must not pay for importing torch.
    code = "import sys, aebench.evaluation.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
