"""Backbones x variants: shapes, gradient flow, what a model derives from its config, checkpoints and their refusal."""

from __future__ import annotations

import copy
import math
import re
import typing

import pytest
import torch
from helpers import make_model, replicate, tiny_config, tiny_params
from torch import nn

import aebench
from aebench.common.errors import CheckpointError, ConfigError
from aebench.models.autoencoder import build_model, model_config
from aebench.common.config import NetworkParams
from aebench.models.backbones import BACKBONES, PIXEL_MEAN_DECODERS, emae_conv_backbone, gdl_conv_backbone
from aebench.models.checkpoint import FORMAT, check_checkpoint_config, load_model, save_checkpoint
from aebench.models.likelihood import Bernoulli, Gaussian

VARIANTS = ("ae", "vae", "emae")


def linear_sizes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("arch", sorted(BACKBONES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_every_parameter_gets_a_gradient(variant, arch):
    likelihood = "gaussian" if arch in PIXEL_MEAN_DECODERS else "bernoulli"
    model = make_model(tiny_config(variant, latent_dim=3, network__arch=arch, likelihood__name=likelihood))
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 3)
    assert (logvar is None) == (variant == "ae")
    if logvar is not None:
        assert logvar.shape == (5, 3)
    assert model.decode(mu).shape == (5, 1, 28, 28)
    assert model.decode(torch.randn(4, 5, 3)).shape == (4, 5, 1, 28, 28)  # K samples per image at once
    assert model.forward(x).shape == (5, 1, 28, 28)

    terms = model.loss_terms(x, generator=torch.Generator().manual_seed(0))
    terms["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_the_model_derives_what_it_is_from_its_config():
    model = make_model(tiny_config("emae", latent_dim=5, seed=2, train__mc_samples=4))
    assert (model.variant, model.latent_dim, model.mc_samples, model.code_activation) == ("emae", 5, 4, "none")
    assert model.weights == {"beta": 1.0, "gamma": 0.0}
    assert model.stochastic and model.objective.function.__name__ == "kl_split"
    assert isinstance(model.likelihood, Bernoulli)
    ae = make_model(tiny_config("ae", likelihood__name="gaussian", likelihood__gaussian_std=0.3))
    assert not ae.stochastic and ae.weights == {} and ae.logvar_head is None
    assert isinstance(ae.likelihood, Gaussian) and ae.likelihood.std == 0.3


def test_decode_images_are_the_likelihoods_pixel_means():
    model = make_model(tiny_config("vae", latent_dim=2))
    z = torch.randn(7, 2) * 5
    torch.testing.assert_close(model.decode_images(z), torch.sigmoid(model.decode(z)))
    gaussian = make_model(tiny_config("vae", likelihood__name="gaussian"))
    images = gaussian.decode_images(z)
    assert images.min() >= 0 and images.max() <= 1


def test_mlp_backbone_mirrors_the_hidden_sizes():
    model = build_model(tiny_config("vae", latent_dim=7, network__hidden=[64, 32]))
    assert linear_sizes(model.encoder) == [(784, 64), (64, 32)]
    assert linear_sizes(model.decoder) == [(7, 32), (32, 64), (64, 784)]
    assert (model.mean_head.in_features, model.logvar_head.in_features) == (32, 32)


def test_mlp_hidden_layers_may_repeat():
    model = build_model(tiny_config("ae", latent_dim=3, network__hidden=[16, 16]))
    assert linear_sizes(model.encoder) == [(784, 16), (16, 16)]
    assert linear_sizes(model.decoder) == [(3, 16), (16, 16), (16, 784)]


def test_mlp_without_hidden_layers_is_784_d_784():
    model = make_model(tiny_config("ae", latent_dim=36, network__hidden=[], network__code_activation="relu"))
    assert linear_sizes(model.encoder) == [] and linear_sizes(model.mean_head) == [(784, 36)]
    assert linear_sizes(model.decoder) == [(36, 784)]
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model.encode(x)[0], torch.relu(model.mean_head(x.flatten(1))))
    assert model.decode(torch.zeros(2, 36)).shape == (2, 1, 28, 28)


def test_emae_conv_shapes_and_dropout_only_in_training():
    backbone = emae_conv_backbone(latent_dim=6)
    x = torch.rand(4, 1, 28, 28)
    assert backbone.features == 128
    assert backbone.encoder(x).shape == (4, 128)
    assert backbone.decoder(torch.randn(9, 6)).shape == (9, 1, 28, 28)
    backbone.encoder.eval()
    assert torch.equal(backbone.encoder(x), backbone.encoder(x))
    backbone.encoder.train()
    torch.manual_seed(0)
    first = backbone.encoder(x)
    second = backbone.encoder(x)
    assert not torch.equal(first, second)  # dropout draws a new mask each pass
    backbone.encoder.eval()
    zeros_in_eval = (backbone.encoder(x) == 0).float().mean()
    assert (first == 0).float().mean() > zeros_in_eval + 0.1  # dropout 0.5 zeroes half of what ReLU left


def test_the_params_loader_knows_every_backbone_by_name():
    assert typing.get_args(typing.get_type_hints(NetworkParams)["arch"]) == tuple(BACKBONES)


def test_gdl_conv_has_the_books_layers_in_the_books_order():
    backbone = gdl_conv_backbone(latent_dim=2)
    convolutions = [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride)
                    for m in backbone.encoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convolutions == [("Conv2d", 1, 32, (3, 3), (1, 1)), ("Conv2d", 32, 64, (3, 3), (2, 2)),
                            ("Conv2d", 64, 64, (3, 3), (2, 2)), ("Conv2d", 64, 64, (3, 3), (1, 1))]
    transposed = [(m.in_channels, m.out_channels, m.kernel_size, m.stride)
                  for m in backbone.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert transposed == [(64, 64, (3, 3), (1, 1)), (64, 64, (3, 3), (2, 2)), (64, 32, (3, 3), (2, 2)),
                          (32, 1, (3, 3), (1, 1))]
    # A LeakyReLU with Keras' slope after every encoder convolution; no batch norm, no dropout (the notebooks').
    kinds = [type(m).__name__ for m in backbone.encoder]
    assert kinds == ["Conv2d", "LeakyReLU"] * 4 + ["Flatten"]
    assert {m.negative_slope for m in backbone.encoder.modules() if isinstance(m, nn.LeakyReLU)} == {0.3}
    assert [type(m).__name__ for m in backbone.decoder] == (
        ["Linear", "Unflatten"] + ["ConvTranspose2d", "LeakyReLU"] * 3 + ["ConvTranspose2d", "Sigmoid"])
    assert linear_sizes(backbone.decoder) == [(2, 3136)]


def test_gdl_conv_shapes_follow_the_books_strides():
    backbone = gdl_conv_backbone(latent_dim=2)
    x = torch.rand(3, 1, 28, 28)
    sizes = []
    for layer in backbone.encoder:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(32, 28, 28), (64, 14, 14), (64, 7, 7), (64, 7, 7)]
    assert x.shape == (3, 3136) and backbone.features == 3136
    images = backbone.decoder(torch.randn(5, 2) * 50)  # far outside N(0, I): still pixel means
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


def test_gdl_conv_parameter_counts_are_the_keras_models():
    # Keras counts k*k*in*out + out per (transposed) convolution and in*out + out per dense layer. For the
    # book's layer list: encoder 320 + 18 496 + 36 928 + 36 928 + the dense 3136 -> 2 (6 274) = 98 946;
    # decoder 9 408 + 36 928 + 36 928 + 18 464 + 289 = 102 017; the VAE has a second dense head (log-variance).
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    for variant, heads in (("ae", 1), ("vae", 2)):
        model = make_model(tiny_config(variant, latent_dim=2, network__arch="gdl_conv", likelihood__name="gaussian"))
        heads_count = count(model.mean_head) + (count(model.logvar_head) if model.logvar_head is not None else 0)
        assert count(model.encoder) + count(model.mean_head) == 98_946
        assert heads_count == heads * 6_274
        assert count(model.decoder) == 102_017


def test_a_pixel_mean_decoder_needs_the_gaussian_likelihood():
    with pytest.raises(ConfigError) as caught:
        tiny_config("ae", network__arch="gdl_conv", likelihood__name="bernoulli")
    assert str(caught.value).startswith("network.arch: gdl_conv's decoder ends in a sigmoid")


def test_relu_code_activation_gives_non_negative_codes():
    x = torch.rand(64, 1, 28, 28)
    plain = make_model(tiny_config("ae", latent_dim=8))
    relu = make_model(tiny_config("ae", latent_dim=8, network__code_activation="relu"))
    assert plain.encode(x)[0].min() < 0  # without it, codes take both signs
    codes = relu.encode(x)[0]
    assert codes.min() == 0 and (codes == 0).any() and (codes > 0).any()
    torch.testing.assert_close(codes, plain.encode(x)[0].clamp(min=0))  # the same weights (same seed), clipped


def test_xavier_uniform_gives_zero_biases_and_weights_within_the_glorot_bound():
    for arch in ("mlp", "emae_conv"):
        model = make_model(tiny_config("vae", network__arch=arch, network__init="xavier_uniform"))
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        assert layers
        for layer in layers:
            assert not layer.bias.any()
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound  # drawn over the whole interval, not a narrower one
    default = make_model(tiny_config("vae"))
    assert default.mean_head.bias.any()  # PyTorch's default initialisation has non-zero biases


def test_variants_differ_only_in_the_log_variance_head():
    names = {variant: set(build_model(tiny_config(variant)).state_dict()) for variant in VARIANTS}
    assert names["vae"] == names["emae"]
    assert names["vae"] - names["ae"] == {"logvar_head.weight", "logvar_head.bias"}


def test_the_same_seed_gives_the_same_initial_weights():
    a, b = make_model(tiny_config("vae")), make_model(tiny_config("vae"))
    c = make_model(tiny_config("vae", seed=1))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.mean_head.weight, c.mean_head.weight)


# --- model_config ------------------------------------------------------------------


def test_model_config_is_what_defines_one_trained_model():
    params = tiny_params(train__lr=2e-3, data__binarize="none")
    config = model_config(params, replicate("emae", latent_dim=30, seed=2))
    assert list(config) == ["dataset", "latent_dim", "seed", "variant", "network", "likelihood", "train", "data"]
    assert (config["dataset"], config["latent_dim"], config["seed"]) == ("mnist", 30, 2)
    assert config["variant"] == {"name": "emae", "objective": "kl_split", "beta": 1.0, "gamma": 0.0}
    assert config["train"]["lr"] == 2e-3 and config["network"]["hidden"] == [32]
    assert config["data"] == {"binarize": "none"}


@pytest.mark.parametrize(
    ("dotted", "value", "variant", "expected"),
    [
        ("variants.vae", {"objective": "adversarial"}, "vae", "variants.vae.objective: unknown objective"),
        ("variants.vae", {"objective": "kl_split", "beta": 1.0}, "vae", "variants.vae.gamma: missing"),
        ("variants.ae", {"objective": "deterministic", "beta": 1.0}, "ae", "variants.ae.beta: not a weight"),
    ],
)
def test_model_config_refuses_what_cannot_be_built_naming_the_key(dotted, value, variant, expected):
    params = tiny_params(**{dotted.replace(".", "__"): value})
    with pytest.raises(ConfigError) as caught:
        model_config(params, replicate(variant))
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_model_config_refuses_a_variant_params_lacks():
    with pytest.raises(ConfigError, match=r"^variants: no variant 'beta_vae' \(params has ae, vae, emae\)$"):
        model_config(tiny_params(), replicate("beta_vae"))


# --- checkpoints ------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    model = make_model(tiny_config("vae", latent_dim=4))
    path = tmp_path / "models" / "seed-0.pt"
    save_checkpoint(path, model, epochs_done=5)
    return model, path


def test_saving_the_same_model_twice_gives_identical_bytes(saved, tmp_path):
    model, path = saved
    elsewhere = tmp_path / "another" / "folder" / "renamed.pt"
    save_checkpoint(elsewhere, model, epochs_done=5)
    assert elsewhere.read_bytes() == path.read_bytes()
    other = tmp_path / "other.pt"
    save_checkpoint(other, model, epochs_done=6)
    assert other.read_bytes() != path.read_bytes()  # the bytes do depend on what is saved


def test_checkpoint_round_trip(saved):
    model, path = saved
    loaded = aebench.load_model(path)
    assert aebench.load_model is load_model
    assert not loaded.training
    assert (loaded.variant, loaded.latent_dim) == ("vae", 4)
    assert loaded.config == model.config
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
    payload = torch.load(path, weights_only=True)
    assert (payload["format"], payload["epochs_done"]) == (FORMAT, 5)
    assert [p.name for p in path.parent.iterdir()] == ["seed-0.pt"]  # no temporary file left beside it


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pt: checkpoint not found"):
        load_model(tmp_path / "nowhere.pt")


def test_truncated_checkpoint_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="seed-0.pt: not a readable checkpoint"):
        load_model(path)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match="noise.pt: not a readable checkpoint"):
        load_model(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="foreign.pt: not an aebench checkpoint"):
        load_model(path)


def test_checkpoint_lacking_a_part_is_refused(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    del payload["epochs_done"]
    bad = tmp_path / "partial.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=r"partial.pt: checkpoint lacks epochs_done$"):
        load_model(bad)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    other = copy.deepcopy(payload)
    other["config"]["latent_dim"] = 9  # the stored weights are for 4 dimensions
    bad = tmp_path / "mismatch.pt"
    torch.save(other, bad)
    with pytest.raises(CheckpointError, match="mismatch.pt: weights do not match the model's architecture"):
        load_model(bad)


def test_a_config_that_cannot_be_built_is_refused(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["config"]["variant"]["objective"] = "adversarial"
    bad = tmp_path / "unknown.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="unknown.pt: bad config in checkpoint"):
        load_model(bad)


# --- a checkpoint must be the model it is used as ---------------------------------------


@pytest.mark.parametrize(
    ("expected_as", "key", "held", "wanted"),
    [
        ({"latent_dim": 2}, "latent_dim", "4", "2"),
        ({"seed": 1}, "seed", "0", "1"),
        ({"variant": "emae"}, "variant.name", "'vae'", "'emae'"),
        ({"dataset": "fashion_mnist"}, "dataset", "'mnist'", "'fashion_mnist'"),
    ],
)
def test_a_checkpoint_of_another_model_is_refused_naming_file_and_key(saved, expected_as, key, held, wanted):
    _, path = saved  # a vae, latent 4, seed 0, mnist
    target = {"variant": "vae", "latent_dim": 4, "seed": 0, "dataset": "mnist", **expected_as}
    expected = model_config(tiny_params(datasets=["mnist", "fashion_mnist"]), replicate(**target))
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint_config(path, expected)
    assert str(caught.value) == f"{path}: holds {key} = {held}, but is evaluated as {key} = {wanted}"


def test_a_stale_checkpoint_is_refused_naming_the_first_differing_key(saved):
    _, path = saved
    check_checkpoint_config(path, tiny_config("vae", latent_dim=4))  # the same config passes
    stale = tiny_config("vae", latent_dim=4, train__lr=2e-3, network__activation="tanh")
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint_config(path, stale)
    assert str(caught.value) == (
        f"{path}: trained with network.activation = 'relu', params now say 'tanh' (retrain it: dvc repro)"
    )
    with pytest.raises(CheckpointError, match=re.escape("trained with train.lr = 0.001, params now say 0.002")):
        check_checkpoint_config(path, tiny_config("vae", latent_dim=4, train__lr=2e-3))


def test_checking_a_missing_checkpoint_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="absent.pt: checkpoint not found"):
        check_checkpoint_config(tmp_path / "absent.pt", tiny_config())
