"""params.yaml is read as DVC reads it (YAML 1.2) and validated: bad values are refused naming the key."""

from __future__ import annotations

import copy
import math

import pytest
import yaml
from helpers import REPO, repository_raw, set_dotted

from aebench.common.config import Variant, flatten, load_params, params_from_dict
from aebench.common.errors import ConfigError

PARAMS_TEXT = (REPO / "params.yaml").read_text()


def with_value(dotted: str, value) -> dict:
    return set_dotted(repository_raw(), dotted, value)


def params_file_with(tmp_path, old: str, new: str):
    """The repository's params.yaml with one line's text replaced, as a user would edit it."""
    assert PARAMS_TEXT.count(old) == 1, old
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_TEXT.replace(old, new))
    return path


def refusal(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        params_from_dict(raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_repository_params_load():
    raw = repository_raw()
    params = load_params(REPO / "params.yaml")
    assert params.seeds == tuple(raw["seeds"])
    assert params.latent_dims == tuple(raw["latent_dims"])
    assert params.network.hidden == tuple(raw["network"]["hidden"])
    assert params.to_dict()["train"] == raw["train"]
    assert list(params.variants) == list(raw["variants"])  # the file's order is the study's order
    for name, entry in raw["variants"].items():
        weights = {key: float(value) for key, value in entry.items() if key != "objective"}
        assert params.variants[name] == Variant(objective=entry["objective"], weights=weights)


def test_to_dict_is_what_validation_accepts():
    params = params_from_dict(with_value("variants", {"emae": {"objective": "kl_split", "beta": 1, "gamma": 0}}))
    plain = params.to_dict()
    assert plain["variants"] == {"emae": {"objective": "kl_split", "beta": 1.0, "gamma": 0.0}}
    assert isinstance(plain["network"]["hidden"], list)
    assert params_from_dict(copy.deepcopy(plain)) == params


# --- YAML 1.2, as DVC reads it ----------------------------------------------------


def test_exponent_without_a_dot_is_a_float_in_the_file(tmp_path):
    path = params_file_with(tmp_path, "  lr: 0.001                # Adam", "  lr: 1e-3                 # Adam")
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # PyYAML (YAML 1.1) would read a string here
    lr = load_params(path).train.lr
    assert type(lr) is float and lr == 0.001


def test_large_exponent_is_a_float_in_the_file(tmp_path):
    path = params_file_with(tmp_path, "  lr: 0.001                # Adam", "  lr: 1.0e12               # Adam")
    assert load_params(path).train.lr == 1e12


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_numbers_are_refused_under_their_own_key(tmp_path, text):
    path = params_file_with(tmp_path, "  au_threshold: 0.01 ", f"  au_threshold: {text} ")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: evaluate.au_threshold: must be a finite number, got ")
    assert "\n" not in message


def test_a_non_finite_weight_is_refused_naming_the_variant(tmp_path):
    path = params_file_with(tmp_path, "\nvariants:\n", "\nvariants:\n  beta_vae: {objective: kl_split, beta: .inf, gamma: 1.0}\n")
    with pytest.raises(ConfigError, match=r"variants\.beta_vae\.beta: must be a finite number, got inf$"):
        load_params(path)


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("seeds", [-1], "seeds[0]: must be >= 0, got -1"),
        ("seeds", [0, 0], "seeds: contains duplicates: [0, 0]"),
        ("seeds", [], "seeds: expected a non-empty list, got []"),
        ("seeds", 0, "seeds: expected a non-empty list, got 0"),
        ("latent_dims", [-3], "latent_dims[0]: must be >= 1, got -3"),
        ("latent_dims", [2, 2], "latent_dims: contains duplicates"),
        ("latent_dims", [2, 100000], "latent_dims[1]: must be <= 784 (the images' dimension, 28 x 28 pixels: "
                                     "a larger code compresses nothing), got 100000"),
        ("datasets", [], "datasets: expected a non-empty list"),
        ("datasets", ["cifar10"], "datasets[0]: must be one of mnist, fashion_mnist, got 'cifar10'"),
        ("train.epochs", 0, "train.epochs: must be >= 1, got 0"),
        ("train.epochs", True, "train.epochs: expected int, got True"),
        ("train.epochs", "ten", "train.epochs: expected int, got 'ten'"),
        ("train.epochs", 2.5, "train.epochs: expected int, got 2.5"),
        ("train.lr", 0, "train.lr: must be > 0, got 0.0"),
        ("train.lr", "1e-3", "train.lr: expected float, got '1e-3'"),
        ("train.drop_last", "yes", "train.drop_last: expected bool, got 'yes'"),
        ("network.arch", "resnet", "network.arch: must be one of mlp, conv, emae_conv, gdl_conv, got 'resnet'"),
        ("network.activation", "gelu", "network.activation: must be one of relu, tanh, got 'gelu'"),
        ("network.init", "he", "network.init: must be one of default, xavier_uniform, got 'he'"),
        ("network.code_activation", "tanh", "network.code_activation: must be one of none, relu, got 'tanh'"),
        ("network.hidden", [32, 0], "network.hidden[1]: must be >= 1, got 0"),
        ("network.hidden", "32", "network.hidden: expected a list, got '32'"),
        ("likelihood.name", "poisson", "likelihood.name: must be one of bernoulli, gaussian, got 'poisson'"),
        ("likelihood.gaussian_std", 0, "likelihood.gaussian_std: must be > 0, got 0.0"),
        ("device", "tpu", "device: must be one of auto, cpu, cuda"),
        ("data.subset", 0, "data.subset: must be >= 1, got 0"),
        ("data.binarize", "static", "data.binarize: must be one of none, dynamic, got 'static'"),
        ("evaluate.usage_images", 1, "evaluate.usage_images: must be >= 2, got 1"),
        ("convergence.window", 1, "convergence.window: must be >= 2, got 1"),
        ("convergence.tolerance_nats", -0.1, "convergence.tolerance_nats: must be >= 0, got -0.1"),
        ("claims.max_seeds", 1, "claims.max_seeds: must be >= 2, got 1"),
        ("mlflow.experiment", " ", "mlflow.experiment: must not be empty"),
        ("figures", [], "figures: expected a mapping, got []"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key, value, expected):
    message = refusal(with_value(key, value))
    assert message.startswith(f"params: {expected}")


@pytest.mark.parametrize("hidden", [[], [64, 64], [32, 32, 16]])
def test_hidden_layers_may_be_empty_and_may_repeat(hidden):
    assert params_from_dict(with_value("network.hidden", hidden)).network.hidden == tuple(hidden)


def test_unknown_key_is_refused():
    assert refusal(with_value("train.epoch", 3)).startswith("params: train.epoch: unknown key (expected one of epochs,")
    assert refusal(with_value("model", {})).startswith("params: model: unknown key")


def test_missing_key_is_refused():
    raw = repository_raw()
    del raw["evaluate"]["iw_samples"]
    assert refusal(raw) == "params: evaluate.iw_samples: missing"
    raw = repository_raw()
    del raw["variants"]
    assert refusal(raw) == "params: variants: missing"


def test_null_allowed_only_where_optional():
    assert params_from_dict(with_value("data.source_dir", "/data")).data.source_dir == "/data"
    assert params_from_dict(with_value("data.subset", None)).data.subset is None
    assert refusal(with_value("train.batch_size", None)) == "params: train.batch_size: expected int, got None"


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: params file not found"):
        load_params(tmp_path / "nothere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("seeds: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML") as caught:
        load_params(broken)
    assert "\n" not in str(caught.value)


def test_a_bad_value_in_a_file_names_the_file_and_the_key(tmp_path):
    path = params_file_with(tmp_path, "  epochs: 30\n", "  epochs: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: train.epochs: must be >= 1, got -1"


# --- variants -------------------------------------------------------------------------


def with_variants(variants) -> dict:
    return with_value("variants", variants)


def test_weights_are_floats_and_keep_their_order():
    params = params_from_dict(with_variants({"beta_vae": {"objective": "kl_split", "gamma": 1, "beta": 4}}))
    weights = params.variants["beta_vae"].weights
    assert weights == {"gamma": 1.0, "beta": 4.0} and list(weights) == ["gamma", "beta"]
    assert all(type(w) is float for w in weights.values())


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ({"VAE": {"objective": "kl_split"}}, "variants: 'VAE' is not a variant name: lowercase letters, digits and _"),
        ({"2vae": {"objective": "kl_split"}}, "variants: '2vae' is not a variant name"),
        ({"beta-vae": {"objective": "kl_split"}}, "variants: 'beta-vae' is not a variant name"),
        # `^...$` with re.match let a trailing newline through; the whole name must match
        ({"ab\n": {"objective": "kl_split"}}, "variants: 'ab\\n' is not a variant name"),
        ({"x;touch INJECTED;#": {"objective": "kl_split"}}, "variants: 'x;touch INJECTED;#' is not a variant name"),
        ({"vae": {"beta": 1.0}}, "variants.vae.objective: missing"),
        ({"vae": {"objective": 3}}, "variants.vae.objective: expected str, got 3"),
        ({"vae": "kl_split"}, "variants.vae: expected a mapping with `objective` and its weights, got 'kl_split'"),
        ({"vae": {"objective": "kl_split", "beta": "one"}}, "variants.vae.beta: expected float, got 'one'"),
        ({"vae": {"objective": "kl_split", "beta": True}}, "variants.vae.beta: expected float, got True"),
        ({"vae": {"objective": "kl_split", "beta": None}}, "variants.vae.beta: expected float, got None"),
        ({"vae": {"objective": "kl_split", "gamma": -1.0}}, "variants.vae.gamma: must be >= 0, got -1.0"),
        ({}, "variants: expected a non-empty mapping of variant name -> objective, got dict"),
        ([], "variants: expected a non-empty mapping of variant name -> objective, got []"),
    ],
)
def test_bad_variants_are_refused_naming_the_variant_and_key(variants, expected):
    assert refusal(with_variants(variants)).startswith(f"params: {expected}")


def test_asking_for_a_variant_params_lacks_names_the_known_ones():
    params = params_from_dict(with_variants({"vae": {"objective": "kl_split", "beta": 1.0, "gamma": 1.0},
                                             "ae": {"objective": "deterministic"}}))
    assert params.variant("vae").weights == {"beta": 1.0, "gamma": 1.0}
    with pytest.raises(ConfigError) as caught:
        params.variant("gan")
    assert str(caught.value) == "variants: no variant 'gan' (params has vae, ae)"


def test_flatten_uses_dotted_names():
    assert flatten({"train": {"lr": 0.1, "epochs": 2}, "seed": 0}) == {"train.lr": 0.1, "train.epochs": 2, "seed": 0}
    assert flatten({"variant": {"name": "vae", "beta": 1.0}, "network": {"hidden": [32]}}) == {
        "variant.name": "vae", "variant.beta": 1.0, "network.hidden": [32],
    }


def test_nan_from_a_dict_is_refused_too():
    assert refusal(with_value("train.lr", math.nan)) == "params: train.lr: must be a finite number, got nan"


def test_a_latent_size_up_to_the_images_dimension_is_accepted():
    assert params_from_dict(with_value("latent_dims", [1, 784])).latent_dims == (1, 784)
