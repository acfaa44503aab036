"""The sweep report: the KL continuum from the EM-AE (gamma = 0) through the VAE to beta-VAEs.

Every grid point of `sweep/params.yaml` is a variant of the objective family

    recon + beta * sum_u [0.5 mu_u^2 + gamma * 0.5 (sigma_u^2 - log sigma_u^2 - 1)]

trained and evaluated at every seed. The report reads their metrics into one
tidy table (one row per point and seed), either from the metrics files of
this workspace (`metrics_frame`, the DVC stage) or from the DVC experiments a
cluster sweep pushed (`experiments_frame`, fed by `dvc exp show --json`), and
draws the rate-distortion plane (Alemi et al. 2018) and each measure against
beta and against gamma. Its findings quote means ± sd over the seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aebench.common.layout import SEED_PREFIX, ModelKey
from aebench.evaluation.metrics import METRICS, lookup
from aebench.reporting.labels import variant_label
from aebench.reporting.render import Block, Bullets, Heading, Paragraph, Table
from aebench.reporting.results import read_metrics
from aebench.reporting.statistics import summarize

# The measures the report draws, by metrics key.
PLANE = ("test.rate", "test.distortion")
USAGE = ("latent.active_units", "latent.used_units", "latent.effective_dims")
QUALITY = ("test.nll_iw", "probe.accuracy")
SCALARS = tuple(key for key, metric in METRICS.items() if metric.kind in ("int", "float") and "." in key)
CONVERGED = "convergence.converged"  # the model passed its convergence test (`aebench.evaluation.convergence`)


def point_weights(variant: dict[str, Any]) -> tuple[float, float]:
    """(beta, gamma) of a grid point; NaN for a deterministic code (the AE reference)."""
    if variant.get("objective") != "kl_split":
        return math.nan, math.nan
    return float(variant["beta"]), float(variant["gamma"])


def _row(variant_name: str, variant: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    beta, gamma = point_weights(variant)
    row: dict[str, Any] = {"point": variant_name, "beta": beta, "gamma": gamma, "seed": int(metrics["seed"]),
                           "latent_dim": int(metrics["latent_dim"]), "dataset": metrics["dataset"]}
    for key in SCALARS:
        value = _scalar(metrics, key)
        row[key] = math.nan if value is None else float(value)
    row[CONVERGED] = _scalar(metrics, CONVERGED) is True  # a missing test (older metrics) is no pass
    return row


def _scalar(metrics: dict[str, Any], key: str) -> Any:
    """The value at a dotted key, None when absent: `dvc exp show` leaves out null values (an
    undefined rate, a latent without manifold metrics), where a metrics file holds null."""
    try:
        return lookup(metrics, key)
    except (KeyError, TypeError):
        return None


def metrics_frame(params, metrics_root: Path) -> pd.DataFrame:
    """One row per grid point and seed, from this workspace's metrics files."""
    rows = []
    for name, variant in params.variants.items():
        for dataset in params.datasets:
            for latent_dim in params.latent_dims:
                key = ModelKey(dataset, name, latent_dim)
                for seed in params.seeds:
                    metrics = read_metrics(key.replicate(seed).path(metrics_root, ".json"))
                    rows.append(_row(name, variant.to_dict(), metrics))
    return pd.DataFrame(rows)


def experiments_frame(exp_show: list[dict[str, Any]], *, params_file: str, metrics_root: str) -> pd.DataFrame:
    """One row per grid point and seed, from `dvc exp show --json` after `dvc exp pull`.

    Each experiment of a cluster sweep ran one point's stages; its metrics files
    (`<metrics_root>/<dataset>/<variant>/latent-<D>/seed-<s>.json`) and its params
    file come with it. When two experiments hold the same point and seed, the
    newest wins.
    """
    rows: dict[tuple[str, int, int, str], dict[str, Any]] = {}
    stamps: dict[tuple[str, int, int, str], str] = {}
    for entry in exp_show:
        for experiment in entry.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                data = revision.get("data") or {}
                stamp = data.get("timestamp") or ""  # ISO 8601: compares as text; DVC lists newest first
                variants = ((data.get("params") or {}).get(params_file) or {}).get("data", {}).get("variants", {})
                for path, content in (data.get("metrics") or {}).items():
                    if not path.startswith(metrics_root.rstrip("/") + "/") or SEED_PREFIX not in Path(path).name:
                        continue
                    metrics = (content or {}).get("data")
                    if not metrics or metrics.get("variant") not in variants:
                        continue
                    row = _row(metrics["variant"], variants[metrics["variant"]], metrics)
                    key = (row["point"], row["seed"], row["latent_dim"], row["dataset"])
                    if key not in rows or stamp > stamps[key]:  # the newest wins, whatever the listing order
                        rows[key], stamps[key] = row, stamp
    return pd.DataFrame(list(rows.values()))


def read_exp_show(path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())


def _spread(frame: pd.DataFrame, key: str, digits: int = 2) -> str:
    values = frame[key].dropna().tolist()
    return f"{summarize(values).format(digits)} (n = {len(values)})" if values else "n/a"


def crossing(points: pd.DataFrame, key: str) -> float | None:
    """Where the mean of `key` against gamma crosses halfway between its values at gamma 0 and 1 (interpolated)."""
    means = points.groupby("gamma")[key].mean().sort_index()
    if 0.0 not in means.index or 1.0 not in means.index:
        return None
    half = (means.loc[0.0] + means.loc[1.0]) / 2
    gammas, values = means.index.to_numpy(), means.to_numpy()
    for (g0, v0), (g1, v1) in zip(zip(gammas, values), zip(gammas[1:], values[1:])):
        if (v0 - half) * (v1 - half) <= 0 and v0 != v1:
            return float(g0 + (half - v0) * (g1 - g0) / (v1 - v0))
    return None


def gamma_line(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[np.isclose(frame["beta"], 1.0)]


def beta_line(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[np.isclose(frame["gamma"], 1.0)]


def unconverged_points(frame: pd.DataFrame) -> dict[str, list[int]]:
    """{point: [seeds whose model failed the convergence test]}, for the points that have any."""
    failed = frame[~frame[CONVERGED].astype(bool)]
    return {point: sorted(int(s) for s in group["seed"]) for point, group in failed.groupby("point", sort=False)}


def convergence_sentence(frame: pd.DataFrame) -> str:
    failed = unconverged_points(frame)
    if not failed:
        return f"Every model of the grid ({len(frame)}) passed its convergence test."
    listed = "; ".join(f"{variant_label(point)} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                       for point, seeds in failed.items())
    return (f"Provisional: {sum(map(len, failed.values()))} of {len(frame)} models failed their convergence test "
            f"({listed}); those points' numbers, and every sentence below that uses them, may still move with "
            "training.")


def findings(frame: pd.DataFrame, *, au_threshold: float) -> list[str]:
    """Sentences computed from the grid: the rate and distortion of the ends, where active units cross."""
    sentences = [convergence_sentence(frame)]
    for name, label in (("vae", "VAE (beta 1, gamma 1)"), ("emae", "EM-AE (beta 1, gamma 0)")):
        point = frame[frame["point"] == name]
        if not point.empty:
            sentences.append(f"{label}: rate R = {_spread(point, 'test.rate')} nats/image, distortion D = "
                             f"{_spread(point, 'test.distortion')} nats/image, -ELBO = "
                             f"{_spread(point, 'test.neg_elbo')}, active units {_spread(point, 'latent.active_units', 1)}, "
                             f"used units {_spread(point, 'latent.used_units', 1)}.")
    line = gamma_line(frame)
    for key, what in (("latent.active_units", f"active units (A_u > {au_threshold:g})"),
                      ("latent.used_units", "used units (decoder usage share)")):
        means = line.groupby("gamma")[key].mean().sort_index()
        if len(means) < 2:
            continue
        trail = ", ".join(f"gamma {g:g}: {v:.1f}" for g, v in means.items())
        cross = crossing(line, key)
        where = (f"it crosses halfway between its gamma = 0 and gamma = 1 values at gamma ≈ {cross:.2f} "
                 "(linear interpolation between grid points)" if cross is not None else
                 "no crossing between gamma = 0 and 1 on this grid")
        sentences.append(f"Mean {what} against gamma at beta = 1: {trail}; {where}.")
    betas = beta_line(frame).groupby("beta")[["test.rate", "test.distortion"]].mean().sort_index()
    if len(betas) >= 2:
        trail = "; ".join(f"beta {b:g}: R {r:.1f}, D {d:.1f}" for b, (r, d) in betas.iterrows())
        sentences.append(f"Along beta at gamma = 1 (means over seeds, nats/image): {trail}.")
    return sentences


def summary_table(frame: pd.DataFrame) -> Table:
    keys = (*PLANE, "test.neg_elbo", *QUALITY, *USAGE)
    rows = []
    for point, group in frame.groupby("point", sort=False):
        beta, gamma = group["beta"].iloc[0], group["gamma"].iloc[0]
        weights = "n/a" if math.isnan(beta) else f"{beta:g}"
        passed = int(group[CONVERGED].astype(bool).sum())
        converged = f"{passed} of {len(group)}" + ("" if passed == len(group) else " (provisional)")
        rows.append([variant_label(point), weights, "n/a" if math.isnan(gamma) else f"{gamma:g}",
                     str(len(group)), converged]
                    + [_spread(group, key) if group[key].notna().any() else "n/a" for key in keys])
    return Table(header=["point", "beta", "gamma", "seeds n", "converged", *keys], rows=rows, label_columns=5,
                 css_class="comparison", caption="Mean ± sd over the seeds; nats/image for rate, distortion, -ELBO "
                 "and IW NLL; probe accuracy as a fraction; n/a where the AE defines no density. Converged: the "
                 "seeds whose model passed its convergence test; a point with a failing seed is provisional.")


def sweep_report(frame: pd.DataFrame, *, figures: list[tuple[str, str, Path, bytes]], au_threshold: float,
                 source: str) -> list[Block]:
    """The blocks of the sweep report; `figures` are (title, caption, final path, png)."""
    from aebench.reporting.render import Figure

    blocks: list[Block] = [
        Heading("aebench sweep: the KL continuum", 1),
        Paragraph(f"{frame['point'].nunique()} grid points x {frame['seed'].nunique()} seeds, read from {source}. "
                  "Each point is the objective recon + beta * sum_u [0.5 mu_u^2 + gamma * 0.5 (sigma_u^2 - log "
                  "sigma_u^2 - 1)]: beta scales the KL to N(0, I) at gamma = 1 (beta-VAEs), gamma weighs only its "
                  "variance part, which holds the entropy of q, at beta = 1 (gamma = 0: the EM-AE). The AE is the "
                  "reference without a regulariser. Rate R = mean KL(q(z|x) || N(0, I)) and distortion D = mean "
                  "E_q[-log p(x|z)] on the test split, in nats per image (Alemi et al. 2018; -ELBO = D + R)."),
        Heading("Findings", 2),
        Bullets(findings(frame, au_threshold=au_threshold)),
        Heading("Every point", 2),
        summary_table(frame),
        Heading("Figures", 2),
    ]
    blocks += [Figure(path=path, png=png, caption=f"{title}. {caption}", alt=title) for title, caption, path, png in figures]
    return blocks
