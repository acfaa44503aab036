"""Evaluation of trained models on the test split, and the classifier that judges their samples.

Modules (import the one you need; this package imports none of them, so that
`aebench.evaluation.metrics`, the schema the report reads, loads without torch):

- `metrics`: every key of the metrics JSON documented (`METRIC_DOCS`) and checked (`check_metrics`);
- `likelihood`: the ELBO and the importance-weighted estimate of log p(x), batched;
- `reconstruction`: posterior means and reconstructions at z = mu;
- `latent`: activity A_u, active units, KL per dimension;
- `usage`: the decoder's usage of each dimension; `usage_split`: its shares and used units (no torch);
- `convergence`: the convergence test of a model, read from its training history (no torch);
- `probe`: the linear probe on posterior means;
- `classifier`, `sample_quality`, `frechet`: the per-dataset CNN, prior samples and what it makes of them;
- `runner`: `evaluate_model`, everything above for one model; `tracking`: logging it to the model's MLflow run.
"""
