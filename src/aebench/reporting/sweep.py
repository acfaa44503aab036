"""The sweep report: the KL continuum from the EM-AE (gamma = 0) through the VAE to beta-VAEs.

Every grid point of `sweep/params.yaml` is a variant of the objective family

    recon + beta * sum_u [0.5 mu_u^2 + gamma * 0.5 (sigma_u^2 - log sigma_u^2 - 1)]

trained and evaluated at every seed. The report reads their metrics into one
tidy table (one row per point and seed), either from the metrics files of
this workspace (`metrics_frame`, the DVC stage) or from the DVC experiments a
cluster sweep pushed (`experiments_frame`, fed by `dvc exp show --json`), and
draws `SWEEP_FIGURES`: the rate-distortion plane (Alemi et al. 2018) and each
measure against beta and against gamma. Its findings quote means ± sd over
the seeds.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from aebench.common.layout import SEED_PREFIX, ModelKey
from aebench.evaluation.metrics import METRICS, lookup
from aebench.reporting.columns import COLUMN_BY_KEY, MISSING
from aebench.reporting.compare import LABEL_BOX, draw_isolines, panel_grid
from aebench.reporting.labels import variant_label
from aebench.reporting.plotting import PALETTE, FigureSpec, palette_colors, save_figures
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
    line = sweep_line(frame, "gamma")
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
    betas = sweep_line(frame, "beta").groupby("beta")[["test.rate", "test.distortion"]].mean().sort_index()
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
                    + [_spread(group, key) for key in keys])  # n/a where no seed has a value
    return Table(header=["point", "beta", "gamma", "seeds n", "converged", *keys], rows=rows, label_columns=5,
                 css_class="comparison", caption="Mean ± sd over the seeds; nats/image for rate, distortion, -ELBO "
                 "and IW NLL; probe accuracy as a fraction; n/a where the AE defines no density. Converged: the "
                 "seeds whose model passed its convergence test; a point with a failing seed is provisional.")


def sweep_report(frame: pd.DataFrame, *, figures: list[tuple[FigureSpec, Path, bytes]], au_threshold: float,
                 source: str) -> list[Block]:
    """The blocks of the sweep report; `figures` are (spec, final path, png) in SWEEP_FIGURES order."""
    from aebench.reporting.render import Figure as FigureBlock

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
    blocks += [FigureBlock(path=path, png=png, caption=f"{spec.title}. {spec.caption(frame)}", alt=spec.title)
               for spec, path, png in figures]
    return blocks


# Each sweep varies one weight with the other held at the VAE's value, so both sweeps pass through the VAE.
VAE_WEIGHTS = {"beta": 1.0, "gamma": 1.0}
OTHER_WEIGHT = {"beta": "gamma", "gamma": "beta"}
SYMBOLS = {"beta": "β", "gamma": "γ"}
WEIGHT_LABELS = {"beta": "β (weight of the whole KL)", "gamma": "γ (weight of the entropy part)"}
FRAME_COLUMNS = ("point", "beta", "gamma", "seed")


def sweep_colors() -> dict[str, tuple[float, float, float]]:
    """Each sweep's colour, by the weight it varies."""
    return dict(zip(VAE_WEIGHTS, palette_colors(PALETTE, 2), strict=True))


def _check_frame(frame: pd.DataFrame, metric_keys: list[str]) -> None:
    for column in (*FRAME_COLUMNS, *metric_keys):
        if column not in frame.columns:
            raise ValueError(f"sweep frame: missing column {column!r}")
    for key in metric_keys:
        if key not in METRICS:
            raise ValueError(f"sweep frame: {key!r} is not a metrics key (see METRIC_DOCS)")


def sweep_line(frame: pd.DataFrame, weight: str) -> pd.DataFrame:
    """The rows of one sweep: `weight` varies while the other weight is at its fixed value; sorted by `weight`."""
    if weight not in OTHER_WEIGHT:
        raise ValueError(f"weight must be one of {', '.join(OTHER_WEIGHT)}, got {weight!r}")
    other = OTHER_WEIGHT[weight]
    rows = frame[np.isclose(frame[other], VAE_WEIGHTS[other]) & frame[weight].notna()]
    return rows.sort_values([weight, "seed"], kind="stable")


def _point_means(rows: pd.DataFrame, weight: str, keys: list[str]) -> pd.DataFrame:
    """Per grid point, the mean over seeds of `keys`, sorted by `weight`."""
    return rows.groupby(weight, sort=True)[keys].mean().reset_index()


def _weight_text(weight: str, value: float) -> str:
    return f"{SYMBOLS[weight]} = {value:g}"


def rate_distortion_plane(frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Every seed of every weighted grid point in the rate-distortion plane, with -ELBO isolines.

    The beta sweep (gamma = 1) and the gamma sweep (beta = 1) are each joined
    through their per-point means and labelled with the varying weight; the
    reference (no rate: a deterministic code) is absent.
    """
    keys = ["test.rate", "test.distortion"]
    _check_frame(frame, keys)
    fig, (ax,) = panel_grid("sweep_plane", 1)
    weighted = frame[frame["test.rate"].notna()]
    ax.scatter(weighted["test.rate"], weighted["test.distortion"], s=16, color="0.55", zorder=2, linewidths=0,
               gid="seeds")
    for weight, color in sweep_colors().items():
        means = _point_means(sweep_line(weighted, weight), weight, keys)
        ax.plot(means["test.rate"], means["test.distortion"], color=color, marker="o", markersize=6, linewidth=1.6,
                zorder=3, gid=f"{weight} line", label=f"{WEIGHT_LABELS[weight]}, mean of seeds")
        for _, row in means.iterrows():
            if np.isclose(row[weight], VAE_WEIGHTS[weight]):
                continue  # the VAE, on both sweeps: labelled once below
            # beta labels above right, gamma labels below left: the two lines often run close together.
            ax.annotate(_weight_text(weight, row[weight]), (row["test.rate"], row["test.distortion"]), fontsize=7,
                        color=color, xytext=(5, 3) if weight == "beta" else (-5, -4), textcoords="offset points",
                        ha="left" if weight == "beta" else "right", va="bottom" if weight == "beta" else "top",
                        bbox=LABEL_BOX, zorder=4)
    shared = weighted[np.isclose(weighted["beta"], VAE_WEIGHTS["beta"])
                      & np.isclose(weighted["gamma"], VAE_WEIGHTS["gamma"])]
    if not shared.empty:
        label = ", ".join(_weight_text(weight, value) for weight, value in VAE_WEIGHTS.items())
        ax.annotate(label, (shared["test.rate"].mean(), shared["test.distortion"].mean()), fontsize=7, color="0.2",
                    xytext=(6, 0), textcoords="offset points", ha="left", va="center", bbox=LABEL_BOX, zorder=4)
    if not weighted.empty:
        draw_isolines(ax, weighted["test.rate"].to_numpy(float), weighted["test.distortion"].to_numpy(float))
    ax.set_xlabel("rate R = mean KL(q(z|x) || N(0, I)) (nats/image)")
    ax.set_ylabel("distortion D = mean E_q[-log p(x|z)] (nats/image)")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.55", marker="o", linestyle="", markersize=4, label="one seed"),
                Line2D([], [], color="0.55", linestyle="--", label="−ELBO = D + R")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(title or "Rate against distortion across the sweep", fontsize=11)
    return fig


def against_weight(frame: pd.DataFrame, metric_keys: list[str], *, weight: str, title: str | None = None) -> Figure:
    """Each metric against beta (log2 axis, gamma = 1) or gamma (beta = 1): seeds as dots, the mean as a line.

    The reference rows (beta and gamma null, the AE) are a dashed horizontal
    line at their mean where the metric has a value for them.
    """
    _check_frame(frame, metric_keys)
    rows = sweep_line(frame, weight)
    references = frame[frame["beta"].isna() & frame["gamma"].isna()]  # the AE: no weights at all
    other = OTHER_WEIGHT[weight]
    color = sweep_colors()[weight]
    fig, axes = panel_grid("sweep_weight", len(metric_keys))
    for ax, key in zip(axes, metric_keys, strict=True):
        column = COLUMN_BY_KEY.get(key)
        scale = column.scale if column else 1.0
        unit = column.unit if column else METRICS[key].unit
        known = rows[rows[key].notna()]
        ax.scatter(known[weight], known[key] * scale, s=14, color=color, alpha=0.6, linewidths=0, zorder=3,
                   gid="seeds")
        means = _point_means(known, weight, [key])
        ax.plot(means[weight], means[key] * scale, color=color, marker="o", markersize=4, linewidth=1.5, zorder=2,
                gid="mean")
        undefined = []  # references without a value (the AE has no rate): named in the title, not drawn
        for point, group in references.groupby("point", sort=False):
            values = group[key].dropna()
            if values.empty:
                undefined.append(f"{variant_label(point)}: {MISSING}")
                continue
            ax.axhline(values.mean() * scale, color="0.35", linestyle="--", linewidth=1, gid=f"reference {point}")
            ax.annotate(variant_label(point), (0.02, values.mean() * scale), xycoords=("axes fraction", "data"),
                        xytext=(0, 2), textcoords="offset points", fontsize=7, color="0.35")
        if weight == "beta":
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(sorted(rows[weight].unique())))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
        ax.margins(y=0.1)  # a reference line at the edge of the data stays inside the panel
        ax.set_title(", ".join([column.name if column else key, *undefined]), fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_xlabel(f"{SYMBOLS[weight]} ({_weight_text(other, VAE_WEIGHTS[other])})", fontsize=8)
        ax.tick_params(labelsize=8)
    handles = [Line2D([], [], color=color, marker="o", label=f"{WEIGHT_LABELS[weight]}: mean of seeds"),
               Line2D([], [], color=color, marker="o", linestyle="", alpha=0.6, markersize=4, label="one seed"),
               Line2D([], [], color="0.35", linestyle="--", label="reference (no weights), mean of seeds")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(title or f"Metrics against {WEIGHT_LABELS[weight]}", fontsize=11)
    return fig


def _says(text: str):
    """A caption that is the same for every grid: the figures' numbers are in the findings and the table."""
    return lambda frame: text


# In report order; caption and draw take the sweep's frame.
SWEEP_FIGURES = (
    FigureSpec("rate_distortion", "Rate-distortion plane", _says(
        "One point per grid point and seed (x: rate R, y: distortion D, nats/image); the dashed lines are -ELBO = "
        "D + R isolines; the beta line and the gamma line join their means. The AE has no rate and is absent."),
        rate_distortion_plane),
    FigureSpec("usage_vs_beta", "Latent usage against beta (gamma = 1)", _says(
        "Active units at the configured threshold, used units (decoder usage share) and effective dimensions, "
        "every seed as a dot and the mean as a line; the AE as a horizontal reference."),
        partial(against_weight, metric_keys=list(USAGE), weight="beta")),
    FigureSpec("usage_vs_gamma", "Latent usage against gamma (beta = 1)", _says(
        "As above along gamma: gamma = 0 is the EM-AE, gamma = 1 the VAE."),
        partial(against_weight, metric_keys=list(USAGE), weight="gamma")),
    FigureSpec("quality_vs_beta", "IW NLL and probe accuracy against beta (gamma = 1)", _says(
        "Importance-weighted NLL (nats/image) and the linear probe's test accuracy, every seed and the mean."),
        partial(against_weight, metric_keys=list(QUALITY), weight="beta")),
    FigureSpec("quality_vs_gamma", "IW NLL and probe accuracy against gamma (beta = 1)", _says(
        "As above along gamma."),
        partial(against_weight, metric_keys=list(QUALITY), weight="gamma")),
)


def draw_sweep_figures(frame: pd.DataFrame, out_dir: Path) -> list[tuple[FigureSpec, Path]]:
    """Write every figure of SWEEP_FIGURES as `<out_dir>/<name>.png`; (spec, path) in registry order."""
    return save_figures(SWEEP_FIGURES, out_dir, frame)
