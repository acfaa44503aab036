"""A trained model in MLflow's own model format: an MLflow 3 logged model of its training run.

The train stage logs every checkpoint it writes once more, as an MLflow model
(`mlflow.pytorch` flavor) linked to its run: the run's params and tags, its
last epoch's metrics (MLflow links a run's metrics to the model it logged at
that step) and, later, its evaluation metrics (`aebench.evaluation.tracking` logs them with
this model's id). So the best run found in the MLflow UI loads with MLflow's
own API:

- `mlflow.pytorch.load_model("models:/<model_id>")` is the `Autoencoder`
  itself (`encode`, `decode`, `decode_images`), the same weights as
  `aebench.load_model(<checkpoint>)`;
- `mlflow.pyfunc.load_model(...).predict(images)` maps float32 images
  (N, 1, 28, 28) in [0, 1] to their reconstructions (N, 1, 28, 28): the
  decoder's pixel means at the posterior mean (`Autoencoder.forward`).

The model is pickled (MLflow's "pickle" format), not exported as a traced
graph ("pt2"): a traced graph keeps `forward` only, not the autoencoder's
`encode` and `decode`. Its class is pickled by reference, so loading needs
`aebench` importable (the project's venv, or `pip install -e .`), as
`aebench.load_model` does.

The checkpoint stays the DVC output and the project's way in
(`aebench.load_model`); the logged model lives in the MLflow store only, so
it changes no DVC hash.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from aebench.models.autoencoder import Autoencoder

IMAGE_SHAPE = (1, 28, 28)


def log_trained_model(client: Any, run_id: str, model: Autoencoder, *, step: int = 0) -> str:
    """Log `model` as an MLflow model of run `run_id`, named as the run (the replicate); returns its model id.

    `step` is the epoch it is the model of: MLflow links the run's metrics at that step to it.
    """
    import mlflow.pytorch

    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=run.info.run_name, source_run_id=run_id, params=run.data.params,
        tags={key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")},
        model_type=f"aebench/{model.variant}",
    )
    with _tracking_uri(client.tracking_uri), _pickling_warning_off():
        mlflow.pytorch.log_model(
            model.eval(), model_id=logged.model_id, run_id=run_id, step=step, serialization_format="pickle",
            signature=signature(), input_example=input_example(model),
            pip_requirements=mlflow.pytorch.get_default_pip_requirements(),  # not inferred: that costs seconds
        )
    return logged.model_id


def logged_model_id(client: Any, run_id: str) -> str | None:
    """The newest model that run `run_id` logged, or None (a run of a version before models were logged)."""
    run = client.get_run(run_id)
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}], max_results=1,
    )
    return models[0].model_id if models else None


def signature():
    """Images in, reconstructions out: float32 (N, 1, 28, 28) both, pixel values in [0, 1]."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    images = Schema([TensorSpec(np.dtype(np.float32), (-1, *IMAGE_SHAPE))])
    return ModelSignature(inputs=images, outputs=images)


@torch.no_grad()
def input_example(model: Autoencoder) -> np.ndarray:
    """One image the model itself draws at the origin of its code (an image of its kind, no data needed)."""
    image = model.decode_images(torch.zeros(1, model.latent_dim))
    return image.numpy().astype(np.float32).round(3)  # three decimals: a small example file, a valid image


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    # mlflow.pytorch.log_model talks to the process's tracking URI, not to a client: point it at the store,
    # then back to "not set" (aebench never sets it otherwise). MLflow mirrors it in $MLFLOW_TRACKING_URI,
    # which decides the store of every later stage call (aebench.common.tracking): restore that exactly.
    import mlflow

    environment = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        if environment is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = environment


@contextlib.contextmanager
def _pickling_warning_off() -> Iterator[None]:
    # MLflow warns on every pickled model; pickling is this module's deliberate choice (see above).
    logger = logging.getLogger("mlflow.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
