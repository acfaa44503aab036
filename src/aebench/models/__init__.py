"""Autoencoders on shared backbones, their objectives, their likelihood, checkpoints.

API (what training, evaluation and figures use):

- `model_config(params, replicate) -> dict`: the config that defines one
  trained model (dataset, latent_dim, seed, variant, network, likelihood,
  train, data.binarize); `build_model(config) -> Autoencoder` (fresh weights).
- An `Autoencoder` has `encode(x) -> (mu, logvar)` with x (B, 1, 28, 28) in
  [0, 1], mu/logvar (B, D) and logvar None for a deterministic code;
  `decode(z)` for z (..., D) -> the likelihood's parameters (..., 1, 28, 28);
  `decode_images(z)` -> pixel means in [0, 1]; `loss_terms(x, generator=)` ->
  {term: scalar} (or `noise=` its `draw_noise(B, generator=)` drew); derived from its config: `variant`, `latent_dim`,
  `objective`, `stochastic`, `likelihood`, `mc_samples`.
- `objectives`: the objective functions side by side, `OBJECTIVES`,
  `check_variant`, and the Gaussian pieces `gaussian_kl`,
  `gaussian_log_density`, `reparameterize`; `likelihood`: the pixel likelihoods.
- `save_checkpoint(path, model, epochs_done=)` (atomic, deterministic bytes) and
  `load_model(path)` (eval mode, CPU; a bad file -> CheckpointError naming it).
  `aebench.load_model` is the same function.

Nothing is imported here: a stage imports the modules it uses, and dvc.yaml
lists exactly those as its dependencies.
"""
