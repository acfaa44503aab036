"""Figures and the comparison report, drawn only from files earlier stages wrote.

- `figures`: the per-model PNGs (needs the checkpoint, so it imports torch).
- `compare`: the per-dataset comparison PNGs (metrics and activity profiles).
- `inputs`: reading metrics JSONs, history CSVs, latent npz and data-info JSONs.
- `table`, `findings`, `environment`: the report's content (metric descriptions come
  from `aebench.evaluation.metrics.METRIC_DOCS`).
- `document`, `html`: one block list rendered to Markdown and to self-contained HTML.
- `report`: assembles the document; `study_run`: logs it to MLflow.

Nothing here but `figures` imports torch, so the report stage stays fast.
"""
