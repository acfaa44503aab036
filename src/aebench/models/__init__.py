"""AE, VAE and EM-AE on shared backbones; their objectives; checkpoints.

API (what training, evaluation and figures use):

- `resolved_config(params, dataset=, model=, latent_dim=) -> dict`: the config
  that defines one model: `dataset`, `latent_dim`, `seed`, and the params
  sections `data`, `model`, `train` (plain dicts); the model name (ae, vae,
  emae) is `config["model"]["name"]`.
- `build_model(config) -> Autoencoder` (fresh weights; unknown name/arch/
  likelihood or latent_dim < 1 -> ConfigError). `MODELS` maps each name to its
  `ModelSpec(objective, stochastic, terms)`; `BACKBONES` maps `mlp`/`conv`.
- An `Autoencoder` has `encode(x) -> (mu, logvar)` with x (B, 1, 28, 28) in
  [0, 1], mu/logvar (B, D) and logvar None for the AE; `decode(z) -> (..., 1,
  28, 28)` for z (..., D): Bernoulli logits, or the Gaussian mean; `loss_terms(x,
  generator=)` -> {term: scalar}; attributes `kind`, `latent_dim`,
  `likelihood`, `gaussian_std`, `beta`, `mc_samples`, `config`, `mlflow_run_id`.
- `objectives`: `ae_objective`, `vae_objective`, `emae_objective` (terms in
  nats per image), and per-image pieces `reconstruction_nll(output, x,
  likelihood, gaussian_std) -> (...,)`, `gaussian_kl(mu, logvar) -> (B, D)`,
  `gaussian_log_density(z, mu, logvar) -> (...,)`, `reparameterize`.
- `save_checkpoint(path, model, mlflow_run_id=, epochs_done=)` (atomic) and
  `load_model(path)` (eval mode, CPU; missing, truncated, foreign or
  mismatched files -> CheckpointError naming the file). `aebench.load_model`
  is the same function.
"""

from aebench.models import objectives
from aebench.models.autoencoder import MODELS, Autoencoder, ModelSpec, build_model, resolved_config
from aebench.models.backbones import BACKBONES
from aebench.models.checkpoint import FORMAT, load_model, read_checkpoint, save_checkpoint
from aebench.models.objectives import gaussian_kl, gaussian_log_density, reconstruction_nll, reparameterize

__all__ = [
    "BACKBONES",
    "FORMAT",
    "MODELS",
    "Autoencoder",
    "ModelSpec",
    "build_model",
    "gaussian_kl",
    "gaussian_log_density",
    "load_model",
    "objectives",
    "read_checkpoint",
    "reconstruction_nll",
    "reparameterize",
    "resolved_config",
    "save_checkpoint",
]
