"""A model of the tiny study loads through MLflow's own API as the same autoencoder as `aebench.load_model`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aebench import load_model
from aebench.common.layout import ModelKey
from aebench.common.tracking import REPLICATE_TAG, open_store
from aebench.data.prepared import load_prepared
from aebench.models.logged_model import logged_model_id


@pytest.fixture
def mlflow_at(tiny_study, monkeypatch):
    """MLflow's API pointed at the tiny study's store, as a user would point it."""
    store = open_store("sqlite:///mlflow.db", "aebench", workspace=tiny_study)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    return store


@pytest.mark.parametrize("variant", ["vae", "ae"])
def test_a_study_model_loads_through_mlflow_with_the_checkpoints_posterior_means(tiny_study, mlflow_at, variant):
    import mlflow.pyfunc
    import mlflow.pytorch

    replicate = ModelKey("mnist", variant, 2).replicate(0)
    client = mlflow_at.client()
    experiment = client.get_experiment_by_name("aebench")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`{REPLICATE_TAG}` = '{replicate.name}'")
    model_id = logged_model_id(client, run.info.run_id)
    images = load_prepared(tiny_study / "data" / "prepared" / "mnist.npz").split("test", limit=50)[0]

    ours = load_model(replicate.path(tiny_study / "models", ".pt"))
    theirs = mlflow.pytorch.load_model(f"models:/{model_id}")
    with torch.no_grad():
        assert torch.equal(theirs.encode(images)[0], ours.encode(images)[0])
        reconstructions = ours(images).numpy()
    assert np.array_equal(mlflow.pyfunc.load_model(f"models:/{model_id}").predict(images.numpy()), reconstructions)

    # The model page shows the evaluation's numbers: they are linked to the model, not only to its run.
    linked = {metric.key: metric.value for metric in client.get_logged_model(model_id).metrics}
    assert linked["test.recon_bce"] == run.data.metrics["test.recon_bce"]
    assert "val_loss" in linked  # and its last epoch's
