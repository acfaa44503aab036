"""params.yaml is validated: bad values are refused with the key in the message."""

import copy
from pathlib import Path

import pytest
import yaml

from aebench.common.config import flatten, load_params, params_from_dict
from aebench.common.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_value(raw: dict, dotted: str, value) -> dict:
    changed = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = changed
    for name in parents:
        node = node[name]
    node[leaf] = value
    return changed


def test_repository_params_load(raw_params):
    params = load_params(REPO / "params.yaml")
    assert params.latent_dims == tuple(raw_params["latent_dims"])
    assert params.model.hidden == tuple(raw_params["model"]["hidden"])
    assert params.to_dict()["train"] == raw_params["train"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("latent_dims", [-3], "latent_dims[0]: must be >= 1, got -3"),
        ("latent_dims", [2, 2], "latent_dims: contains duplicates"),
        ("models", ["ae", "gan"], "models[1]: must be one of ae, vae, emae, got 'gan'"),
        ("train.epochs", 0, "train.epochs: must be >= 1, got 0"),
        ("train.epochs", True, "train.epochs: expected int, got True"),
        ("train.epochs", "ten", "train.epochs: expected int, got 'ten'"),
        ("train.lr", 0, "train.lr: must be > 0, got 0.0"),
        ("model.arch", "resnet", "model.arch: must be one of mlp, conv, got 'resnet'"),
        ("device", "tpu", "device: must be one of auto, cpu, cuda"),
        ("data.subset", 0, "data.subset: must be >= 1, got 0"),
        ("datasets", [], "datasets: expected a non-empty list"),
        ("mlflow.experiment", " ", "mlflow.experiment: must not be empty"),
    ],
)
def test_bad_values_are_refused_naming_the_key(raw_params, key, value, expected):
    with pytest.raises(ConfigError) as caught:
        params_from_dict(with_value(raw_params, key, value))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_key_is_refused(raw_params):
    raw = with_value(raw_params, "train.epoch", 3)
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key"):
        params_from_dict(raw)


def test_missing_key_is_refused(raw_params):
    raw = copy.deepcopy(raw_params)
    del raw["evaluate"]["iw_samples"]
    with pytest.raises(ConfigError, match=r"evaluate\.iw_samples: missing"):
        params_from_dict(raw)


def test_null_allowed_only_where_optional(raw_params):
    assert params_from_dict(with_value(raw_params, "data.source_dir", "/data")).data.source_dir == "/data"
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected int, got None"):
        params_from_dict(with_value(raw_params, "train.batch_size", None))


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: params file not found"):
        load_params(tmp_path / "nothere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_params(broken)


def test_flatten_uses_dotted_names():
    assert flatten({"train": {"lr": 0.1, "epochs": 2}, "seed": 0}) == {"train.lr": 0.1, "train.epochs": 2, "seed": 0}
