"""Evaluation of trained models on the test split, and the classifier that judges their samples.

Modules (import the one you need; this package imports none of them, so that
`aebench.evaluation.metrics`, the schema the report reads, loads without torch):

- `metrics`: every key of the metrics JSON documented (`METRIC_DOCS`) and checked (`check_metrics`);
- `runner`: `evaluate_replicate`, every number of one model's metrics file; `tracking`: logging it to
  the model's MLflow run;
- `likelihood`: the ELBO and the importance-weighted estimate of log p(x), batched;
- `reconstruction`: posterior means and reconstructions at z = mu;
- `figure_pixels`: the images the per-model figures draw, decoded once for each model's first seed;
- `activity`, `latent`, `usage`: A_u and AU(delta), KL per dimension, the decoder's usage of each dimension;
  `usage_split`: its shares and used units (no torch);
- `convergence`: the convergence test of a model, read from its training history (no torch);
- `geometry`, `probe`, `expost`: what the latent layout keeps (k-NN, roughness, interpolation), the
  linear probe, densities fitted on the training codes;
- `classifier`, `sample_quality`, `precision_recall`, `frechet`, `degradations`: the per-dataset judge,
  the sample metrics in its features, and the controlled inputs that validate them.
"""
