"""aebench: AE, VAE and EM-AE compared on MNIST and Fashion-MNIST.

The public entry point is `aebench.load_model(path)`; everything else is
reached through the stage scripts in `stages/` that `dvc.yaml` runs.
"""

__all__ = ["load_model"]


def __getattr__(name: str):
    # Imported lazily so that `aebench.common` and `aebench.data` load without
    # pulling in the models (and the report stage never imports torch.nn code).
    if name == "load_model":
        from aebench.models import load_model

        return load_model
    raise AttributeError(f"module 'aebench' has no attribute {name!r}")
