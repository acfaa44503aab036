"""The history CSV's per-dimension columns, named here once for the trainer that writes them and the readers.

Torch-free, so the report and the convergence test read histories without importing torch.
Besides `epoch`, `train_<term>` and `val_<term>` (nats per image), each epoch records per
latent dimension u, on the validation split:

- `val_activity_<u>`: A_u, the variance of u's posterior mean (`aebench.evaluation.activity`);
- `val_usage_<u>`: the decoder's usage of u (`aebench.evaluation.usage`), on a fixed subset.
"""

from __future__ import annotations

from collections.abc import Iterable

ACTIVITY_PREFIX = "val_activity_"
USAGE_PREFIX = "val_usage_"


def dimension_column(prefix: str, dimension: int) -> str:
    """The column of latent dimension `dimension` (0-based) for the per-dimension kind `prefix`."""
    return f"{prefix}{dimension:03d}"


def dimension_columns(columns: Iterable[str], prefix: str) -> dict[int, str]:
    """{dimension: column} for the columns that start with `prefix`, in dimension order."""
    found = {int(name[len(prefix):]): name for name in columns if name.startswith(prefix)}
    return dict(sorted(found.items()))
