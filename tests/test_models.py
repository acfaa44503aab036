"""Backbones x models: shapes, gradient flow, the registry, checkpoints and their refusal."""

from __future__ import annotations

import copy

import pytest
import torch

import aebench
from aebench.common.config import load_params
from aebench.common.errors import CheckpointError, ConfigError
from aebench.models import BACKBONES, FORMAT, MODELS, build_model, load_model, resolved_config, save_checkpoint


def config_for(kind: str, arch: str = "mlp", latent_dim: int = 3) -> dict:
    config = resolved_config(load_params("params.yaml"), dataset="mnist", model=kind, latent_dim=latent_dim)
    config["model"].update(arch=arch, hidden=[64, 32])
    return config


@pytest.mark.parametrize("arch", sorted(BACKBONES))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_shapes_and_every_parameter_gets_a_gradient(kind, arch):
    torch.manual_seed(0)
    model = build_model(config_for(kind, arch))
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 3)
    assert (logvar is None) == (kind == "ae")
    if logvar is not None:
        assert logvar.shape == (5, 3)
    assert model.decode(mu).shape == (5, 1, 28, 28)
    assert model.decode(torch.randn(4, 5, 3)).shape == (4, 5, 1, 28, 28)  # K samples per image at once
    assert (model.kind, model.latent_dim, model.likelihood) == (kind, 3, "bernoulli")

    terms = model.loss_terms(x, generator=torch.Generator().manual_seed(0))
    assert set(terms) == set(MODELS[kind].terms)
    terms["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_mlp_backbone_mirrors_the_hidden_sizes():
    model = build_model(config_for("vae", "mlp", latent_dim=7))
    encoder_sizes = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, torch.nn.Linear)]
    decoder_sizes = [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert encoder_sizes == [(784, 64), (64, 32)]
    assert decoder_sizes == [(7, 32), (32, 64), (64, 784)]


def test_models_differ_only_in_the_log_variance_head():
    names = {kind: set(build_model(config_for(kind)).state_dict()) for kind in MODELS}
    assert names["vae"] == names["emae"]
    assert names["vae"] - names["ae"] == {"logvar_head.weight", "logvar_head.bias"}


@pytest.mark.parametrize(
    ("edit", "culprit"),
    [
        (lambda c: c["model"].update(name="gan"), "'gan'"),
        (lambda c: c.update(latent_dim=0), "latent_dim"),
        (lambda c: c.update(latent_dim=-3), "-3"),
        (lambda c: c["model"].update(arch="resnet"), "'resnet'"),
        (lambda c: c["model"].update(likelihood="poisson"), "'poisson'"),
        (lambda c: c["model"].pop("beta"), "model.beta"),
    ],
)
def test_bad_config_is_refused_naming_the_culprit(edit, culprit):
    config = config_for("vae")
    edit(config)
    with pytest.raises(ConfigError, match=culprit):
        build_model(config)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(config_for("vae", latent_dim=4))
    path = tmp_path / "models" / "vae-4.pt"
    save_checkpoint(path, model, mlflow_run_id="run123", epochs_done=5)
    return model, path


def test_checkpoint_round_trip(saved):
    model, path = saved
    loaded = aebench.load_model(path)
    assert aebench.load_model is load_model
    assert not loaded.training
    assert (loaded.kind, loaded.latent_dim, loaded.mlflow_run_id) == ("vae", 4, "run123")
    assert loaded.config == model.config
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
    payload = torch.load(path, weights_only=True)
    assert (payload["format"], payload["epochs_done"]) == (FORMAT, 5)
    assert [p.name for p in path.parent.iterdir()] == ["vae-4.pt"]  # no temporary file left beside it


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        load_model(tmp_path / "nowhere.pt")


def test_truncated_checkpoint_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="vae-4.pt"):
        load_model(path)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match="noise.pt"):
        load_model(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="foreign.pt.*not an aebench checkpoint"):
        load_model(path)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    model, path = saved
    payload = torch.load(path, weights_only=True)
    other = copy.deepcopy(payload)
    other["config"]["latent_dim"] = 9  # the stored weights are for 4 dimensions
    bad = tmp_path / "mismatch.pt"
    torch.save(other, bad)
    with pytest.raises(CheckpointError, match="mismatch.pt.*architecture"):
        load_model(bad)
