"""Figures and the comparison report, drawn only from files earlier stages wrote.

- `results`: reading metrics JSONs, history CSVs, latent arrays and data-info JSONs, by name;
- `columns`, `statistics`, `findings`, `claims`: what the report compares, mean ± sd and paired
  intervals, the findings, and the claims ledger of the source articles;
- `figures` (per model), `compare` (per dataset), `sweep` (the sweep), each a registry of `plotting.FigureSpec`;
  `labels`: how things are called;
- `report`, `sweep`, `render`: the study, replicate and sweep reports as one block list, rendered to Markdown and
  to self-contained HTML; `environment`, `timings`: software versions and wall times;
- `study_run`, `sweep_run`: the reports' MLflow runs.
"""
