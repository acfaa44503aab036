"""aebench: AE, VAE and EM-AE compared on MNIST and Fashion-MNIST.

The public entry point is `aebench.load_model(path)`; everything else is
reached through the stage scripts in `stages/` that `dvc.yaml` runs.
"""

__all__ = ["load_model"]


def __getattr__(name: str):
    # Imported lazily so that importing any part of aebench does not pull in torch and the models.
    if name == "load_model":
        from aebench.models.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'aebench' has no attribute {name!r}")
