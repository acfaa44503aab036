"""Where a model's files lie, what it is called, and which models a stage selects."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_params

from aebench.common.errors import ConfigError
from aebench.common.layout import ModelKey, Replicate, selected_keys


def study_params():
    return tiny_params(datasets=["mnist", "fashion_mnist"], latent_dims=[30, 2], seeds=[0, 1, 2])


def test_a_model_key_names_its_folder_and_its_runs():
    key = ModelKey("mnist", "vae", 30)
    assert key.stem == "mnist/vae/latent-30"
    assert key.name == "mnist-vae-30"
    assert key.folder("metrics") == Path("metrics/mnist/vae/latent-30")
    assert key.replicate(2) == Replicate(key, 2)


def test_a_replicate_names_its_files_under_any_root():
    replicate = ModelKey("fashion_mnist", "emae", 2).replicate(1)
    assert replicate.name == "fashion_mnist-emae-2-s1"
    assert replicate.path("models", ".pt") == Path("models/fashion_mnist/emae/latent-2/seed-1.pt")
    assert replicate.path(Path("/w/metrics"), ".json") == Path("/w/metrics/fashion_mnist/emae/latent-2/seed-1.json")


def test_keys_sort_by_dataset_variant_then_latent_size():
    keys = [ModelKey("mnist", "vae", 30), ModelKey("mnist", "vae", 2), ModelKey("fashion_mnist", "vae", 30)]
    assert [key.name for key in sorted(keys)] == ["fashion_mnist-vae-30", "mnist-vae-2", "mnist-vae-30"]
    assert sorted([Replicate(keys[0], 2), Replicate(keys[0], 0)])[0].seed == 0


def test_selected_keys_are_every_model_in_report_order():
    keys = selected_keys(study_params())
    assert [key.name for key in keys] == [
        "mnist-ae-30", "mnist-vae-30", "mnist-emae-30", "mnist-ae-2", "mnist-vae-2", "mnist-emae-2",
        "fashion_mnist-ae-30", "fashion_mnist-vae-30", "fashion_mnist-emae-30",
        "fashion_mnist-ae-2", "fashion_mnist-vae-2", "fashion_mnist-emae-2",
    ]  # params order: datasets, then latent sizes, then variants


def test_selectors_narrow_the_study():
    params = study_params()
    assert [k.name for k in selected_keys(params, dataset="fashion_mnist", variant="vae")] == [
        "fashion_mnist-vae-30", "fashion_mnist-vae-2"]
    assert [k.name for k in selected_keys(params, variant="ae", latent_dim=2)] == ["mnist-ae-2", "fashion_mnist-ae-2"]
    assert [k.name for k in selected_keys(params, dataset="mnist", variant="emae", latent_dim=30)] == ["mnist-emae-30"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"dataset": "fashion_mnist"}, "datasets: 'fashion_mnist' is not in params (mnist)"),
        ({"dataset": "cifar10"}, "datasets: 'cifar10' is not in params (mnist)"),
        ({"variant": "gan"}, "variants: no variant 'gan' (params has ae, vae, emae)"),
        ({"latent_dim": 7}, "latent_dims: 7 is not in params (2)"),
    ],
)
def test_a_selector_params_does_not_have_is_refused(selector, expected):
    with pytest.raises(ConfigError) as caught:
        selected_keys(tiny_params(), **selector)
    assert str(caught.value) == expected
